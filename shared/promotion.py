"""The promoted run: the one run of a project that `serve` answers with when no `run=` is given.

A deployment must not change model because someone trained again, so `serve` does not simply take the latest run:
`promote [run=PATH]` records the chosen run in `runs/<project>/promoted.json` (written atomically), `compare` marks
it, and `serve` uses it. Without a promoted run, `serve` takes the latest finished one and warns that it did.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from shared.errors import RunNotFoundError
from shared.io import read_json, write_json
from shared.project import Project
from shared.runs import METRICS_FILE, load_run, resolve_run

log = logging.getLogger(__name__)

PROMOTED_FILE = "promoted.json"


def promoted_file(runs_dir: str | Path, project: str) -> Path:
    """Where a project's promoted run is recorded: beside its runs."""
    return Path(runs_dir).expanduser() / project / PROMOTED_FILE


def promoted_run(runs_dir: str | Path, project: str) -> Path | None:
    """The promoted run's folder, or None when none was promoted. A record that is broken, or names a run that is
    gone or unfinished, is an error rather than a silent fallback: a deployment should not change model unasked."""
    path = promoted_file(runs_dir, project)
    if not path.is_file():
        return None
    promote_again = f"promote a run again: python -m projects.{project} promote run=PATH, or pass run= to serve."
    try:
        record = read_json(path)
    except (OSError, ValueError) as error:
        raise RunNotFoundError(f"{path} is not readable JSON ({error}).", promote_again) from error
    if not isinstance(record, dict) or not isinstance(record.get("run"), str):
        raise RunNotFoundError(f'{path} names no run (it needs a "run" string).', promote_again)
    run_dir = path.parent / record["run"]
    if not (run_dir / METRICS_FILE).is_file():
        raise RunNotFoundError(f"the promoted run {run_dir} is gone or unfinished (no {METRICS_FILE}).", promote_again)
    return run_dir


def served_run_dir(runs_dir: str | Path, project: str, run: str | Path | None) -> Path:
    """The run `serve` answers with: `run=` when given, else the promoted run, else the latest finished one (with a
    warning, since training again would change what is served)."""
    if run:
        return resolve_run(run, runs_dir, project)
    promoted = promoted_run(runs_dir, project)
    if promoted is not None:
        return promoted
    latest = resolve_run(None, runs_dir, project)
    log.warning(
        "no promoted %s run: serving the latest, %s (fix one with: python -m projects.%s promote run=PATH)",
        project,
        latest,
        project,
    )
    return latest


def promote(project: Project, cfg: DictConfig) -> Path:
    """Record the run named by `cfg.run` (else the latest finished one) as the promoted run; returns the record.

    The run is loaded first, so a folder that is not a usable run of the project is refused as `load_run` refuses it.
    """
    run = load_run(project, cfg.get("run"), cfg.paths)
    root = Path(cfg.paths.runs_dir).expanduser() / project.name
    try:
        relative = run.directory.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:  # a run kept outside runs/<project>/: recorded by its absolute path
        relative = str(run.directory.resolve())
    headline = run.metrics.get("headline")
    record: dict[str, Any] = {
        "run": relative,
        "promoted_at": datetime.now().isoformat(timespec="seconds"),
        "headline": headline,
        "value": (run.metrics.get("metrics") or {}).get(headline),
    }
    return write_json(promoted_file(cfg.paths.runs_dir, project.name), record)


def promote_command(project: Project, cfg: DictConfig) -> None:
    """`promote [run=PATH]`: say which run is now served by default."""
    path = promote(project, cfg)
    record = read_json(path)
    print(f"promoted {project.name} run {record['run']} ({record['headline']} {record['value']}) -> {path}")
