"""Vision's plots: a confusion matrix, the accuracy of each class, the reliability diagram, the test images the model
was surest wrong about, and its accuracy under each common corruption beside a few test images so corrupted."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from projects.vision.corruptions import corrupt
from shared.classification import (
    plot_accuracy_bars,
    plot_per_class_accuracy,
    plot_reliability,
    plot_surest_mistakes,
)
from shared.project import Evaluation
from shared.reports import plot_confusion_matrix, save_figure

EXAMPLES = 8  # test images shown under each corruption


def as_pictures(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """N×3×H×W uint8 model inputs as N×H×W×3 floats in [0, 1], for plots."""
    array = images.numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    return array.transpose(0, 2, 3, 1).astype(np.float32) / 255.0


def report(
    evaluation: Evaluation,
    plots_dir: Path,
    class_names: Sequence[str],
    corruptions: Sequence[str] = (),
    severity: int = 3,
) -> list[Path]:
    """Confusion matrix, accuracy per class, reliability diagram, the surest mistakes among the test images, and
    (when the corruption suite ran) the accuracy under each corruption and what the corruptions look like."""
    targets, probabilities = evaluation.targets, evaluation.outputs
    written = [
        plot_confusion_matrix(targets, probabilities.argmax(axis=1), class_names, plots_dir / "confusion_matrix.png"),
        plot_per_class_accuracy(targets, probabilities, class_names, plots_dir / "per_class_accuracy.png"),
        plot_reliability(targets, probabilities, plots_dir / "reliability.png"),
        plot_surest_mistakes(
            as_pictures(evaluation.inputs), targets, probabilities, class_names, plots_dir / "misclassified.png"
        ),
    ]
    split = evaluation.split
    scored = [name for name in corruptions if f"{split}/{name}_acc" in evaluation.metrics]
    if scored:
        accuracies = {"clean": evaluation.metrics[f"{split}/acc"]}
        accuracies |= {name: evaluation.metrics[f"{split}/{name}_acc"] for name in scored}
        written.append(plot_corruption_accuracy(accuracies, severity, plots_dir / "corruptions.png"))
        written.append(plot_corruption_examples(evaluation.inputs[:EXAMPLES], scored, severity, plots_dir))
    return written


def plot_corruption_accuracy(accuracies: dict[str, float], severity: int, path: Path) -> Path:
    """One bar per corruption beside the clean test set's, with the mean over the corruptions as a line."""
    percent = {name: 100 * value for name, value in accuracies.items()}
    mean = sum(list(percent.values())[1:]) / (len(percent) - 1)
    title = f"accuracy under common corruptions (severity {severity} of 5)"
    return plot_accuracy_bars(percent, mean, f"mean under corruption {mean:.1f}%", title, path, first_colour="#dd8452")


def plot_corruption_examples(images: torch.Tensor, names: Sequence[str], severity: int, plots_dir: Path) -> Path:
    """A few test images (columns) clean and under each corruption (rows), as the model saw them."""
    rows = [("clean", images), *((name, corrupt(images, name, severity)) for name in names)]
    figure = Figure(figsize=(1.1 * len(images) + 1.2, 1.15 * len(rows)))
    for row, (name, pictures) in enumerate(rows):
        for column, picture in enumerate(as_pictures(pictures)):
            axes = figure.add_subplot(len(rows), len(images), row * len(images) + column + 1)
            axes.imshow(picture, interpolation="nearest")
            axes.set_xticks([])
            axes.set_yticks([])
            if column == 0:
                axes.set_ylabel(name, fontsize=8)
    figure.suptitle(f"common corruptions, severity {severity} of 5", fontsize=10)
    return save_figure(figure, plots_dir / "corruption_examples.png")
