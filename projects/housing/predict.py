"""Reading districts to predict: a CSV with the training columns (the target, if present, is ignored).

A missing column stops everything with an error naming it; a bad value (an unknown category, text in
a number column, a latitude outside California) fails only its row; empty cells are imputed as in
training; extra columns are ignored with a warning.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from projects.housing.data import TARGET, Column, read_csv
from shared.errors import DataError, UsageError
from shared.project import PredictItem

log = logging.getLogger(__name__)


def read_districts(source: str, features: tuple[Column, ...]) -> list[PredictItem]:
    """One item per row of the CSV `source`: its cleaned values, or what is wrong with them."""
    path = Path(source).expanduser()
    if not path.is_file():
        raise UsageError(f"input {path} is not a file.", "pass input=<a CSV of districts with the training columns>.")
    frame = read_csv(path, dtype=str, keep_default_na=False)
    names = [column.name for column in features]
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise DataError(
            f"{path} lacks the column(s) {', '.join(missing)}.",
            f"give every district these columns (cells may be empty): {', '.join(names)}.",
        )
    extra = [name for name in frame.columns if name not in names and name != TARGET]
    if extra:
        log.warning("ignoring column(s) the model does not use: %s", ", ".join(map(str, extra)))
    problems = pd.concat(
        [dataclasses.replace(column, nullable=True).problems(frame[column.name]) for column in features], axis=1
    )
    items = []
    for (index, row), row_problems in zip(frame[names].iterrows(), problems.itertuples(index=False), strict=True):
        error = "; ".join(problem for problem in row_problems if problem)
        items.append(PredictItem(str(index), error=error) if error else PredictItem(str(index), _clean(row, features)))
    return items


def _clean(row: pd.Series, features: tuple[Column, ...]) -> dict[str, Any]:
    """Empty cells as missing values (imputed by the model); numbers as floats."""
    values: dict[str, Any] = {}
    for column in features:
        text = str(row[column.name]).strip()
        values[column.name] = np.nan if not text else (text if column.categories else float(text))
    return values


def stack_districts(values: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(values)


def prediction_columns(outputs: np.ndarray) -> list[dict[str, Any]]:
    """The predicted median house value, and the conformal interval's bounds when the model has one."""
    if outputs.ndim == 1:
        return [{TARGET: round(float(value), 0)} for value in outputs]
    return [
        {TARGET: round(float(value), 0), "interval_low": round(float(low), 0), "interval_high": round(float(high), 0)}
        for value, low, high in outputs
    ]
