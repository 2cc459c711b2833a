"""Where the configs live and how they are composed, instantiated, saved and read back.

Each project's primary configs sit in its config folder, `configs/<project>/` (`train.yaml`, and
`evaluate.yaml`, `predict.yaml` where it has its own), beside its own groups (`data/`, `model/`,
`experiment/`). The groups every project shares (`trainer/`, `logger/`, `callbacks/`, `paths/`,
`debug/`) sit in `configs/shared/`, which the core adds to Hydra's search path. So overrides read
short: `model=mlp trainer=gpu`, never `mnist/model=mlp`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from shared.errors import PortfolioError, RunNotFoundError, UsageError
from shared.io import write_text

CONFIG_ROOT = Path(__file__).resolve().parents[1] / "configs"
SHARED_CONFIGS = CONFIG_ROOT / "shared"
CONFIG_FILE = "config.yaml"


def project_config_dir(project: str, directory: Path | None = None) -> Path:
    """A project's config folder: `directory` when the project names one, else `configs/<project>`."""
    directory = directory or CONFIG_ROOT / project
    if not directory.is_dir():
        raise UsageError(
            f"no config folder for project '{project}' at {directory}.",
            "install the repository in editable mode (pip install -e .) so the configs stay beside the code.",
        )
    return directory


def searchpath_override() -> str:
    """The Hydra override that puts the shared groups on the search path."""
    return f"hydra.searchpath=['file://{SHARED_CONFIGS.as_posix()}']"


def register_resolvers() -> None:
    """OmegaConf resolvers the configs use. Called by the CLI, not at import."""
    from shared.runs import deferring, new_run_dir, new_sweep_dir

    OmegaConf.register_new_resolver("new_run_dir", deferring(new_run_dir), replace=True)
    OmegaConf.register_new_resolver("new_sweep_dir", deferring(new_sweep_dir), replace=True)


def compose_config(
    project: str, command: str, overrides: list[str] | None = None, directory: Path | None = None
) -> DictConfig:
    """Compose a command's config without running it (tests, benchmarks, notebooks, `tune`'s checks)."""
    register_resolvers()
    with hydra_set_aside(), initialize_config_dir(str(project_config_dir(project, directory)), version_base="1.3"):
        return compose(config_name=command, overrides=[*(overrides or []), searchpath_override()])


@contextmanager
def hydra_set_aside() -> Iterator[None]:
    """Room for another Hydra app inside a running one (`tune` trains each trial as a `train` command): Hydra keeps
    one global instance, so the running app's is set aside for the block, then put back with its `HydraConfig` and
    its log handlers (the inner app's, a trial's `train.log`, are closed)."""
    instance = GlobalHydra.instance()
    running = instance.hydra if instance.is_initialized() else None
    hydra_config = HydraConfig.instance().cfg
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    instance.clear()
    try:
        yield
    finally:
        instance.clear()
        if running is not None:
            instance.initialize(running)
        HydraConfig.instance().cfg = hydra_config
        for handler in root.handlers:
            if handler not in handlers:
                handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)


def build(node: DictConfig, **extra: Any) -> Any:
    """Hydra-instantiate `node` with plain Python values. A `PortfolioError` raised by the constructor (a
    bad option the user can fix) comes out as itself, not wrapped in Hydra's InstantiationException."""
    try:
        return instantiate(node, **extra, _convert_="all")
    except InstantiationException as error:
        if isinstance(error.__cause__, PortfolioError):
            raise error.__cause__ from None
        raise


def save_config(cfg: DictConfig, path: Path) -> Path:
    """Save the resolved config (what actually ran), atomically."""
    return write_text(path, OmegaConf.to_yaml(cfg, resolve=True))


def load_run_config(run_dir: Path) -> DictConfig:
    """The resolved config a run was trained with; a damaged one (not YAML, not a mapping with a model and its
    data) is a `RunNotFoundError` that says so."""
    path = run_dir / CONFIG_FILE
    try:
        config = OmegaConf.load(path)
    except Exception as error:  # YAML and OmegaConf errors of every kind, unreadable files
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise RunNotFoundError(f"{path} is damaged: not readable YAML ({reason}).", "retrain the run.") from error
    missing = [node for node in ("model", "data") if not isinstance(config, DictConfig) or node not in config]
    if missing:
        raise RunNotFoundError(f"{path} is damaged: it has no {' and no '.join(missing)} section.", "retrain the run.")
    return config
