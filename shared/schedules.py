"""Learning-rate schedules that keep a time budget: a one-cycle schedule that ends when `trainer.max_time` does.

A preset capped by `trainer.max_time` is meant to keep its budget on any machine. With a schedule counted in steps
alone, a slower machine stops it part-way, before the rate has annealed, and the run pays for it in accuracy. Here
the schedule stands at the further of two positions: the steps taken out of those planned, and the share of the
time budget spent. On a machine fast enough for every epoch nothing changes; on a slower one the rate anneals on
time, and the Timer stops training (and Lightning validates) where the schedule ends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import Timer


def time_budget_spent(trainer: Trainer) -> Callable[[], float]:
    """A function of no arguments giving the share of `trainer.max_time` spent training so far (Lightning's Timer,
    the clock that stops the run), or always 0 when the run has no time limit."""
    timer = next((callback for callback in trainer.callbacks if isinstance(callback, Timer)), None)
    if timer is None or timer.time_remaining() is None:
        return lambda: 0.0

    budget = max(timer.time_elapsed() + timer.time_remaining(), 1e-9)  # max_time, in seconds

    def spent() -> float:
        return min(1.0, timer.time_elapsed() / budget)

    return spent


class BudgetedOneCycleLR(torch.optim.lr_scheduler.OneCycleLR):
    """`OneCycleLR` (the same arguments, momentum cycling included) whose position is the further of the steps it
    has taken and `budget_spent() × total_steps`: without a time limit (`budget_spent` always 0) it is OneCycleLR."""

    def __init__(
        self, optimizer: torch.optim.Optimizer, budget_spent: Callable[[], float] = lambda: 0.0, **options: Any
    ) -> None:
        self.budget_spent = budget_spent
        super().__init__(optimizer, **options)

    def get_lr(self) -> list[float | torch.Tensor]:
        steps = self.last_epoch
        on_time = round(self.budget_spent() * (self.total_steps - 1))  # OneCycleLR's last rate is at total - 1
        self.last_epoch = max(steps, on_time)
        try:
            return super().get_lr()
        finally:
            self.last_epoch = steps

    def state_dict(self) -> dict[str, Any]:
        """The schedule's state without the clock (a function, which a checkpoint of plain data cannot hold)."""
        state = super().state_dict()
        state.pop("budget_spent", None)
        return state
