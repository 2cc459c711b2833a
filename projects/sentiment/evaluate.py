"""Sentiment metrics and plots: the core's classification metrics with F1 and ROC-AUC; the confusion matrix,
the core's reliability diagram, the surest mistakes (explained), and the linear model's strongest n-grams."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import f1_score, roc_auc_score

from projects.sentiment.data import CLASS_NAMES
from projects.sentiment.linear import TfidfClassifier
from shared.capabilities import Explains, Explanation, format_explanation
from shared.classification import classification_scores, plot_reliability, surest_mistakes
from shared.io import write_text
from shared.project import Evaluation
from shared.reports import plot_confusion_matrix, save_figure

WORST_SHOWN = 20


def score(targets: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """Accuracy, log loss and calibration error (the core's), F1 of the positive class, and ROC-AUC: the
    figures the sentiment literature reports beside accuracy. ROC-AUC is NaN when a split holds one class."""
    predicted = probabilities.argmax(axis=1)
    both = len(np.unique(targets)) == 2
    return {
        **classification_scores(targets, probabilities),
        "f1": float(f1_score(targets, predicted, zero_division=0)),
        "roc_auc": float(roc_auc_score(targets, probabilities[:, 1])) if both else float("nan"),
    }


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def write_worst_errors(evaluation: Evaluation, explanations: list[Explanation] | None, path: Path) -> Path:
    """A Markdown table of the surest mistakes: text, truth, P(positive), and why, where the model can say."""
    indices = surest_mistakes(evaluation.targets, evaluation.outputs, WORST_SHOWN)
    lines = [
        f"# The {len(indices)} surest mistakes on {evaluation.split}",
        "",
        "| text | true | P(positive) | strongest evidence |",
        "| --- | --- | --- | --- |",
    ]
    for rank, index in enumerate(indices):
        why = format_explanation(explanations[rank]) if explanations else ""
        text = _cell(str(evaluation.inputs[index]))
        lines.append(
            f"| {text} | {CLASS_NAMES[evaluation.targets[index]]} | {evaluation.outputs[index, 1]:.3f} | {_cell(why)} |"
        )
    return write_text(path, "\n".join(lines) + "\n")


def plot_top_ngrams(weights: dict[str, list[tuple[str, float]]], path: Path) -> Path:
    """Horizontal bars: the n-grams with the largest weights towards negative and towards positive."""
    figure = Figure(figsize=(10, 6))
    for column, (label, colour) in enumerate((("negative", "tab:red"), ("positive", "tab:green")), start=1):
        axes = figure.add_subplot(1, 2, column)
        names = [name.replace("__", ": ", 1) for name, _ in weights[label]][::-1]
        values = [value for _, value in weights[label]][::-1]
        axes.barh(range(len(values)), values, color=colour)
        axes.set_yticks(range(len(names)), [repr(name)[1:-1] for name in names], fontsize=8)
        axes.set_title(f"strongest {label} n-grams")
        axes.set_xlabel("logistic-regression weight")
    return save_figure(figure, path)


def report(evaluation: Evaluation, plots_dir: Path, model: Any) -> list[Path]:
    """Confusion matrix, reliability diagram, the surest mistakes (explained where the model `Explains`), and the
    linear model's top n-grams."""
    targets, probabilities = evaluation.targets, evaluation.outputs
    written = [
        plot_confusion_matrix(targets, probabilities.argmax(axis=1), CLASS_NAMES, plots_dir / "confusion_matrix.png"),
        plot_reliability(targets, probabilities, plots_dir / "reliability.png"),
    ]
    texts = [evaluation.inputs[index] for index in surest_mistakes(targets, probabilities, WORST_SHOWN)]
    explanations = model.explain(texts) if texts and isinstance(model, Explains) else None
    # a table, not an image: kept out of the returned list, which the model card shows as images
    write_worst_errors(evaluation, explanations, plots_dir / "worst_errors.md")
    if isinstance(model, TfidfClassifier):
        written.append(plot_top_ngrams(model.top_ngrams(), plots_dir / "top_ngrams.png"))
    return written
