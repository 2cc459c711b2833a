"""`train resume=RUN|latest`: finding an interrupted run, and the overrides that continue it from its last full
checkpoint, refusing what a run folder may not make a resumed run do (Hydra settings, config paths, foreign code)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import ListConfig, OmegaConf

from shared.config import compose_config
from shared.errors import RunNotFoundError, UsageError
from shared.fitters import first_line, read_plain_checkpoint
from shared.runs import (
    INTERRUPTED_FILE,
    LAST_CHECKPOINT,
    METRICS_FILE,
    refuse_untrusted_targets,
    shipped_targets,
)

if TYPE_CHECKING:
    from shared.project import Project


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
    refuse_untrusted_targets(project, OmegaConf.to_container(composed, resolve=False), where, allowed)


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
