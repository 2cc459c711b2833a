"""What a search is and where it lives: the checked command (`Tuning`), its objective (a validation metric and
its declared direction), the study's RDB storage, and the study itself, created or resumed by name."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf
from sqlalchemy.engine import make_url

from shared.config import compose_config
from shared.errors import UsageError
from shared.metrics import Goal
from shared.project import Project
from shared.runs import TUNE_DIR
from shared.tune.space import SearchSpace, optuna_choice
from shared.tune.trial import CV_PREFIX


@dataclass(frozen=True)
class Objective:
    """What the study optimises: a metric's bare name (`acc`), read as `cv/acc` (scikit-learn) or `val/acc`."""

    name: str
    direction: str  # "maximize" | "minimize"

    @property
    def label(self) -> str:
        return f"val|cv/{self.name}"

    def value(self, metrics: dict[str, float]) -> float | None:
        for split in (CV_PREFIX, "val"):
            if f"{split}/{self.name}" in metrics:
                return float(metrics[f"{split}/{self.name}"])
        return None


@dataclass(frozen=True)
class Tuning:
    """One tune command, checked: the project, its search space, the study and where it lives."""

    project: Project
    config_dir: Path
    space: SearchSpace
    study: str
    storage: str
    objective: Objective
    train_overrides: tuple[str, ...]
    runs_dir: Path
    cv_folds: int
    seed: int

    @property
    def folder(self) -> Path:
        """runs/<project>/tune/<study>/: the trials, the table, the plots, the summary."""
        return self.runs_dir / self.project.name / TUNE_DIR / self.study


def objective_of(project: Project, composed: DictConfig, metric: str | None) -> Objective:
    """The metric the study optimises and its declared direction. A test metric is refused: no trial reads test."""
    declared = project.metrics_for(project.build_data(composed, composed.paths))
    metric = str(metric or f"val/{declared.headline}")
    split, separator, name = metric.rpartition("/")
    if split == "test":
        raise UsageError(
            f"metric={metric} is a test metric: a search that chose by the test split would report an optimistic "
            "figure, so no trial reads test.",
            f"search on the validation metric, metric=val/{name} (cross-validated on train for scikit-learn models).",
        )
    if separator and split not in ("val", CV_PREFIX):
        raise UsageError(f"metric={metric} is not a validation metric.", f"use metric=val/{declared.headline}.")
    goal = declared.goal(name)
    if goal not in (Goal.MAX, Goal.MIN):
        raise UsageError(
            f"metric={metric} has {'no declared direction' if goal is None else 'a target, not a direction'}.",
            "search on one of: "
            + ", ".join(f"val/{key}" for key, value in declared.goals.items() if value is not Goal.NEITHER),
        )
    return Objective(name, "maximize" if goal is Goal.MAX else "minimize")


def shown(url: str) -> str:
    """A storage URL fit for logs and summary.json: its password masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy reads: storage_of says so
        return url


def storage_of(url: str) -> optuna.storages.RDBStorage:
    """The study's RDB storage. SQLite: several processes write one file, so each waits up to a minute for the lock.
    Heartbeats mark a trial whose worker died as failed, so a resumed study does not wait on it."""
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, engine_kwargs=engine, heartbeat_interval=30, grace_period=120)
    except Exception as error:  # a URL SQLAlchemy cannot read, a database it cannot reach, a missing driver
        raise UsageError(
            f"storage={shown(url)} cannot be opened ({type(error).__name__}: {str(error).splitlines()[0]}).",
            "use a SQLAlchemy URL such as sqlite:///study.db or postgresql://user:password@host/db "
            "(with its driver installed), or leave storage= out for the SQLite file under runs/.",
        ) from error


def create_study(tuning: Tuning, cfg: DictConfig, worker: int = 0) -> optuna.Study:
    """The study, created or loaded by name (a study resumes where it stopped); a new one starts with the config's
    own values (`baseline=true`: the untuned figure) and the search's `enqueue:` trials."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # `tune` logs each trial itself
    pruner_cfg = tuning.space.pruner or OmegaConf.to_container(cfg.pruner)
    try:
        pruner = instantiate(pruner_cfg)
    except Exception as error:
        raise UsageError(
            f"the pruner {pruner_cfg} cannot be built ({error}).", "name an optuna.pruners class."
        ) from error
    study = optuna.create_study(
        storage=storage_of(tuning.storage),
        study_name=tuning.study,
        direction=tuning.objective.direction,
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=tuning.seed + worker),
        pruner=pruner,
    )
    if study.direction.name.lower() != tuning.objective.direction:
        raise UsageError(
            f"the study {tuning.study} in {shown(tuning.storage)} was created to {study.direction.name.lower()}, but "
            f"{tuning.objective.name} is to {tuning.objective.direction}.",
            "give this search another study=NAME.",
        )
    if worker == 0 and cfg.worker is None and not study.trials:
        if cfg.baseline:
            baseline = _baseline_values(tuning)
            if baseline:
                study.enqueue_trial(baseline, user_attrs={"baseline": True})
        for params in tuning.space.enqueue:
            study.enqueue_trial(dict(params))
    return study


def _baseline_values(tuning: Tuning) -> dict[str, Any]:
    """The train config's own values of the searched keys, where they lie in the space: the untuned trial."""
    composed = compose_config(
        tuning.project.name, "train", [*tuning.space.overrides, *tuning.train_overrides], tuning.config_dir
    )
    values = {}
    for param in tuning.space.params:
        value = OmegaConf.select(composed, param.key, default=None)
        if isinstance(value, DictConfig | ListConfig):
            value = OmegaConf.to_container(value, resolve=True)
        if param.kind == "categorical":
            if optuna_choice(value) in param.stored_choices:
                values[param.key] = optuna_choice(value)
        elif isinstance(value, int | float) and not isinstance(value, bool) and param.low <= value <= param.high:
            values[param.key] = value
    return values
