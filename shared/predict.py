"""The `predict` flow: records in (a file, a folder, or one record on the command line), one or more output
rows per record out, each unreadable record kept to its own row with its error.

Everything is built on the project's `parse_record`, so the HTTP API can call the same steps on JSON
bodies: `parse_item` for each record, then `predict_values` on the readable ones.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig

from shared.capabilities import Explains, format_explanation
from shared.devices import inference_device
from shared.errors import RecordError, UsageError
from shared.io import atomic_path, finite_values
from shared.project import PredictItem, Project
from shared.reports import markdown_table
from shared.runs import Run, load_run

log = logging.getLogger(__name__)

PARTIAL_FAILURE_EXIT_CODE = 3


def parse_item(project: Project, name: str, payload: Any, run: Run, cfg: DictConfig) -> PredictItem:
    """One record as an item: its parsed value, or the `RecordError` that says why it cannot be used."""
    try:
        return PredictItem(name, project.parse_record(payload, run, cfg))
    except RecordError as error:
        return PredictItem(name, error=str(error))


def read_items(project: Project, run: Run, cfg: DictConfig, usage: str | None = None) -> list[PredictItem]:
    """The items of one predict call: a record on the command line (`text=...`), or the `input=` file's.
    `usage` is the fix a mistake names (the predict command line unless the caller is another command)."""
    record, source = project.command_line_record(cfg), cfg.get("input")
    usage = usage or f"python -m projects.{project.name} predict {project.predict_usage}"
    if record is not None and source:
        raise UsageError("predict got a record on the command line and an input= file.", f"give one of them: {usage}")
    if record is not None:  # one record, typed by the user: a bad one is a command-line mistake, not a bad row
        item = parse_item(project, "command line", record, run, cfg)
        if item.error is not None:
            raise UsageError(f"{item.error}.", usage)
        return [item]
    if not source:
        raise UsageError("predict needs an input.", usage)
    path = Path(str(source)).expanduser()
    if not path.exists():
        raise UsageError(f"input {path} does not exist.", usage)
    return project.read_file(path, run, cfg)


def predict_values(project: Project, run: Run, values: list[Any], cfg: DictConfig) -> list[list[dict[str, Any]]]:
    """The rows that answer each parsed record, with an `explanation` when `explain=N` asks for one."""
    count = cfg.get("explain") or 0
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise UsageError(f"explain={count} is not a count of features.", "use explain=0 (off) or a count: explain=5.")
    answers = project.predict_rows(run, values, cfg)
    if count > 0:
        if not isinstance(run.model, Explains):
            raise UsageError(
                f"the model of run {run.name} ({type(run.model).__name__}) cannot explain its predictions.",
                "drop explain=, or use a run of a model that explains its predictions (the README says which do).",
            )
        explanations = run.model.explain(project.stack_inputs(values), count)
        for rows, explanation in zip(answers, explanations, strict=True):
            rows[0]["explanation"] = format_explanation(explanation)
    return answers


def predict_command(project: Project, cfg: DictConfig) -> int:
    """Predict every record of the input with a run's model; write `cfg.output` (CSV or JSONL).

    Returns 0 when every record was predicted, `PARTIAL_FAILURE_EXIT_CODE` when some could not be read.
    A record given on the command line is also shown on the terminal.
    """
    output = output_path(cfg)
    run = load_run(project, cfg.get("run"), cfg.paths, inference_device(cfg.get("trainer")), cfg.get("data"))
    items = read_items(project, run, cfg)
    readable = [item for item in items if item.error is None]
    answers = predict_values(project, run, [item.value for item in readable], cfg) if readable else []
    answer_of = {id(item): rows for item, rows in zip(readable, answers, strict=True)}
    rows: list[dict[str, Any]] = []
    for item in items:
        if item.error is not None:
            rows.append({"input": item.name, "error": item.error})
        else:
            rows += [{"input": item.name, **row, "error": ""} for row in answer_of[id(item)]]
    if output is not None:
        write_rows(output, rows)
    print(f"{len(readable)} of {len(items)} inputs predicted with run {run.name}" + (f" -> {output}" if output else ""))
    for item in items:
        if item.error:
            print(f"  could not read {item.name}: {item.error}")
    if not cfg.get("input") and readable:
        shown = pd.DataFrame(rows).drop(columns=["input", "error"], errors="ignore")
        print(markdown_table(shown), end="")
    return PARTIAL_FAILURE_EXIT_CODE if len(readable) < len(items) else 0


def output_path(cfg: DictConfig) -> Path | None:
    """Where predictions go: `output=`, else `predictions.csv` for an `input=` file, else nowhere (a record typed on
    the command line is printed). Never the input itself, and only .csv or .jsonl."""
    source = cfg.get("input")
    if cfg.get("output") is None:
        return Path("predictions.csv") if source else None
    output = Path(str(cfg.output)).expanduser()
    if output.suffix.lower() not in (".csv", ".jsonl"):
        raise UsageError(f"output={cfg.output} must end in .csv or .jsonl.", "for example output=predictions.csv")
    if source and output.resolve() == Path(str(source)).expanduser().resolve():
        raise UsageError(
            f"output={cfg.output} is the input file: predicting would overwrite it.", "name another output=."
        )
    return output


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write rows as CSV or JSON Lines (by suffix), atomically; columns in first-seen order, `error` last."""
    fields: list[str] = []
    for row in rows:
        fields += [key for key in row if key not in fields]
    fields = [key for key in fields if key != "error"] + ["error"]
    with atomic_path(path) as temporary, temporary.open("w", newline="", encoding="utf-8") as stream:
        if path.suffix.lower() == ".jsonl":
            for row in rows:
                stream.write(json.dumps(finite_values(row), default=str, allow_nan=False) + "\n")
        else:
            writer = csv.DictWriter(stream, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
