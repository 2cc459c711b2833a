"""MNIST's metrics and plots: accuracy and log loss; a confusion matrix and the misclassified digits."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from projects.mnist.data import DigitImages, denormalise
from shared.project import Evaluation
from shared.reports import plot_confusion_matrix, plot_image_grid

MISCLASSIFIED_SHOWN = 32


def score(targets: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """Accuracy and negative log-likelihood of class probabilities."""
    predicted = probabilities.argmax(axis=1)
    chosen = probabilities[np.arange(len(targets)), targets]
    return {
        "acc": float((predicted == targets).mean()),
        "nll": float(-np.log(np.clip(chosen, 1e-12, 1.0)).mean()),
    }


def report(evaluation: Evaluation, plots_dir: Path) -> list[Path]:
    """Confusion matrix, and the misclassified test digits the model was most sure about."""
    predicted = evaluation.outputs.argmax(axis=1)
    confusion = plot_confusion_matrix(
        evaluation.targets, predicted, DigitImages.class_names, plots_dir / "confusion_matrix.png"
    )
    wrong = np.flatnonzero(predicted != evaluation.targets)
    wrong = wrong[np.argsort(-evaluation.outputs[wrong, predicted[wrong]])][:MISCLASSIFIED_SHOWN]
    images = denormalise(evaluation.inputs[wrong]) if len(wrong) else np.zeros((0, 28, 28))
    titles = [f"{evaluation.targets[i]}→{predicted[i]} ({evaluation.outputs[i, predicted[i]]:.2f})" for i in wrong]
    grid = plot_image_grid(images, titles, plots_dir / "misclassified.png")
    return [confusion, grid]
