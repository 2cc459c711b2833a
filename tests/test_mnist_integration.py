"""The real MNIST from the mirror: the `quick` preset must reach a real accuracy floor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_quick_preset_reaches_97_percent_on_real_mnist(cli, mirror: Path, isolated: Path) -> None:
    if not (mirror / "mnist").is_dir():
        pytest.skip(f"no mnist/ in the mirror {mirror}")
    result = cli("mnist", "train", "experiment=quick", "trainer=cpu")
    assert result.code == 0, result.err
    [metrics_file] = (isolated / "runs" / "mnist").rglob("metrics.json")
    metrics = json.loads(metrics_file.read_text())
    assert metrics["data"]["train examples"] == 55_000 and metrics["data"]["test examples"] == 10_000
    assert metrics["metrics"]["test/acc"] >= 0.97, metrics["metrics"]
