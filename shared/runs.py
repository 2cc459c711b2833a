"""Runs: the directories each `train` leaves, and the `Run` object every later command loads them as.

A run lives at `runs/<project>/<timestamp>[-<name>]/` (multirun jobs one level deeper). It
counts as finished once `metrics.json` exists: that file is written last. `load_run` turns a
finished run back into its config, metrics, model, fitter and data, and refuses, with a message
that says what is missing, a folder that is not a finished run of the project.
"""

from __future__ import annotations

import importlib.metadata
import logging
import platform
import shutil
import subprocess
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
from omegaconf import DictConfig, ListConfig, OmegaConf

from shared.config import CONFIG_FILE, SHARED_CONFIGS, compose_config, load_run_config, project_config_dir
from shared.errors import PortfolioError, RunNotFoundError, UsageError
from shared.fitters import Fitter, first_line, fitter_that_saved, read_plain_checkpoint
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


def unfinished_runs(runs_dir: str | Path, project: str) -> list[Path]:
    """Runs of `project` that stopped before `metrics.json` but left a checkpoint to resume, oldest first."""
    root = Path(runs_dir).expanduser() / project
    if not root.is_dir():
        return []
    runs = [path.parents[1] for path in root.rglob(LAST_CHECKPOINT) if not (path.parents[1] / METRICS_FILE).exists()]
    return sorted(runs, key=lambda run: (run / LAST_CHECKPOINT).stat().st_mtime)


def resume_overrides(project: Project, overrides: list[str]) -> list[str]:
    """`train resume=RUN|latest` as the overrides that continue that run: its own command line again, into its
    own folder, from its last full checkpoint (later overrides, `trainer=cpu` say, still apply)."""
    asked = [item.partition("=")[2] for item in overrides if item.startswith("resume=")]
    if not asked or asked[-1] in ("", "null"):
        return overrides
    others = [item for item in overrides if not item.startswith("resume=")]
    # the runs folder, as the command line and the environment set it
    paths = [item for item in others if item.startswith("paths.")]
    runs_dir = compose_config(project.name, "train", paths, project.config_dir).paths.runs_dir
    if asked[-1] == "latest":
        candidates = unfinished_runs(runs_dir, project.name)
        if not candidates:
            raise UsageError(
                f"no interrupted {project.name} run to resume under {Path(runs_dir) / project.name}.",
                f"pass resume=<run folder>, or start one: python -m projects.{project.name} train",
            )
        run_dir = candidates[-1]
    else:
        run_dir = Path(asked[-1]).expanduser().resolve()
    if (run_dir / METRICS_FILE).exists():
        raise UsageError(f"{run_dir} finished already: there is nothing to resume.", "train a new run instead.")
    if not (run_dir / LAST_CHECKPOINT).is_file():
        raise UsageError(
            f"{run_dir} has no {LAST_CHECKPOINT} to resume from (Lightning runs keep one from their first epoch).",
            f"train again: python -m projects.{project.name} train",
        )
    saved = _saved_overrides(project, run_dir)
    _refuse_untrusted_resume(project, run_dir, saved, others)
    _check_last_checkpoint(run_dir / LAST_CHECKPOINT)
    (run_dir / INTERRUPTED_FILE).unlink(missing_ok=True)
    return [*saved, *others, f"resume={run_dir / LAST_CHECKPOINT}", f"hydra.run.dir={run_dir}"]


def _saved_overrides(project: Project, run_dir: Path) -> list[str]:
    """The command line a run was started with (`.hydra/overrides.yaml`), refused when it is not one a user could
    have typed into a run: Hydra's own settings (its callbacks and logging run code) and config-group choices that
    name a file by its path (`model=../../elsewhere/evil`, which Hydra would read) are not taken from a folder."""
    saved_file = run_dir / ".hydra" / "overrides.yaml"
    retrain = f"start a new run instead: python -m projects.{project.name} train"
    try:
        loaded = OmegaConf.load(saved_file) if saved_file.is_file() else []
    except Exception as error:  # YAML errors of every kind
        raise RunNotFoundError(f"{saved_file} is not readable YAML ({first_line(error)}).", retrain) from error
    if not isinstance(loaded, list | ListConfig) or not all(isinstance(item, str) for item in loaded):
        raise RunNotFoundError(f"{saved_file} is not a list of overrides.", retrain)
    saved = [str(item) for item in loaded if not str(item).startswith(("resume=", "hydra.run.dir="))]
    for item in saved:
        key, _, value = item.lstrip("+~").partition("=")
        group_path = "." not in key and any(mark in value for mark in ("/", "\\", ".."))
        if key.startswith("hydra") or group_path:
            raise RunNotFoundError(
                f"{run_dir} was started with the override {item}, which a resumed run does not take from its folder.",
                f"resume it with that override typed again if you mean it, or {retrain}",
            )
    return saved


def _refuse_untrusted_resume(project: Project, run_dir: Path, saved: list[str], others: list[str]) -> None:
    """Every `_target_` of the config a resume would train with must be the project's own code, one it declares
    (`Project.trusted_targets`), one the shipped configs name (Lightning's callbacks and loggers), or one typed on
    this command line: a folder's saved `+callbacks.x._target_=os.system` is a file, not an instruction."""
    try:
        composed = compose_config(project.name, "train", [*saved, *others], project.config_dir)
    except Exception:  # an override Hydra refuses: it refuses it again when the command runs, before any code
        return
    typed = {value for key, _, value in (item.partition("=") for item in others) if key.endswith("_target_")}
    allowed = {*project.trusted_targets, *shipped_targets(project), *typed}
    where = f"{run_dir} (resumed with its overrides)"
    _refuse_untrusted_targets(project, OmegaConf.to_container(composed, resolve=False), where, allowed)


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


def _check_last_checkpoint(path: Path) -> None:
    """A resumable checkpoint: a dict of tensors and plain values (loaded as Lightning will, `weights_only`) with the
    state Lightning restores; a damaged file, or one holding other objects, is refused with the reason."""
    checkpoint = read_plain_checkpoint(
        path, "resumed from", "start a new run: the run's other files are left as they are."
    )
    if not isinstance(checkpoint, dict) or not {"state_dict", "loops"} <= set(checkpoint):
        raise RunNotFoundError(
            f"{path} is not a full Lightning checkpoint (no state_dict and loops to resume).", "start a new run."
        )


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
        _refuse_untrusted_targets(project, contents, f"{directory / CONFIG_FILE}: {node}", set(project.trusted_targets))
    model = fitter.load(config.model, directory, (project.package,))
    return Run(project, directory, config, metrics, fitter, model, paths, device or torch.device("cpu"))


def _refuse_untrusted_targets(project: Project, node: Any, where: str, allowed: set[str]) -> None:
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
            _refuse_untrusted_targets(project, value, where, allowed)
    elif isinstance(node, list):
        for value in node:
            _refuse_untrusted_targets(project, value, where, allowed)


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
    return {"python": platform.python_version(), "platform": platform.platform(), **library_versions(LIBRARIES)}


def library_versions(libraries: tuple[str, ...]) -> dict[str, str | None]:
    """Each installed library's version, None for one that is not installed."""
    versions: dict[str, str | None] = {}
    for library in libraries:
        try:
            versions[library] = importlib.metadata.version(library)
        except importlib.metadata.PackageNotFoundError:
            versions[library] = None
    return versions
