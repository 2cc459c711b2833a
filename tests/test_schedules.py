"""The one-cycle schedule that keeps a time budget: OneCycleLR without one, annealed on time with one (seconds)."""

from __future__ import annotations

import io

import pytest
import torch
from lightning.pytorch import LightningModule, Trainer

from shared.schedules import BudgetedOneCycleLR, time_budget_spent

ONE_CYCLE = {"max_lr": 0.1, "total_steps": 100, "pct_start": 0.25}


def _optimizer() -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1, momentum=0.9)


def _rates(schedule: torch.optim.lr_scheduler.LRScheduler, steps: int) -> list[tuple[float, float]]:
    rates = []
    for _ in range(steps):
        group = schedule.optimizer.param_groups[0]
        rates.append((group["lr"], group["momentum"]))
        schedule.optimizer.step()
        schedule.step()
    return rates


def test_without_a_time_limit_it_is_one_cycle_step_for_step() -> None:
    plain = torch.optim.lr_scheduler.OneCycleLR(_optimizer(), **ONE_CYCLE)
    budgeted = BudgetedOneCycleLR(_optimizer(), **ONE_CYCLE)
    assert _rates(budgeted, 100) == _rates(plain, 100)


def test_the_spent_budget_moves_the_schedule_ahead_and_never_back() -> None:
    spent = {"share": 0.0}
    schedule = BudgetedOneCycleLR(_optimizer(), budget_spent=lambda: spent["share"], **ONE_CYCLE)
    reference = _rates(torch.optim.lr_scheduler.OneCycleLR(_optimizer(), **ONE_CYCLE), 100)
    _rates(schedule, 10)
    assert schedule.get_last_lr()[0] == pytest.approx(reference[10][0]), "on steps while time is ahead of nothing"
    spent["share"] = 0.6
    _rates(schedule, 1)
    assert schedule.get_last_lr()[0] == pytest.approx(reference[59][0]), (
        "60% of the way (step 59 of 0-99): the time spent"
    )
    spent["share"] = 1.0
    _rates(schedule, 1)
    final = schedule.get_last_lr()[0]
    assert final == pytest.approx(0.1 / 25 / 1e4), "the budget spent: annealed to OneCycleLR's last rate"
    assert final < min(rate for rate, _ in reference[:99])


def test_its_state_is_plain_data_a_checkpoint_can_hold() -> None:
    schedule = BudgetedOneCycleLR(_optimizer(), budget_spent=lambda: 0.5, **ONE_CYCLE)
    buffer = io.BytesIO()
    torch.save(schedule.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    assert "budget_spent" not in state and state["total_steps"] == 100


class _Line(LightningModule):
    """y = 2x fitted by SGD on the budgeted schedule: a run long in epochs, cut short by max_time."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch: list[torch.Tensor], batch_index: int) -> torch.Tensor:
        inputs, targets = batch
        return ((inputs * self.weight - targets) ** 2).mean()

    def configure_optimizers(self) -> dict:
        optimizer = torch.optim.SGD(self.parameters(), lr=0.01, momentum=0.9)
        schedule = BudgetedOneCycleLR(
            optimizer,
            budget_spent=time_budget_spent(self.trainer),
            max_lr=0.01,
            total_steps=self.trainer.estimated_stepping_batches,
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def test_a_run_stopped_by_max_time_ends_with_the_rate_annealed() -> None:
    inputs = torch.linspace(-1, 1, 64).unsqueeze(1)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(inputs, 2 * inputs), batch_size=8)
    trainer = Trainer(
        max_epochs=100_000,  # 800,000 planned steps: by steps alone the rate would still be warming up at 1 s
        max_time={"seconds": 1},
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    model = _Line()
    trainer.fit(model, loader)
    assert trainer.current_epoch < 100_000, "stopped by the time limit"
    [schedule] = trainer.lr_scheduler_configs
    assert schedule.scheduler.get_last_lr()[0] == pytest.approx(0.01 / 25 / 1e4, rel=1e-3)


def test_without_max_time_the_budget_is_never_spent() -> None:
    assert time_budget_spent(Trainer(max_epochs=1, logger=False, accelerator="cpu"))() == 0.0
