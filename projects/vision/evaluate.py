"""Vision's plots: a confusion matrix, the reliability diagram and the test images the model was surest wrong about."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from shared.classification import plot_reliability, plot_surest_mistakes
from shared.project import Evaluation
from shared.reports import plot_confusion_matrix


def as_pictures(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """N×3×H×W uint8 model inputs as N×H×W×3 floats in [0, 1], for plots."""
    array = images.numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    return array.transpose(0, 2, 3, 1).astype(np.float32) / 255.0


def report(evaluation: Evaluation, plots_dir: Path, class_names: Sequence[str]) -> list[Path]:
    """Confusion matrix, reliability diagram, and the surest mistakes among the test images."""
    targets, probabilities = evaluation.targets, evaluation.outputs
    return [
        plot_confusion_matrix(targets, probabilities.argmax(axis=1), class_names, plots_dir / "confusion_matrix.png"),
        plot_reliability(targets, probabilities, plots_dir / "reliability.png"),
        plot_surest_mistakes(
            as_pictures(evaluation.inputs), targets, probabilities, class_names, plots_dir / "misclassified.png"
        ),
    ]
