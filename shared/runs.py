"""Run directories: where each `train` leaves its config, model, metrics, logs, plots and card.

A run lives at `runs/<project>/<timestamp>[-<name>]/` (multirun jobs one level deeper). It
counts as successful once `metrics.json` exists: that file is written last.
"""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

from shared.errors import RunNotFoundError
from shared.io import read_json

METRICS_FILE = "metrics.json"
CONFIG_FILE = "config.yaml"
CARD_FILE = "MODEL_CARD.md"
PLOTS_DIR = "plots"
LIBRARIES = (
    "torch",
    "torchvision",
    "lightning",
    "hydra-core",
    "scikit-learn",
    "pandas",
    "numpy",
    "torchmetrics",
)


def new_run_dir(runs_dir: str, project: str, name: str | None = None) -> str:
    """A fresh run directory path `<runs_dir>/<project>/<timestamp>[-<name>]` that does not exist yet.

    Used as an OmegaConf resolver for `hydra.run.dir`: Hydra evaluates it once per job.
    """
    stem = datetime.now().strftime("%Y-%m-%d_%H-%M-%S") + (f"-{name}" if name else "")
    base = Path(runs_dir).expanduser() / project
    candidate, attempt = base / stem, 1
    while candidate.exists():
        attempt += 1
        candidate = base / f"{stem}.{attempt}"
    return str(candidate)


def successful_runs(runs_dir: str | Path, project: str) -> list[Path]:
    """Every run of `project` that finished, oldest first (by when `metrics.json` was written)."""
    root = Path(runs_dir).expanduser() / project
    if not root.is_dir():
        return []
    runs = [metrics.parent for metrics in root.rglob(METRICS_FILE)]
    return sorted(runs, key=lambda run: (run / METRICS_FILE).stat().st_mtime)


def resolve_run(run: str | None, runs_dir: str | Path, project: str) -> Path:
    """The run directory named by `run`, or the latest successful run of `project`."""
    if run:
        path = Path(run).expanduser()
        if not (path / METRICS_FILE).is_file():
            raise RunNotFoundError(
                f"{path} is not a finished run of {project} (no {METRICS_FILE} in it).",
                f"pass run=<a folder under {Path(runs_dir) / project}>, or train first: "
                f"python -m projects.{project} train",
            )
        return path
    runs = successful_runs(runs_dir, project)
    if not runs:
        raise RunNotFoundError(
            f"no finished {project} run under {Path(runs_dir).expanduser() / project}.",
            f"train one first (python -m projects.{project} train), or pass run=<run directory>.",
        )
    return runs[-1]


def read_metrics(run_dir: str | Path) -> dict[str, Any]:
    """The `metrics.json` of a run."""
    return read_json(Path(run_dir) / METRICS_FILE)


def git_commit() -> str | None:
    """The commit of the code that ran, with '+dirty' when the tree had changes; None outside git."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def environment() -> dict[str, Any]:
    """Library versions, Python and platform: what a reader needs to reproduce a number."""
    versions: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform()}
    for library in LIBRARIES:
        try:
            versions[library] = importlib.metadata.version(library)
        except importlib.metadata.PackageNotFoundError:
            versions[library] = None
    return versions
