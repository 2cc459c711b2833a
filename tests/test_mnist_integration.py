"""The real MNIST from the mirror: the `quick` preset must reach a real accuracy floor; Fashion-MNIST trains too."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.integration


def test_quick_preset_reaches_97_percent_on_real_mnist(quick_mnist_run: Path) -> None:
    metrics = json.loads((quick_mnist_run / "metrics.json").read_text())
    assert metrics["data"]["train examples"] == 55_000 and metrics["data"]["test examples"] == 10_000
    assert metrics["metrics"]["test/acc"] >= 0.97, metrics["metrics"]


def test_fashion_mnist_trains_through_the_same_reader_and_records_its_dataset(
    cli, mirror: Path, isolated: Path, tmp_path: Path
) -> None:
    """`data=fashion_mnist`: the mirror's files pass their checksums, the run says which dataset it learned (the GAN
    matches its judge by it), and predict names the classes."""
    if not (mirror / "fashion-mnist").is_dir():
        pytest.skip(f"no fashion-mnist/ in the mirror {mirror}")
    result = cli(
        "mnist", "train", "data=fashion_mnist", "trainer=cpu", "trainer.max_epochs=1", "+trainer.limit_train_batches=40"
    )
    assert result.code == 0, result.err
    [metrics_file] = (isolated / "runs" / "mnist").rglob("metrics.json")
    metrics = json.loads(metrics_file.read_text())
    assert metrics["data"]["dataset id"] == "fashion_mnist" and metrics["data"]["test examples"] == 10_000
    assert 0.6 <= metrics["metrics"]["test/acc"] < 0.99, metrics["metrics"]  # 40 batches: learning, not finished
    from projects.mnist.data import FashionMnist

    data = FashionMnist(mirror_dir=str(mirror), val_size=5000)
    data.prepare()
    np.save(tmp_path / "clothes.npy", data.images("test")[:20])
    output = tmp_path / "preds.csv"
    result = cli(
        "mnist", "predict", f"input={tmp_path / 'clothes.npy'}", f"output={output}", f"run={metrics_file.parent}"
    )
    assert result.code == 0, result.err
    rows = list(csv.DictReader(output.open()))
    names = [FashionMnist.class_names[label] for label in data.targets("test")[:20]]
    assert np.mean([row["label"] == name for row, name in zip(rows, names, strict=True)]) >= 0.6
