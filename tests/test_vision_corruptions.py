"""Vision's evaluation beyond accuracy: the common-corruption suite (CIFAR-10-C style: what each corruption does to a
batch, its seeding and severity, its refusals, the scores and plots the core writes from it) and per-class accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from projects.vision.corruptions import CORRUPTIONS, SEVERITIES, _disk_kernel, check_corruptions, corrupt
from projects.vision.data import SyntheticImages
from shared.classification import per_class_accuracy
from shared.errors import UsageError
from tests.conftest import train_one


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    data = SyntheticImages(test_size=64)
    data.prepare()
    return data.inputs("test")


def _change(images: torch.Tensor, name: str, severity: int) -> float:
    return (corrupt(images, name, severity).float() - images.float()).abs().mean().item()


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_each_corruption_keeps_the_batch_changes_the_pixels_and_is_seeded(images: torch.Tensor, name: str) -> None:
    corrupted = corrupt(images, name, 3)
    assert corrupted.shape == images.shape and corrupted.dtype == torch.uint8
    assert _change(images, name, 3) > 1.0  # mean absolute change, in 0-255 levels
    assert torch.equal(corrupted, corrupt(images, name, 3))
    assert _change(images, name, 1) < _change(images, name, SEVERITIES)  # harsher at a higher severity


def test_different_seeds_draw_different_noise(images: torch.Tensor) -> None:
    assert not torch.equal(corrupt(images, "gaussian_noise", 3, seed=0), corrupt(images, "gaussian_noise", 3, seed=1))


def test_contrast_keeps_each_images_mean_and_shrinks_its_spread(images: torch.Tensor) -> None:
    clean, flat = images.float(), corrupt(images, "contrast", 5).float()
    assert torch.allclose(flat.mean(dim=(1, 2, 3)), clean.mean(dim=(1, 2, 3)), atol=1.0)
    ratio = flat.std(dim=(1, 2, 3)) / clean.std(dim=(1, 2, 3))
    assert torch.allclose(ratio, torch.full_like(ratio, 0.15), atol=0.02)  # severity 5: the paper's factor 0.15


def test_the_defocus_kernel_is_a_normalised_symmetric_disk() -> None:
    kernel = _disk_kernel(1.5, 0.1)[0, 0]
    assert kernel.sum().item() == pytest.approx(1.0)
    assert torch.allclose(kernel, kernel.flip(0)) and torch.allclose(kernel, kernel.T)
    assert kernel[kernel.shape[0] // 2, kernel.shape[1] // 2] == kernel.max()


def test_pixelate_makes_blocks_of_one_colour() -> None:
    ramp = torch.arange(32, dtype=torch.uint8).mul(8).expand(1, 3, 32, 32).contiguous()
    assert len(corrupt(ramp, "pixelate", 5)[0, 0, 0].unique()) < len(ramp[0, 0, 0].unique())


@pytest.mark.parametrize(
    ("names", "severity", "named"),
    [(["fog"], 3, "fog"), (["jpeg"], 0, "corruption_severity"), (["jpeg"], 6, "corruption_severity")],
)
def test_unknown_corruptions_and_severities_are_refused(names: list[str], severity: int, named: str) -> None:
    with pytest.raises(UsageError, match=named) as refusal:
        check_corruptions(names, severity)
    assert "gaussian_noise" in (refusal.value.fix or "") or "1 (mild)" in (refusal.value.fix or "")


def test_train_scores_every_corruption_and_their_mean_and_plots_them(cli, isolated: Path) -> None:
    run = train_one(
        cli,
        isolated,
        "vision",
        "data=synthetic",
        "data.train_size=200",
        "data.corruptions=[gaussian_noise,contrast]",
        "data.corruption_severity=4",
        "model=resnet",
        "model.widths=[8,16,16,16]",
        "trainer=cpu",
        "trainer.max_epochs=1",
    )
    metrics = json.loads((run / "metrics.json").read_text())
    scores = metrics["metrics"]
    assert {"test/gaussian_noise_acc", "test/contrast_acc", "test/corruption_acc"} <= set(scores)
    assert "test/jpeg_acc" not in scores and "val/corruption_acc" not in scores  # only what was asked, only on test
    mean = (scores["test/gaussian_noise_acc"] + scores["test/contrast_acc"]) / 2
    assert scores["test/corruption_acc"] == pytest.approx(mean)
    assert metrics["goals"]["test/corruption_acc"] == "max"
    for plot in ("corruptions", "corruption_examples", "per_class_accuracy"):
        assert (run / "plots" / f"{plot}.png").is_file(), plot


def test_per_class_accuracy_is_each_classs_recall_and_nan_for_an_absent_class() -> None:
    targets = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 0, 1, 1, 0, 2])
    probabilities = np.eye(4)[predicted]  # four classes; class 3 has no example
    accuracies = per_class_accuracy(targets, probabilities)
    assert accuracies[:3] == pytest.approx([2 / 3, 1 / 2, 1.0]) and np.isnan(accuracies[3])


def test_a_corruption_the_suite_lacks_stops_the_run_with_the_known_ones(cli, isolated: Path) -> None:
    result = cli("vision", "train", "data=synthetic", "data.corruptions=[fog]", "trainer=cpu")
    assert result.code != 0
    assert "fog" in result.err and "gaussian_noise" in result.err and "Traceback" not in result.err
