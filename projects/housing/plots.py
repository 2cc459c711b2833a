"""Housing plots: what a reviewer of a valuation model asks for (exploration, fit, residuals, error by group,
feature importance). `evaluation.outputs` is the project's `Estimates` record; the plots use its values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.frozen import FrozenEstimator
from sklearn.inspection import permutation_importance
from sklearn.metrics import root_mean_squared_error

from projects.housing.data import NUMERIC, TARGET, HousingData, income_category
from projects.housing.models import PointPredictor
from shared.project import Evaluation
from shared.reports import save_figure

INCOME_BANDS = ("< $15k", "$15-30k", "$30-45k", "$45-60k", "> $60k")


def report(evaluation: Evaluation, plots_dir: Path, data: HousingData, model: PointPredictor) -> list[Path]:
    """Exploration of the train part, then the test evaluation's plots."""
    frame = data.frame("train")
    return [
        plot_map(frame, plots_dir / "map.png"),
        plot_correlations(frame, plots_dir / "correlations.png"),
        plot_distributions(frame, plots_dir / "distributions.png"),
        plot_predictions(evaluation, plots_dir / "predicted_vs_actual.png"),
        plot_residuals(evaluation, plots_dir / "residuals.png"),
        plot_error_by_group(evaluation, plots_dir / "error_by_group.png"),
        plot_permutation_importance(evaluation, model, plots_dir / "permutation_importance.png"),
    ]


def plot_map(frame: pd.DataFrame, path: Path) -> Path:
    """Districts where they are, coloured by median value, sized by population."""
    figure = Figure(figsize=(7, 6))
    axes = figure.add_subplot()
    points = axes.scatter(
        frame["longitude"], frame["latitude"], c=frame[TARGET], s=frame["population"] / 150, cmap="jet", alpha=0.4
    )
    figure.colorbar(points, ax=axes, label="median house value ($)")
    axes.set(xlabel="longitude", ylabel="latitude", title=f"{len(frame):,} training districts")
    return save_figure(figure, path)


def plot_correlations(frame: pd.DataFrame, path: Path) -> Path:
    """Pearson correlations of the numeric columns and the target."""
    columns = [name for name in (*NUMERIC, TARGET) if name in frame]
    matrix = frame[columns].corr().to_numpy()
    figure = Figure(figsize=(8, 7))
    axes = figure.add_subplot()
    image = axes.imshow(matrix, cmap="coolwarm", vmin=-1, vmax=1)
    for row, column in np.ndindex(matrix.shape):
        axes.text(column, row, f"{matrix[row, column]:.2f}", ha="center", va="center", fontsize=7)
    axes.set_xticks(range(len(columns)), columns, rotation=45, ha="right")
    axes.set_yticks(range(len(columns)), columns)
    figure.colorbar(image, ax=axes)
    axes.set_title("correlations (train)")
    return save_figure(figure, path)


def plot_distributions(frame: pd.DataFrame, path: Path) -> Path:
    """A histogram per numeric column: the heavy tails and the caps (age 52, value $500,001) show here."""
    columns = [name for name in (*NUMERIC, TARGET) if name in frame]
    figure = Figure(figsize=(12, 8))
    for index, name in enumerate(columns, start=1):
        axes = figure.add_subplot(3, 3, index)
        axes.hist(frame[name].dropna(), bins=50)
        axes.set_title(name, fontsize=9)
    return save_figure(figure, path)


def plot_predictions(evaluation: Evaluation, path: Path) -> Path:
    """Predicted against actual values, with the diagonal; the cap shows as a vertical wall at $500,001."""
    predicted = evaluation.outputs.values
    figure = Figure(figsize=(6, 6))
    axes = figure.add_subplot()
    axes.scatter(evaluation.targets, predicted, s=4, alpha=0.3)
    limits = [0, max(evaluation.targets.max(), predicted.max())]
    axes.plot(limits, limits, color="black", linewidth=1)
    axes.set(
        xlabel="actual ($)",
        ylabel="predicted ($)",
        title=f"test RMSE ${evaluation.metrics.get('test/rmse', np.nan):,.0f}",
    )
    return save_figure(figure, path)


def plot_residuals(evaluation: Evaluation, path: Path) -> Path:
    """Residuals against predictions (any trend is a bias) and their distribution."""
    predicted = evaluation.outputs.values
    residuals = evaluation.targets - predicted
    figure = Figure(figsize=(11, 4.5))
    axes = figure.add_subplot(1, 2, 1)
    axes.scatter(predicted, residuals, s=4, alpha=0.3)
    axes.axhline(0, color="black", linewidth=1)
    axes.set(xlabel="predicted ($)", ylabel="actual − predicted ($)", title="residuals")
    axes = figure.add_subplot(1, 2, 2)
    axes.hist(residuals, bins=60)
    axes.set(xlabel="actual − predicted ($)", title="residual distribution")
    return save_figure(figure, path)


def errors_by_group(evaluation: Evaluation) -> dict[str, pd.DataFrame]:
    """Test RMSE, MAE and count per `ocean_proximity` value and per income band."""
    inputs: pd.DataFrame = evaluation.inputs
    errors = pd.DataFrame({"error": evaluation.targets - evaluation.outputs.values}, index=inputs.index)
    groups = {"income band": income_category(inputs["median_income"]).map(dict(enumerate(INCOME_BANDS, start=1)))}
    if "ocean_proximity" in inputs:
        groups = {"ocean_proximity": inputs["ocean_proximity"], **groups}
    return {
        name: errors.groupby(keys, observed=True)["error"].agg(
            rmse=lambda error: float(np.sqrt(np.mean(error**2))),
            mae=lambda error: float(np.mean(np.abs(error))),
            count="size",
        )
        for name, keys in groups.items()
    }


def plot_error_by_group(evaluation: Evaluation, path: Path) -> Path:
    """RMSE per group, with each group's count: where the model is worse, and how much data it had there."""
    tables = errors_by_group(evaluation)
    figure = Figure(figsize=(6 * len(tables), 4.5))
    for index, (name, table) in enumerate(tables.items(), start=1):
        axes = figure.add_subplot(1, len(tables), index)
        bars = axes.bar(table.index.astype(str), table["rmse"])
        axes.bar_label(
            bars,
            [f"${rmse / 1000:.0f}k\nn={count}" for rmse, count in zip(table["rmse"], table["count"], strict=True)],
            fontsize=8,
        )
        axes.margins(y=0.15)  # room for the labels above the tallest bar
        axes.set(title=f"test RMSE by {name}", ylabel="RMSE ($)")
        axes.tick_params(axis="x", labelrotation=20)
    return save_figure(figure, path)


def plot_permutation_importance(evaluation: Evaluation, model: PointPredictor, path: Path, repeats: int = 5) -> Path:
    """How much test RMSE grows when one input column is shuffled (the raw columns, as a user supplies them)."""

    def neg_rmse(estimator: Any, inputs: pd.DataFrame, targets: np.ndarray) -> float:
        return -root_mean_squared_error(targets, model.point(inputs))

    # permutation_importance asks for a fitted scikit-learn estimator (the torch MLP is not one): the frozen
    # wrapper satisfies it, and the scorer above does the predicting.
    result = permutation_importance(
        FrozenEstimator(model),
        evaluation.inputs,
        evaluation.targets,
        scoring=neg_rmse,
        n_repeats=repeats,
        random_state=42,
    )
    order = np.argsort(result.importances_mean)
    figure = Figure(figsize=(7, 4.5))
    axes = figure.add_subplot()
    axes.barh(
        np.asarray(evaluation.inputs.columns)[order], result.importances_mean[order], xerr=result.importances_std[order]
    )
    axes.set(xlabel="test RMSE increase when shuffled ($)", title="permutation importance")
    return save_figure(figure, path)
