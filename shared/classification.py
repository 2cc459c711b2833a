"""What every classifier here shares: the Lightning base (loss with label smoothing, accuracy logged as
`train/acc` and `val/acc`, softmax outputs), its metrics (accuracy, NLL, ECE), the reliability diagram,
and the grid of the surest mistakes. MNIST, sentiment and vision use these; none keeps a copy.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from lightning import LightningModule
from matplotlib.figure import Figure
from torchmetrics.classification import MulticlassAccuracy

from shared.metrics import MAX, MIN, Goal
from shared.reports import plot_image_grid, save_figure

CALIBRATION_BINS = 15
CLASSIFICATION_GOALS: dict[str, Goal] = {"acc": MAX, "nll": MIN, "ece": MIN}


class Classifier(LightningModule):
    """Training, validation and prediction steps of a network that maps a batch `(inputs, labels)` to class logits.

    A subclass defines `forward(inputs) -> logits` and `configure_optimizers`; it may override `training_step`
    (an ensemble, adversarial training) and keep the rest.
    """

    def __init__(self, classes: int, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.classes, self.label_smoothing = classes, label_smoothing
        self.train_accuracy = MulticlassAccuracy(num_classes=classes, average="micro")
        self.val_accuracy = MulticlassAccuracy(num_classes=classes, average="micro")

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy with the configured label smoothing (Szegedy et al. 2016)."""
        return F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)

    def log_training(self, loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """`train/loss` and `train/acc`, per epoch."""
        self.train_accuracy(logits, labels)
        size = len(labels)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True, batch_size=size)
        self.log("train/acc", self.train_accuracy, on_step=False, on_epoch=True, batch_size=size)

    def training_step(self, batch: Sequence[Any], batch_index: int) -> torch.Tensor:
        inputs, labels = batch
        logits = self(inputs)
        loss = self.loss(logits, labels)
        self.log_training(loss, logits, labels)
        return loss

    def validation_step(self, batch: Sequence[Any], batch_index: int) -> None:
        inputs, labels = batch
        logits = self(inputs)
        self.val_accuracy(logits, labels)
        size = len(labels)
        self.log(
            "val/loss", F.cross_entropy(logits, labels), on_epoch=True, prog_bar=True, sync_dist=True, batch_size=size
        )
        self.log("val/acc", self.val_accuracy, on_epoch=True, prog_bar=True, batch_size=size)

    def predict_step(self, batch: Sequence[Any], batch_index: int) -> torch.Tensor:
        return F.softmax(self(batch[0]).float(), dim=1)


def expected_calibration_error(targets: np.ndarray, probabilities: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """Guo et al. (2017): the gap between confidence and accuracy, averaged over equal-width confidence bins
    (from 1/classes, the lowest confidence a top class can have, for two classes from 0.5)."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == targets
    edges = np.linspace(0.5 if probabilities.shape[1] == 2 else 0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for index in range(bins):
        inside = which == index
        if inside.any():
            error += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(error)


def classification_scores(targets: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """Accuracy, negative log-likelihood and expected calibration error of class probabilities."""
    predicted = probabilities.argmax(axis=1)
    chosen = probabilities[np.arange(len(targets)), targets]
    return {
        "acc": float((predicted == targets).mean()),
        "nll": float(-np.log(np.clip(chosen, 1e-7, 1.0)).mean()),
        "ece": expected_calibration_error(targets, probabilities),
    }


def surest_mistakes(targets: np.ndarray, probabilities: np.ndarray, count: int) -> np.ndarray:
    """Indices of the misclassified examples the model was surest about, surest first."""
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != targets)
    return wrong[np.argsort(-probabilities[wrong, predicted[wrong]], kind="stable")][:count]


def plot_surest_mistakes(
    images: np.ndarray,
    targets: np.ndarray,
    probabilities: np.ndarray,
    class_names: Sequence[str],
    path: Path,
    count: int = 32,
) -> Path:
    """A grid of the surest mistakes: `true→predicted (probability)` above each image (values in [0, 1])."""
    wrong = surest_mistakes(targets, probabilities, count)
    predicted = probabilities.argmax(axis=1)
    titles = [
        f"{class_names[targets[i]]}→{class_names[predicted[i]]} ({probabilities[i, predicted[i]]:.2f})" for i in wrong
    ]
    shown = images[wrong] if len(wrong) else np.zeros((0, *images.shape[1:]))
    return plot_image_grid(shown, titles, path)


def plot_reliability(targets: np.ndarray, probabilities: np.ndarray, path: Path, bins: int = 10) -> Path:
    """Reliability diagram: accuracy against confidence of the top class per bin, beside the confidence histogram."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == targets
    low = 0.5 if probabilities.shape[1] == 2 else 0.0
    edges = np.linspace(low, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    centres = [confidence[which == index].mean() for index in range(bins) if (which == index).any()]
    accuracies = [correct[which == index].mean() for index in range(bins) if (which == index).any()]
    figure = Figure(figsize=(8, 3.8))
    axes = figure.add_subplot(1, 2, 1)
    axes.plot([low, 1], [low, 1], "--", color="grey", label="perfectly calibrated")
    axes.plot(centres, accuracies, marker="o", label="model")
    axes.set_xlabel("confidence (probability of the predicted class)")
    axes.set_ylabel("accuracy")
    axes.set_title(f"reliability (ECE {expected_calibration_error(targets, probabilities):.3f})")
    axes.legend(loc="upper left")
    axes.grid(alpha=0.3)
    histogram = figure.add_subplot(1, 2, 2)
    histogram.hist(confidence, bins=edges, color="tab:blue", alpha=0.8)
    histogram.set_xlabel("confidence")
    histogram.set_ylabel("examples")
    histogram.set_title("confidence histogram")
    return save_figure(figure, path)


def per_class_accuracy(targets: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Each class's recall: the share of its examples predicted as it (NaN for a class with none)."""
    predicted = probabilities.argmax(axis=1)
    classes = probabilities.shape[1]
    totals = np.bincount(targets, minlength=classes)
    hits = np.bincount(targets[predicted == targets], minlength=classes)
    return np.where(totals > 0, hits / np.maximum(totals, 1), np.nan)


def plot_per_class_accuracy(
    targets: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str], path: Path
) -> Path:
    """One bar per class with its accuracy written on it, and the overall accuracy as a line: which classes the
    model gets wrong, in numbers rather than the confusion matrix's counts."""
    overall = 100 * float((probabilities.argmax(axis=1) == targets).mean())
    accuracies = dict(zip(class_names, 100 * per_class_accuracy(targets, probabilities), strict=True))
    return plot_accuracy_bars(accuracies, overall, f"all classes {overall:.1f}%", "accuracy per class", path)


def plot_accuracy_bars(
    accuracies: dict[str, float], line: float, line_label: str, title: str, path: Path, first_colour: str | None = None
) -> Path:
    """Accuracies in percent as labelled bars (NaN drawn empty), with a reference accuracy as a dashed line;
    `first_colour` sets the first bar apart (a clean baseline beside its variants)."""
    names, values = list(accuracies), np.array(list(accuracies.values()), dtype=float)
    colours = ["#4c72b0" if first_colour is None else first_colour, *["#4c72b0"] * (len(names) - 1)]
    figure = Figure(figsize=(max(5.0, 0.6 * len(names) + 2), 3.6))
    axes = figure.add_subplot()
    bars = axes.bar(range(len(names)), np.nan_to_num(values), color=colours)
    axes.bar_label(bars, labels=[f"{value:.1f}" for value in values], fontsize=8)
    axes.axhline(line, color="grey", linestyle="--", linewidth=1, label=line_label)
    axes.set_xticks(range(len(names)), names, rotation=30 if max(map(len, names)) > 2 else 0, ha="right")
    axes.set_ylim(0, 115)
    axes.set_ylabel("accuracy (%)")
    axes.set_title(title)
    axes.legend(loc="upper right", fontsize=8)
    return save_figure(figure, path)


def class_columns(
    probabilities: np.ndarray, class_names: Sequence[str], label: str = "label", top: int = 1
) -> list[dict[str, Any]]:
    """`predict`'s columns for a classifier: the predicted class and its probability, then (with `top` above 1)
    the runners-up as `label_2`, `probability_2`, ... up to `top`, most probable first."""
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, : max(1, min(top, probabilities.shape[1]))]
    rows = []
    for ranked, row in zip(order, probabilities, strict=True):
        columns: dict[str, Any] = {}
        for rank, index in enumerate(ranked, start=1):
            suffix = "" if rank == 1 else f"_{rank}"
            columns[f"{label}{suffix}"] = class_names[index]
            columns[f"probability{suffix}"] = round(float(row[index]), 6)
        rows.append(columns)
    return rows
