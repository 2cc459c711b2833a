"""`python -m projects.<name> monitor input=FILE|requests [run=PATH] [reference=FILE]`: have a run's new inputs
drifted from its training data, and where?

The new inputs are read as `predict` reads them (`input=FILE`, the project's `read_file` and `parse_record`) or from
the run's serving log (`input=requests`, `<run>/requests.jsonl`, which `serve log_requests=true` writes). They are
measured as the project says (`Project.monitored_features`) and tested feature by feature against the run's
`reference.npz` (`shared.monitor.drift`). Exit code 0: no drift; `DRIFT_EXIT_CODE` (4): drift, so a scheduled job
can retrain on it.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from shared import checks
from shared.devices import inference_device
from shared.errors import UsageError
from shared.monitor.drift import (
    FeatureDrift,
    Thresholds,
    categorical_drift,
    embedding_drift,
    judge,
    numeric_drift,
)
from shared.monitor.features import Features
from shared.monitor.reference import REFERENCE_FILE, Reference, build_reference, load_reference
from shared.monitor.report import new_monitoring_dir, write_monitoring
from shared.predict import parse_item, read_items
from shared.project import PredictItem, Project
from shared.runs import REQUEST_LOG, Run, load_run

log = logging.getLogger(__name__)

DRIFT_EXIT_CODE = 4
REQUESTS = "requests"


def monitor_command(project: Project, cfg: DictConfig) -> int:
    """Test the new inputs against the run's reference; write `<run>/monitoring/<timestamp>/`; 0 or 4."""
    if type(project).monitored_features is Project.monitored_features:
        raise UsageError(
            f"{project.name} does not say how its inputs are monitored.",
            f"define {type(project).__name__}.monitored_features (see shared/project.py), then retrain.",
        )
    thresholds = Thresholds(
        alpha=checks.fraction(cfg.get("alpha", 0.05), "alpha", 0.05),
        min_psi=_non_negative(cfg.get("min_psi", 0.1), "min_psi"),
        min_auc=_non_negative(cfg.get("min_auc", 0.6), "min_auc"),
    )
    run = load_run(project, cfg.get("run"), cfg.paths, inference_device(cfg.get("trainer")), cfg.get("data"))
    items, described = new_items(project, run, cfg)
    readable = [item for item in items if item.error is None]
    minimum = checks.whole(cfg.get("min_records", 30), "min_records", example=30)
    if len(readable) < minimum:
        raise UsageError(
            f"{len(readable)} readable inputs in {described} (of {len(items)}): too few to test for drift.",
            f"give at least {minimum} (min_records={minimum}).",
        )
    for item in items[:5]:
        if item.error:
            log.warning("could not read %s: %s", item.name, item.error)
    reference = reference_for(project, run, cfg)
    results, samples = drift_of(project, run, reference, [item.value for item in readable], int(cfg.get("seed") or 0))
    drift = judge(results, thresholds)
    folder = new_monitoring_dir(run.directory)
    summary: dict[str, Any] = {
        "project": project.name,
        "run": str(run.directory),
        "input": described,
        "records_read": len(items),
        "records": len(readable),
        "reference": reference.source,
        "monitored_at": datetime.now().isoformat(timespec="seconds"),
        "drift": drift,
        "drifted_features": [f"{result.source}:{result.feature}" for result in results if result.drifted],
        "exit_code": DRIFT_EXIT_CODE if drift else 0,
    }
    json_path, report_path = write_monitoring(folder, summary, results, samples, thresholds)
    _print_summary(summary, results, json_path, report_path)
    return DRIFT_EXIT_CODE if drift else 0


def drift_of(
    project: Project, run: Run, reference: Reference, values: list[Any], seed: int = 0
) -> tuple[list[FeatureDrift], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Parsed records measured (inputs, and the run's predictions for them) and tested against `reference`; the
    verdicts are `judge`'s to give."""
    inputs = project.monitored_inputs(run, values)
    measured = project.monitored_features(run.model, run.data, inputs)
    if measured is None:
        raise UsageError(f"{project.name} measured nothing of these inputs.", "check its monitored_features.")
    predicted = Features()
    if not reference.predictions.empty:
        predicted = project.monitored_predictions(run.data, project.monitored_outputs(run, inputs))
    return compare(reference, measured, predicted, seed)


def compare(
    reference: Reference, measured: Features, predicted: Features, seed: int = 0
) -> tuple[list[FeatureDrift], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Every feature the reference has, tested against the new batch's; the samples compared, for the plots."""
    results: list[FeatureDrift] = []
    samples: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for source, old, new in (("input", reference.inputs, measured), ("prediction", reference.predictions, predicted)):
        for name, values in old.numbers.items():
            if name in new.numbers:
                results.append(numeric_drift(name, values, new.numbers[name], source))
                samples[f"{source}:{name}"] = (values, new.numbers[name])
        for name, values in old.categories.items():
            if name in new.categories:
                results.append(categorical_drift(name, values, new.categories[name], source))
                samples[f"{source}:{name}"] = (values, new.categories[name])
    if reference.inputs.embedding is not None and measured.embedding is not None:
        reduced = reference.reduce(measured.embedding)
        results.append(embedding_drift("embedding", reference.inputs.embedding, reduced, seed))
        samples["input:embedding"] = (reference.inputs.embedding[:, 0], reduced[:, 0])  # plotted: the first component
    return results, samples


def new_items(project: Project, run: Run, cfg: DictConfig) -> tuple[list[PredictItem], str]:
    """The new inputs as items (`input=FILE` as predict reads it, or the request log), and how to name them."""
    source = cfg.get("input")
    usage = f"python -m projects.{project.name} monitor input=FILE|requests [run=PATH]"
    if not source:
        raise UsageError("monitor needs new inputs.", usage)
    if str(source) == REQUESTS:
        items = request_items(project, run, cfg)
        described = str(run.directory / REQUEST_LOG)
    else:
        items, described = read_items(project, run, cfg, usage), str(source)
    last = cfg.get("last")
    if last is not None:
        items = items[-checks.whole(last, "last", example=1000) :]
        described += f" (the last {len(items)})"
    return items, described


def request_items(project: Project, run: Run, cfg: DictConfig) -> list[PredictItem]:
    """Each record of the run's serving log through `parse_record`. Uploaded files are logged by name and checksum,
    not their bytes, so they cannot be monitored: they count as unreadable."""
    path = run.directory / REQUEST_LOG
    if not path.is_file():
        raise UsageError(
            f"run {run.name} has no request log ({path}).",
            f"serve it with log_requests=true (python -m projects.{project.name} serve run={run.directory} "
            "log_requests=true), or pass input=FILE.",
        )
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        name = f"{REQUEST_LOG}:{number}"
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as error:
            items.append(PredictItem(name, error=f"not a JSON line ({error})"))
            continue
        record = entry.get("record") if isinstance(entry, dict) else None
        if isinstance(record, dict) and set(record) == {"file", "bytes", "sha256"}:
            items.append(
                PredictItem(name, error="an uploaded file: the log keeps its name and checksum, not its bytes")
            )
        else:
            items.append(parse_item(project, name, record, run, cfg))
    return items


def reference_for(project: Project, run: Run, cfg: DictConfig) -> Reference:
    """The run's own `reference.npz`, or `reference=FILE`: another reference file, or inputs in the predict format
    that stand for the training data (measured now, with the run's model)."""
    given = cfg.get("reference")
    if not given:
        path = run.directory / REFERENCE_FILE
        if not path.is_file():
            raise UsageError(
                f"run {run.name} has no monitoring reference ({REFERENCE_FILE}): it was trained before `monitor` "
                "existed.",
                f"retrain it (python -m projects.{project.name} train ...), or pass reference=FILE: inputs in the "
                "predict format that stand for its training data, or another run's reference.npz.",
            )
        return load_reference(path)
    path = Path(str(given)).expanduser()
    if not path.exists():
        raise UsageError(f"reference {path} does not exist.", "pass reference=<a reference.npz or an inputs file>.")
    if path.suffix == ".npz":
        return load_reference(path)
    items = project.read_file(path, run, cfg)
    values = [item.value for item in items if item.error is None]
    if not values:
        raise UsageError(f"no readable inputs in reference {path}.", f"pass inputs in the predict format: {path}")
    inputs = project.monitored_inputs(run, values)
    outputs = project.monitored_outputs(run, inputs)
    reference = build_reference(project, run.model, run.data, inputs, outputs, str(path))
    assert reference is not None  # the project monitors its inputs (checked first)
    return reference


def _non_negative(value: Any, name: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise UsageError(f"{name}={value} is not a non-negative number.", f"e.g. {name}=0.1.")
    return float(value)


def _print_summary(summary: dict[str, Any], results: list[FeatureDrift], json_path: Path, report_path: Path) -> None:
    verdict = "DRIFT" if summary["drift"] else "no drift"
    print(f"{summary['project']} run {Path(summary['run']).name}: {verdict} in {summary['records']} inputs")
    for result in results:
        if result.p_value is None:
            continue
        size = f"AUC {result.auc:.3f}" if result.auc is not None else f"PSI {result.psi:.3f}"
        mark = "DRIFTED" if result.drifted else "ok"
        print(
            f"  {mark:7} {result.source:10} {result.feature:24} {result.test:17} "
            f"stat {result.statistic:.4f}  adj. p {result.adjusted_p_value:.3g}  {size}"
        )
    print(f"-> {json_path}\n-> {report_path}")
