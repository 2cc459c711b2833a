"""The GAN on the real MNIST from the mirror: a short conditional run must reach a real floor of conditional
accuracy, judged by the mnist quick preset's classifier. Skipped without a mirror."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.heavy]


def test_a_short_conditional_run_draws_the_digits_it_is_asked_for(cli, quick_mnist_run: Path, isolated: Path) -> None:
    result = cli(
        "gan",
        "train",
        f"judge={quick_mnist_run}",
        "trainer=cpu",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=150",
        "model.ema_decay=0.99",
        "data.val_size=1000",
        "data.measure_samples=2000",
    )
    assert result.code == 0, result.err
    [metrics_file] = (isolated / "runs" / "gan").rglob("metrics.json")
    scores = json.loads(metrics_file.read_text())["metrics"]
    assert scores["test/fd_floor"] < scores["test/fd"], scores  # real against real is the floor
    assert scores["test/precision"] < scores["test/precision_real"], scores  # and real digits lie in the real manifold
    # 150 batches are far from a trained GAN (measured with this judge: 34% after 120 batches, 75% after 300), but
    # a generator that ignored its labels would score chance, 10%.
    assert scores["test/cond_acc"] >= 0.2, scores
