"""Housing outputs and metrics: every model's [value, low, high] columns as an `Estimates` record, scored as
RMSE in dollars with its 95% interval, MAE, R² and, when the model has an interval, its coverage and width."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

from shared.metrics import MAX, MIN, NEITHER, Metrics

# The interval's coverage has a target (the configured `cv.coverage`), not a direction: NEITHER.
METRICS = Metrics(
    "rmse",
    {
        "rmse": MIN,
        "rmse_ci_low": MIN,
        "rmse_ci_high": MIN,
        "mae": MIN,
        "r2": MAX,
        "interval_coverage": NEITHER,
        "interval_width": MIN,
    },
)


@dataclass(frozen=True, eq=False)  # arrays have no single truth value to compare by
class Estimates:
    """Predicted values in dollars, with the bounds of the model's prediction interval (NaN where it has none).

    Every housing model predicts the same three columns, so scoring, plots and `predict` read fields here
    instead of guessing from array shapes what a model gave.
    """

    values: np.ndarray
    low: np.ndarray
    high: np.ndarray

    @classmethod
    def from_columns(cls, raw: np.ndarray) -> Estimates:
        """The record of a model's (N, 3) output: [value, interval_low, interval_high]."""
        raw = np.asarray(raw, dtype=float)
        if raw.ndim != 2 or raw.shape[1] != 3:
            raise ValueError(f"housing models predict (N, 3) columns [value, low, high], not shape {raw.shape}")
        return cls(raw[:, 0], raw[:, 1], raw[:, 2])

    @property
    def has_interval(self) -> bool:
        """Whether the model gave an interval (cross-validated, or validated for the MLP)."""
        return not (np.isnan(self.low).all() and np.isnan(self.high).all())

    def __len__(self) -> int:
        return len(self.values)


def score(targets: np.ndarray, outputs: Estimates) -> dict[str, float]:
    """RMSE with a 95% t-interval on the mean squared error (the book's), MAE, R², and the interval's coverage
    and mean width when the model has an interval."""
    predicted = outputs.values
    squared = (predicted - targets) ** 2
    metrics = {"rmse": root_mean_squared_error(targets, predicted)}
    if len(targets) > 2:
        low, high = stats.t.interval(0.95, len(squared) - 1, loc=squared.mean(), scale=stats.sem(squared))
        metrics |= {"rmse_ci_low": float(np.sqrt(max(low, 0.0))), "rmse_ci_high": float(np.sqrt(high))}
    metrics |= {"mae": mean_absolute_error(targets, predicted), "r2": r2_score(targets, predicted)}
    if outputs.has_interval:
        inside = (targets >= outputs.low) & (targets <= outputs.high)
        metrics |= {
            "interval_coverage": float(inside.mean()),
            "interval_width": float(np.mean(outputs.high - outputs.low)),
        }
    return {name: float(value) for name, value in metrics.items()}
