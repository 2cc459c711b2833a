"""Pruning a Lightning trial on its validation metric, through optuna-integration's Lightning callback.

A trial's `train` runs in the process of the worker that asked for it, so the live `optuna.Trial` waits here, by
study and number, and the trial's config names the callback (`callbacks.tune_pruning`), which finds it. Optuna's
callback raises `TrialPruned` inside the Trainer; this one stops training at that epoch instead, so the trial ends
as a normal run (its kept weights evaluated on val and saved), and `tune` records it as pruned afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import optuna
from lightning import LightningModule, Trainer
from optuna_integration import PyTorchLightningPruningCallback

from shared.errors import UsageError


@dataclass
class Outcome:
    """What the callback saw: the epoch Optuna's pruner stopped the trial at, if it did."""

    pruned_at: int | None = None


_ACTIVE: dict[tuple[str, int], tuple[optuna.Trial, Outcome]] = {}


@contextmanager
def active(study: str, trial: optuna.Trial) -> Iterator[Outcome]:
    """Make `trial` findable by its run's pruning callback while its train runs."""
    outcome = Outcome()
    _ACTIVE[(study, trial.number)] = (trial, outcome)
    try:
        yield outcome
    finally:
        _ACTIVE.pop((study, trial.number), None)


class TrialPruning(PyTorchLightningPruningCallback):
    """Reports `monitor` to the trial after every validation and stops training when Optuna's pruner says so."""

    def __init__(self, study: str, number: int, monitor: str) -> None:
        if (study, number) not in _ACTIVE:
            raise UsageError(
                f"trial {number} of study {study} is not running in this process: a trial's train is started by "
                "`tune`, in one process (Lightning's DDP would start others).",
                "run tune without trainer=ddp for the trials; scale out with workers= or several machines instead.",
            )
        trial, self.outcome = _ACTIVE[(study, number)]
        super().__init__(trial, monitor)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        try:
            super().on_validation_end(trainer, pl_module)
        except optuna.TrialPruned:
            self.outcome.pruned_at = pl_module.current_epoch
            trainer.should_stop = True
