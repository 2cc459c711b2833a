"""Reading districts to predict: one district is a record (column name -> value), from a CSV row or a JSON body.

A record's values go through the same per-value rules as the training file (`Column.check`), except that
any cell may be empty: it is imputed as in training. Every problem of a record (an unknown category, text
in a number column, a latitude outside California, a missing field) is named in its one `RecordError`, and
fails only that record, as does a row with more or fewer cells than the header. A CSV missing a column stops
everything with an error naming it; extra columns (an id, the target) are ignored with a warning. The file is
read by its byte-order mark (UTF-8, UTF-16, UTF-32), else as UTF-8, unless `encoding=` names another.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from projects.housing.data import TARGET, Column
from projects.housing.evaluate import Estimates
from shared.api_schema import RecordSchema
from shared.errors import DataError, RecordError, UsageError
from shared.project import PredictItem
from shared.textfiles import read_rows

log = logging.getLogger(__name__)


def parse_district(payload: Any, features: tuple[Column, ...]) -> dict[str, Any]:
    """One district as the models take it: floats, categories, NaN for empty cells, in the features' order.

    `payload` maps column names to values: strings from a CSV, numbers, strings or null from JSON.
    Names other than the features are ignored. Raises a `RecordError` naming every problem at once.
    """
    if not isinstance(payload, Mapping):
        raise RecordError(
            f"a district is a mapping of column name to value, not {type(payload).__name__}; "
            f"its columns: {', '.join(column.name for column in features)}"
        )
    values: dict[str, Any] = {}
    problems: list[str] = []
    for column in features:
        if column.name not in payload:
            problems.append(f"{column.name} is missing")
            continue
        # Any cell may be empty in predict: the model imputes it as it did the training gaps.
        checked = dataclasses.replace(column, nullable=True).check(payload[column.name])
        values[column.name] = checked.value
        if checked.problem:
            problems.append(checked.problem)
    if problems:
        raise RecordError("; ".join(problems))
    return values


# A district of the 1990 census (the first row of the California housing file).
EXAMPLE_DISTRICT = {
    "longitude": -122.23,
    "latitude": 37.88,
    "housing_median_age": 41.0,
    "total_rooms": 880.0,
    "total_bedrooms": 129.0,
    "population": 322.0,
    "households": 126.0,
    "median_income": 8.3252,
    "ocean_proximity": "NEAR BAY",
}


def district_schema(features: tuple[Column, ...]) -> RecordSchema:
    """The HTTP record of a district, from the same `Column`s `parse_district` checks: each field present, a number
    in its range or one of its categories, or null (imputed as in training)."""
    fields: dict[str, Any] = {}
    for column in features:
        if column.categories:
            kind: Any = Literal[column.categories] | None  # type: ignore[valid-type]
            fields[column.name] = (kind, Field(description=f"one of {', '.join(column.categories)}, or null"))
        else:
            fields[column.name] = (float | None, Field(ge=column.low, le=column.high, description="null: imputed"))
    model: type[BaseModel] = create_model(
        "District",
        __config__=ConfigDict(extra="ignore"),
        __doc__="One census district (block group); other fields (an id, the target) are ignored.",
        **fields,
    )
    names = {column.name for column in features}
    return RecordSchema(model, example={key: value for key, value in EXAMPLE_DISTRICT.items() if key in names})


def read_districts(
    path: Path,
    features: tuple[Column, ...],
    item: Callable[[str, dict[str, Any]], PredictItem],
    encoding: str | None = None,
) -> list[PredictItem]:
    """One item per row of the CSV at `path`, named by its row number (from 0), made by `item(name, record)`.

    A row with more or fewer cells than the header is that row's error, never shifted into other columns."""
    if not path.is_file():
        raise UsageError(f"input {path} is not a file.", "pass input=<a CSV of districts with the training columns>.")
    names = [column.name for column in features]
    header, rows = read_rows(path, f"a CSV with a header ({','.join(names)}) and one district per row", encoding)
    missing = [name for name in names if name not in header]
    if missing:
        raise DataError(
            f"{path} lacks the column(s) {', '.join(missing)}.",
            f"give every district these columns (cells may be empty): {', '.join(names)}.",
        )
    extra = [name for name in header if name not in names and name != TARGET]
    if extra:
        log.warning("ignoring column(s) the model does not use: %s", ", ".join(extra))
    return [
        PredictItem(str(index), error=row.error)
        if row.error
        else item(str(index), {name: row.values[name] for name in names})
        for index, row in enumerate(rows)
    ]


def prediction_columns(outputs: Estimates) -> list[dict[str, Any]]:
    """The predicted median house value, and the interval's bounds when the model has an interval."""
    if not outputs.has_interval:
        return [{TARGET: round(float(value), 0)} for value in outputs.values]
    return [
        {TARGET: round(float(value), 0), "interval_low": round(float(low), 0), "interval_high": round(float(high), 0)}
        for value, low, high in zip(outputs.values, outputs.low, outputs.high, strict=True)
    ]
