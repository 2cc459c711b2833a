"""Sentiment metrics and plots: accuracy, F1, ROC-AUC, calibration, confusion, worst errors, explanations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import f1_score, log_loss, roc_auc_score

from projects.sentiment.data import CLASS_NAMES
from shared.io import write_text
from shared.project import Evaluation
from shared.reports import plot_confusion_matrix, save_figure

CALIBRATION_BINS = 15
WORST_SHOWN = 20


def expected_calibration_error(targets: np.ndarray, probabilities: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """Guo et al. (2017): the gap between confidence and accuracy, averaged over equal-width confidence bins."""
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


def score(targets: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """Accuracy, F1 of the positive class, ROC-AUC, log loss and expected calibration error."""
    predicted = probabilities.argmax(axis=1)
    both = len(np.unique(targets)) == 2
    return {
        "acc": float((predicted == targets).mean()),
        "f1": float(f1_score(targets, predicted, zero_division=0)),
        "roc_auc": float(roc_auc_score(targets, probabilities[:, 1])) if both else float("nan"),
        "nll": float(log_loss(targets, np.clip(probabilities, 1e-7, 1.0), labels=[0, 1])),
        "ece": expected_calibration_error(targets, probabilities),
    }


def plot_reliability(targets: np.ndarray, probabilities: np.ndarray, path: Path) -> Path:
    """Reliability diagram of P(positive): observed positive rate against predicted, per bin, with counts."""
    predicted = probabilities[:, 1]
    edges = np.linspace(0.0, 1.0, 11)
    which = np.clip(np.digitize(predicted, edges[1:-1]), 0, 9)
    centres, rates, counts = [], [], []
    for index in range(10):
        inside = which == index
        if inside.any():
            centres.append(predicted[inside].mean())
            rates.append(targets[inside].mean())
            counts.append(int(inside.sum()))
    figure = Figure(figsize=(8, 3.8))
    axes = figure.add_subplot(1, 2, 1)
    axes.plot([0, 1], [0, 1], "--", color="grey", label="perfectly calibrated")
    axes.plot(centres, rates, marker="o", label="model")
    axes.set_xlabel("predicted P(positive)")
    axes.set_ylabel("observed fraction positive")
    axes.set_title(f"reliability (ECE {expected_calibration_error(targets, probabilities):.3f})")
    axes.legend(loc="upper left")
    axes.grid(alpha=0.3)
    histogram = figure.add_subplot(1, 2, 2)
    histogram.hist(predicted, bins=edges, color="tab:blue", alpha=0.8)
    histogram.set_xlabel("predicted P(positive)")
    histogram.set_ylabel("texts")
    histogram.set_title("confidence histogram")
    return save_figure(figure, path)


def worst_errors(evaluation: Evaluation, count: int = WORST_SHOWN) -> list[int]:
    """Indices of the misclassified texts the model was surest about, surest first."""
    predicted = evaluation.outputs.argmax(axis=1)
    wrong = np.flatnonzero(predicted != evaluation.targets)
    return wrong[np.argsort(-evaluation.outputs[wrong, predicted[wrong]])][:count].tolist()


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def format_explanation(pairs: list[tuple[str, float]]) -> str:
    """`great (+0.41), dull (-0.30)`: the strongest features or tokens and which way they push."""
    return ", ".join(f"{name} ({value:+.2f})" for name, value in pairs)


def write_worst_errors(evaluation: Evaluation, explanations: list[list[tuple[str, float]]] | None, path: Path) -> Path:
    """A Markdown table of the surest mistakes: text, truth, P(positive), and why, where the model can say."""
    indices = worst_errors(evaluation)
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
    """Confusion matrix, reliability diagram, the surest mistakes (explained), and the model's top n-grams."""
    from projects.sentiment.models import explain, top_ngrams_of

    written = [
        plot_confusion_matrix(
            evaluation.targets, evaluation.outputs.argmax(axis=1), CLASS_NAMES, plots_dir / "confusion_matrix.png"
        ),
        plot_reliability(evaluation.targets, evaluation.outputs, plots_dir / "reliability.png"),
    ]
    texts = [evaluation.inputs[index] for index in worst_errors(evaluation)]
    explanations = explain(model, texts) if texts else []
    write_worst_errors(evaluation, explanations, plots_dir / "worst_errors.md")  # a table: kept out of the
    # returned list, which the model card shows as images
    weights = top_ngrams_of(model)
    if weights:
        written.append(plot_top_ngrams(weights, plots_dir / "top_ngrams.png"))
    return written
