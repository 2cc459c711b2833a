"""The `predict` flow: files in, one output row per input out, errors kept to their own rows."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from shared.config import load_run_config
from shared.errors import UsageError
from shared.evaluate import fitter_of_run
from shared.io import atomic_path
from shared.project import Project
from shared.runs import resolve_run

log = logging.getLogger(__name__)

PARTIAL_FAILURE_EXIT_CODE = 3


def predict_command(project: Project, cfg: DictConfig) -> int:
    """Predict every input of `cfg.input` with a run's model; write `cfg.output` (CSV or JSONL).

    Returns 0 when every input was predicted, `PARTIAL_FAILURE_EXIT_CODE` when some could not be read.
    """
    output = Path(str(cfg.output)).expanduser()
    if output.suffix.lower() not in (".csv", ".jsonl"):
        raise UsageError(f"output {output} must end in .csv or .jsonl.", "for example output=predictions.csv")
    run_dir = resolve_run(cfg.get("run"), cfg.paths.runs_dir, project.name)
    train_cfg = load_run_config(run_dir)
    fitter = fitter_of_run(run_dir)
    model = fitter.load(train_cfg.model, run_dir)
    data = project.build_data(train_cfg, cfg.paths)

    items = project.read_inputs(cfg)
    readable = [item for item in items if item.error is None]
    columns: list[dict[str, Any]] = []
    if readable:
        values = [item.value for item in readable]
        outputs = fitter.predict(model, data, project.stack_inputs(values), cfg)
        columns = project.annotate_predictions(model, values, project.prediction_columns(outputs), cfg)
    by_name = {id(item): values for item, values in zip(readable, columns, strict=True)}
    rows = [{"input": item.name, **by_name.get(id(item), {}), "error": item.error or ""} for item in items]
    write_rows(output, rows)

    failed = len(items) - len(readable)
    print(f"{len(readable)} of {len(items)} inputs predicted with run {run_dir.name} -> {output}")
    for item in items:
        if item.error:
            print(f"  could not read {item.name}: {item.error}")
    return PARTIAL_FAILURE_EXIT_CODE if failed else 0


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write rows as CSV or JSON Lines (by suffix), atomically; columns in first-seen order."""
    fields: list[str] = []
    for row in rows:
        fields += [key for key in row if key not in fields]
    fields = [key for key in fields if key != "error"] + ["error"]
    with atomic_path(path) as temporary, temporary.open("w", newline="", encoding="utf-8") as stream:
        if path.suffix.lower() == ".jsonl":
            for row in rows:
                stream.write(json.dumps(row) + "\n")
        else:
            writer = csv.DictWriter(stream, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
