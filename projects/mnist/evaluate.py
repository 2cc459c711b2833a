"""MNIST's metrics and plots: the core's classification metrics; a confusion matrix, the reliability diagram
and the misclassified digits the model was surest about."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from projects.mnist.data import denormalise
from shared.classification import plot_reliability, plot_surest_mistakes
from shared.project import Evaluation
from shared.reports import plot_confusion_matrix


def report(evaluation: Evaluation, plots_dir: Path, names: Sequence[str]) -> list[Path]:
    """Confusion matrix, reliability diagram, and the surest mistakes among the test images."""
    targets, probabilities = evaluation.targets, evaluation.outputs
    return [
        plot_confusion_matrix(targets, probabilities.argmax(axis=1), names, plots_dir / "confusion_matrix.png"),
        plot_reliability(targets, probabilities, plots_dir / "reliability.png"),
        plot_surest_mistakes(
            denormalise(evaluation.inputs), targets, probabilities, names, plots_dir / "misclassified.png"
        ),
    ]
