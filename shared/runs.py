"""Runs: the directories each `train` leaves, and the `Run` object every later command loads them as.

A run lives at `runs/<project>/<timestamp>[-<name>]/` (multirun jobs one level deeper). It
counts as finished once `metrics.json` exists: that file is written last. `load_run` turns a
finished run back into its config, metrics, model, fitter and data, and refuses, with a message
that says what is missing, a folder that is not a finished run of the project.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf

from shared.config import CONFIG_FILE, SHARED_CONFIGS, load_run_config, project_config_dir
from shared.errors import PortfolioError, RunNotFoundError, UsageError
from shared.fitters import Fitter, first_line, fitter_that_saved
from shared.io import OutputError, read_json

if TYPE_CHECKING:
    from shared.data import ProjectData
    from shared.project import Project

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
LAST_CHECKPOINT = "checkpoints/last.ckpt"  # everything a resumed train needs: weights, optimiser, loops
INTERRUPTED_FILE = "INTERRUPTED"  # written when a signal stopped the run: how to resume it
CARD_FILE = "MODEL_CARD.md"
PLOTS_DIR = "plots"
REQUEST_LOG = "requests.jsonl"  # `serve log_requests=true` appends each record and its answer; `monitor` reads it
# runs/<project>/tune/: `tune`'s studies (<study>.db) and their trials (<study>/trial-NNNN/), which are runs but not
# the project's: `compare`, `evaluate` and `serve` never pick a trial (the retrained best is a normal run).
TUNE_DIR = "tune"


def new_run_dir(runs_dir: str, project: str, name: str | None = None) -> str:
    """A fresh run directory `<runs_dir>/<project>/<timestamp>[-<name>]`, created here, exclusively.

    Used as an OmegaConf resolver for `hydra.run.dir`: Hydra evaluates it once per job. Two trainings started
    in the same second (or the jobs of a sweep) each get their own folder: the name is taken by creating it,
    and a taken name gets a suffix. `name` is one path component: no separators, no `..`.
    """
    if name is not None and (not str(name) or Path(str(name)).name != str(name) or str(name) in (".", "..")):
        raise UsageError(
            f"name={name} is not a plain folder name (it would put the run outside {Path(runs_dir) / project}).",
            "use letters, digits, '-' and '_' only, e.g. name=try-1.",
        )
    stem = datetime.now().strftime("%Y-%m-%d_%H-%M-%S") + (f"-{name}" if name else "")
    base = Path(runs_dir).expanduser() / project
    try:
        base.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, 1000):
            candidate = base / (stem if attempt == 1 else f"{stem}.{attempt}")
            if not candidate.resolve().is_relative_to(base.resolve()):
                raise UsageError(f"the run folder {candidate} would lie outside {base}.", "use a plain name=.")
            try:
                candidate.mkdir()
            except FileExistsError:
                continue
            return str(candidate)
    except OSError as error:  # the runs folder is read-only, a file, on a full disk
        raise OutputError(
            f"cannot create a run folder under {base}: {error.strerror or error}.",
            "set PORTFOLIO_RUNS_DIR (or paths.runs_dir=) to a folder you can write, e.g. paths.runs_dir=~/runs.",
        ) from error
    raise UsageError(f"no free run folder name under {base} for {stem}.", "pass another name=.")


_SWEEP_DIRS: dict[tuple[str, str], str] = {}


def new_sweep_dir(runs_dir: str, project: str) -> str:
    """The folder of this command's sweep (`-m`), `<runs_dir>/<project>/multirun/<timestamp>`, created exclusively
    like a run folder, so two sweeps started in the same second never share job folders. Hydra reads it once per
    job: every job of one command gets the same folder (`forget_sweep_dirs` starts a new command afresh)."""
    key = (str(runs_dir), str(project))
    if key not in _SWEEP_DIRS:
        _SWEEP_DIRS[key] = new_run_dir(runs_dir, f"{project}/multirun")
    return _SWEEP_DIRS[key]


def forget_sweep_dirs() -> None:
    """A new command line: its sweep, if any, gets a folder of its own."""
    _SWEEP_DIRS.clear()
    _REFUSED.clear()


# Errors of the run-folder resolvers, with the scratch folder each gave Hydra instead (see `deferring`).
_REFUSED: list[tuple[PortfolioError, str]] = []


def deferring(make: Callable[..., str]) -> Callable[..., str]:
    """`make` (`new_run_dir`, `new_sweep_dir`) as the resolver Hydra calls for `hydra.run.dir`/`hydra.sweep.dir`.

    Hydra resolves those before the command runs, where an exception is shown as a traceback. So an error (a
    `name=${oc.env:HOME}` that resolves to a path, a runs folder that cannot be written) is kept, Hydra gets a
    scratch folder to set up in, and `raise_refused_run_dir`, the command's first step, raises the error there.
    """

    def resolve(*arguments: Any) -> str:
        try:
            return make(*arguments)
        except PortfolioError as error:
            scratch = tempfile.mkdtemp(prefix="portfolio-refused-run-")
            _REFUSED.append((error, scratch))
            return scratch

    return resolve


def raise_refused_run_dir() -> None:
    """Raise the error a run-folder resolver kept (`deferring`), removing the scratch folders Hydra was given."""
    if _REFUSED:
        error = _REFUSED[0][0]
        for _, scratch in _REFUSED:
            shutil.rmtree(scratch, ignore_errors=True)
        _REFUSED.clear()
        raise error


def successful_runs(runs_dir: str | Path, project: str) -> list[Path]:
    """Every run of `project` that finished, oldest first (by when `metrics.json` was written), but not the trials of
    `tune` (under `runs/<project>/tune/`). A run whose `metrics.json` is not readable JSON is passed over with a
    warning, so one broken folder breaks nothing else."""
    root = Path(runs_dir).expanduser() / project
    if not root.is_dir():
        return []
    runs = []
    for metrics in root.rglob(METRICS_FILE):
        if metrics.relative_to(root).parts[0] == TUNE_DIR:  # a search's trials: its own table, not the project's
            continue
        try:
            if not isinstance(read_json(metrics), dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as error:
            log.warning("skipping %s: its %s is broken (%s)", metrics.parent, METRICS_FILE, error)
            continue
        runs.append(metrics.parent)
    return sorted(runs, key=lambda run: (run / METRICS_FILE).stat().st_mtime)


def resolve_run(run: str | Path | None, runs_dir: str | Path, project: str) -> Path:
    """The run directory named by `run`, or the latest finished run of `project`."""
    if run:
        path = Path(run).expanduser()
        if not path.is_dir():
            raise RunNotFoundError(
                f"{path} is not a folder.",
                f"pass run=<a run folder under {Path(runs_dir) / project}>, or train one: "
                f"python -m projects.{project} train",
            )
        if not (path / METRICS_FILE).is_file():
            raise RunNotFoundError(
                f"{path} is not a finished run of {project} (no {METRICS_FILE} in it: its training did not finish).",
                f"pass run=<a folder under {Path(runs_dir) / project}>, or train again: "
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


def shipped_targets(project: Project) -> set[str]:
    """The `_target_`s named by the configs that come with the code: the shared groups and the project's own."""
    folders = [SHARED_CONFIGS, project_config_dir(project.name, project.config_dir)]
    targets: set[str] = set()
    for path in (path for folder in folders for path in folder.rglob("*.yaml")):
        _collect_targets(OmegaConf.to_container(OmegaConf.load(path), resolve=False), targets)
    return targets


def _collect_targets(node: Any, targets: set[str]) -> None:
    if isinstance(node, dict):
        if isinstance(node.get("_target_"), str):
            targets.add(node["_target_"])
        for value in node.values():
            _collect_targets(value, targets)
    elif isinstance(node, list):
        for value in node:
            _collect_targets(value, targets)


def read_metrics(run_dir: str | Path) -> dict[str, Any]:
    """The `metrics.json` of a run; a broken one is a `RunNotFoundError` that says so."""
    path = Path(run_dir) / METRICS_FILE
    try:
        metrics = read_json(path)
    except (OSError, ValueError) as error:
        raise RunNotFoundError(f"{path} is broken ({error}).", "train the run again, or pass another run=.") from error
    if not isinstance(metrics, dict):
        raise RunNotFoundError(f"{path} is not a JSON object.", "train the run again, or pass another run=.")
    return metrics


@dataclass
class Run:
    """A finished run, loaded: where it is, what it was trained with, how it scored, and its model.

    `data` is rebuilt from the run's data config with today's mirror and cache paths; it is prepared (read
    from disk and split) only when `prepared_data` is asked for, since predicting needs no dataset.
    """

    project: Project
    directory: Path
    config: DictConfig
    metrics: dict[str, Any]
    fitter: Fitter
    model: Any
    paths: DictConfig
    device: torch.device

    @property
    def name(self) -> str:
        return self.directory.name

    @cached_property
    def data(self) -> ProjectData:
        try:
            return self.project.build_data(self.config, self.paths)
        except InstantiationException as error:  # a key the data class does not take: a damaged or patched config
            raise RunNotFoundError(
                f"the data of {self.directory / CONFIG_FILE} cannot be built ({first_line(error.__cause__ or error)}).",
                "check any data.<key>= you added, or retrain the run.",
            ) from error

    @cached_property
    def prepared_data(self) -> ProjectData:
        self.data.prepare()
        return self.data

    def predict(self, values: list[Any]) -> Any:
        """The model's typed outputs (`Project.outputs`) for parsed records (`Project.parse_record`)."""
        raw = self.fitter.predict(self.model, self.data, self.project.stack_inputs(values), self.device)
        return self.project.outputs(raw)


def load_run(
    project: Project,
    run: str | Path | None,
    paths: DictConfig,
    device: torch.device | None = None,
    data: DictConfig | None = None,
) -> Run:
    """The run named by `run` (a folder), or the latest finished run of `project`, loaded.

    `data` patches the run's data config (`evaluate data.path=moved.csv`: a user's file that moved since).
    A folder that is not a finished run, that holds no model, or that belongs to another project is a
    `RunNotFoundError` naming what is missing and how to get a usable run.
    """
    directory = resolve_run(run, paths.runs_dir, project.name)
    train_again = f"train one: python -m projects.{project.name} train"
    metrics = read_metrics(directory)
    if metrics.get("project") is None:
        raise RunNotFoundError(f"{directory / METRICS_FILE} does not say which project the run is of.", train_again)
    if metrics.get("project") != project.name:
        raise RunNotFoundError(
            f"{directory} is a run of '{metrics.get('project')}', not of {project.name}.",
            f"pass run=<a {project.name} run folder>, or use python -m projects.{metrics.get('project')}.",
        )
    if not (directory / CONFIG_FILE).is_file():
        raise RunNotFoundError(f"{directory} has no {CONFIG_FILE}: its config was lost.", train_again)
    fitter = fitter_that_saved(directory)
    if fitter is None:
        if any(directory.glob("*.joblib")):
            raise RunNotFoundError(
                f"{directory} holds its model as a pickle (.joblib), which this version does not load: "
                "unpickling a file can run any code in it.",
                f"retrain the run (its models are now saved with skops): python -m projects.{project.name} train",
            )
        raise RunNotFoundError(f"{directory} holds no saved model (model.ckpt or model.skops).", train_again)
    config = load_run_config(directory)
    if data:
        config = OmegaConf.merge(config, {"data": data})
    for node in ("model", "data"):
        contents = OmegaConf.to_container(config[node], resolve=False) if node in config else None
        refuse_untrusted_targets(project, contents, f"{directory / CONFIG_FILE}: {node}", set(project.trusted_targets))
    model = fitter.load(config.model, directory, (project.package,))
    return Run(project, directory, config, metrics, fitter, model, paths, device or torch.device("cpu"))


def refuse_untrusted_targets(project: Project, node: Any, where: str, allowed: set[str]) -> None:
    """Every `_target_` in `node` (a plain container) must be the project's own code (`own_code`) or in `allowed`
    (the library estimators the project declares, `Project.trusted_targets`): a config naming `shutil.rmtree` is a
    file, not an instruction."""
    if isinstance(node, dict):
        target = node.get("_target_")
        if target is not None and not (str(target) in allowed or own_code(project, str(target))):
            named = ", ".join(sorted(project.trusted_targets))
            raise RunNotFoundError(
                f"{where} names _target_ {target}, which a run of {project.name} may not instantiate.",
                f"a run folder may only name code of {project.package.rstrip('.')}"
                f"{' or ' + named if named else ''}; retrain the run.",
            )
        for value in node.values():
            refuse_untrusted_targets(project, value, where, allowed)
    elif isinstance(node, list):
        for value in node:
            refuse_untrusted_targets(project, value, where, allowed)


def own_code(project: Project, target: str) -> bool:
    """Whether `target` names a class or function defined in the project's own package. The prefix alone is not
    enough: `projects.housing.data.np.save` starts like the project's code but is NumPy's, reached through the
    module's imports (Hydra looks attributes up along the path)."""
    if not target.startswith(project.package):
        return False
    try:
        found = get_object(target)  # imports the project's own modules only: the path starts inside its package
    except Exception:  # no such object: not the project's, and Hydra could not build it either
        return False
    return str(getattr(found, "__module__", None) or "").startswith(project.package)
