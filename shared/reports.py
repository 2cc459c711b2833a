"""Plots and model cards written into a run directory.

Figures use matplotlib's object API (no pyplot, no global backend switch), and every file is
written atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from shared.io import atomic_path, write_text


def save_figure(figure: Figure, path: Path, tight: bool = True) -> Path:
    """Save a figure as PNG, atomically; `tight`: lay it out first (a figure that places its own axes says no).
    PNG's fastest compression: the files are a little larger, and every run writes a dozen of them."""
    if tight:
        figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=120, format="png", pil_kwargs={"compress_level": 1})
    return path


def plot_learning_curves(history: Sequence[dict[str, float]], path: Path) -> Path | None:
    """One panel per metric (loss, acc, ...), with its train and val curves over epochs."""
    if not history:
        return None
    names = sorted({key.split("/", 1)[1] for row in history for key in row if "/" in key})
    if not names:
        return None
    figure = Figure(figsize=(4.5 * len(names), 3.5))
    for index, name in enumerate(names, start=1):
        axes = figure.add_subplot(1, len(names), index)
        for stage in ("train", "val"):
            points = [(row["epoch"] + 1, row[f"{stage}/{name}"]) for row in history if f"{stage}/{name}" in row]
            if points:
                epochs, values = zip(*points, strict=True)
                axes.plot(epochs, values, marker="o", label=stage)
        axes.set_xlabel("epoch")
        axes.set_title(name)
        axes.grid(alpha=0.3)
        axes.legend()
    return save_figure(figure, path)


def plot_confusion_matrix(targets: np.ndarray, predicted: np.ndarray, labels: Sequence[str], path: Path) -> Path:
    """Counts of true (rows) against predicted (columns) classes, with the counts written in."""
    count = len(labels)
    matrix = np.zeros((count, count), dtype=int)
    np.add.at(matrix, (np.asarray(targets, dtype=int), np.asarray(predicted, dtype=int)), 1)
    size = max(4.0, 0.55 * count + 1.5)
    figure = Figure(figsize=(size + 1, size))
    axes = figure.add_subplot()
    image = axes.imshow(np.log1p(matrix), cmap="Blues")
    for row in range(count):
        for column in range(count):
            value = matrix[row, column]
            if value:
                dark = image.norm(np.log1p(value)) > 0.6
                axes.text(
                    column,
                    row,
                    str(value),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if dark else "black",
                )
    axes.set_xticks(range(count), labels, rotation=45 if max(map(len, labels)) > 2 else 0)
    axes.set_yticks(range(count), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    accuracy = float(np.trace(matrix) / max(matrix.sum(), 1))
    axes.set_title(f"confusion matrix (accuracy {accuracy:.2%})")
    return save_figure(figure, path)


def plot_image_grid(images: np.ndarray, titles: Sequence[str], path: Path, columns: int = 8) -> Path:
    """A grid of images (N×H×W grey or N×H×W×3 colour, values in [0, 1]) with a title each."""
    count = len(images)
    rows = max(1, int(np.ceil(count / columns)))
    figure = Figure(figsize=(1.4 * columns, 1.6 * rows))
    # fixed margins instead of tight_layout, which measures every one of the axes: half the time for a grid
    figure.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - 0.3 / (1.6 * rows), wspace=0.1, hspace=0.3)
    for index in range(count):
        axes = figure.add_subplot(rows, columns, index + 1)
        axes.imshow(images[index], cmap="gray" if images[index].ndim == 2 else None, vmin=0, vmax=1)
        axes.set_title(titles[index], fontsize=8)
        axes.axis("off")
    if count == 0:
        figure.text(0.5, 0.5, "nothing to show", ha="center")
    return save_figure(figure, path, tight=False)


def markdown_table(table: pd.DataFrame) -> str:
    """A Markdown table of a frame (numbers to 4 decimals), for the terminal and for files."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return "" if np.isnan(value) else f"{value:.4f}"
        return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + " --- |" * len(table.columns)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def _table(rows: dict[str, Any]) -> str:
    lines = ["| | |", "| --- | --- |"]
    lines += [f"| {key} | {_format(value)} |" for key, value in rows.items()]
    return "\n".join(lines)


def _format(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 100 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def write_model_card(path: Path, *, project: str, summary: str, metrics: dict[str, Any], card: dict[str, Any]) -> Path:
    """`MODEL_CARD.md` for a run, after Mitchell et al.'s model cards: what it is, how well, for what, and its limits.

    `card` holds the sections: model, identity (config choices and overrides), data, training, intended_use,
    limitations, plots, reproduce.
    """
    plots = "\n".join(f"![{Path(plot).stem}]({plot})" for plot in card.get("plots", []))
    scores = {key: value for key, value in metrics.get("metrics", {}).items()}
    text = f"""# Model card: {project} — {card["model"]}

{summary}

Generated {datetime.now().isoformat(timespec="seconds")} from run `{path.parent.name}`.

## Model
{_table(card["model_details"])}

## Configuration
{_table(card["identity"])}

## Data
{_table(card["data"])}

## Metrics
Validation metrics come from a split carved from the training data; test metrics come from the held-out
test set, touched only by this final evaluation. Headline: `{metrics.get("headline")}`.

{_table(scores)}

## Training
{_table(card["training"])}

## Intended use
{card["intended_use"]}

## Limitations
{card["limitations"]}

## Plots
{plots or "none"}

## Reproduce
```bash
{card["reproduce"]}
```
"""
    return write_text(path, text)
