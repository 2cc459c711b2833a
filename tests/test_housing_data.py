"""Housing data on tiny synthetic districts: validation of files and records, the sklearn copy, the book's split."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from projects.housing.data import (
    FEATURES,
    TARGET,
    TARGET_COLUMN,
    Column,
    GeronHousing,
    SklearnCalifornia,
    SyntheticHousing,
    from_sklearn,
    income_category,
    split,
    synthetic_frame,
    validate,
)
from projects.housing.project import HousingProject
from shared.errors import DataError, RecordError

COLUMNS = (*FEATURES, TARGET_COLUMN)
PROJECT = HousingProject()
# One district as a CSV row gives it: every value a string, an empty cell where the census has a gap.
DISTRICT = {
    "longitude": "-122.23",
    "latitude": "37.88",
    "housing_median_age": "41",
    "total_rooms": "880",
    "total_bedrooms": "",
    "population": "322",
    "households": "126",
    "median_income": "8.3252",
    "ocean_proximity": "NEAR BAY",
}


# --- validation ------------------------------------------------------------------------------
def test_a_good_frame_passes_and_numbers_become_floats() -> None:
    frame = synthetic_frame(50)
    frame["housing_median_age"] = frame["housing_median_age"].astype(int)
    checked = validate(frame, COLUMNS, "x.csv")
    assert checked["housing_median_age"].dtype == float and len(checked) == 50


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        (
            "ocean_proximity",
            "MARS",
            "column 'ocean_proximity' has 1 bad value(s); first, on line 5: ocean_proximity 'MARS'",
        ),
        (
            "median_income",
            "lots",
            "column 'median_income' has 1 bad value(s); first, on line 5: median_income 'lots' is not",
        ),
        ("latitude", 91.0, "column 'latitude' has 1 bad value(s); first, on line 5: latitude 91 is outside [32, 42.5]"),
        (TARGET, 900_000.0, f"column '{TARGET}' has 1 bad value(s)"),
        ("population", np.nan, "population is empty"),
    ],
)
def test_each_bad_value_names_its_column_and_line(column: str, value: object, message: str) -> None:
    frame = synthetic_frame(20)
    frame[column] = frame[column].astype(object)
    frame.loc[3, column] = value
    with pytest.raises(DataError) as caught:
        validate(frame, COLUMNS, "x.csv")
    assert message in str(caught.value)


def test_missing_bedrooms_are_allowed_like_the_real_file() -> None:
    frame = synthetic_frame(20)
    frame.loc[:5, "total_bedrooms"] = np.nan
    assert validate(frame, COLUMNS, "x.csv")["total_bedrooms"].isna().sum() == 6


def test_a_missing_column_is_named() -> None:
    with pytest.raises(DataError, match="lacks the column\\(s\\) households"):
        validate(synthetic_frame(20).drop(columns="households"), COLUMNS, "x.csv")


def test_a_wrong_mirror_file_stops_train_with_a_clear_error(cli, isolated: Path, monkeypatch) -> None:
    folder = isolated / "mirror" / "california-housing"
    folder.mkdir(parents=True)
    (folder / "housing.csv").write_text("b'longitude,latitude\\n1,2\\n")
    monkeypatch.setenv("PORTFOLIO_DATA_DIR", str(isolated / "mirror"))
    result = cli("housing", "train")
    assert result.code == 1 and "housing.csv (mirror) is corrupt" in result.err and "Traceback" not in result.err
    assert not list((isolated / "runs" / "housing").glob("*")), "a failed train must not leave a run behind"


def test_prepare_validates_what_it_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(GeronHousing, "load", lambda self: (synthetic_frame(30).drop(columns="median_income"), "f.csv"))
    with pytest.raises(DataError, match=r"f\.csv lacks the column\(s\) median_income"):
        GeronHousing().prepare()


def test_no_data_offline_names_the_file_and_both_fixes(cli, no_mirror: None) -> None:
    result = cli("housing", "train")
    assert result.code == 1
    assert "housing.csv" in result.err and "PORTFOLIO_DATA_DIR" in result.err and "Traceback" not in result.err


def test_sklearn_copy_offline_is_a_clear_error(cli) -> None:
    result = cli("housing", "train", "data=sklearn_california")
    assert result.code == 1 and "cannot be downloaded" in result.err and "network access" in result.err
    assert "Traceback" not in result.err


def test_sklearn_columns_become_gerons() -> None:
    sklearn_frame = pd.DataFrame(
        {"MedInc": [8.3], "HouseAge": [41.0], "AveRooms": [7.0], "AveBedrms": [1.0], "Population": [322.0],
         "AveOccup": [2.5], "Latitude": [37.88], "Longitude": [-122.23], "MedHouseVal": [4.526]}
    )  # fmt: skip
    row = from_sklearn(sklearn_frame).iloc[0]
    assert row["households"] == 129 and row["total_rooms"] == 903 and row["total_bedrooms"] == 129
    assert row[TARGET] == pytest.approx(452_600)


# --- predict records -------------------------------------------------------------------------
def _run_of(data: object) -> Any:
    """What `parse_record` reads of a run: its data object (built, not prepared)."""
    return SimpleNamespace(data=data)


def test_a_csv_record_becomes_floats_a_category_and_nan_for_an_empty_cell() -> None:
    parsed = PROJECT.parse_record({**DISTRICT, "district_id": "x7", TARGET: "452600"}, _run_of(SyntheticHousing()), {})
    assert list(parsed) == [column.name for column in FEATURES], "the features alone, in order"
    assert parsed["median_income"] == 8.3252 and parsed["housing_median_age"] == 41.0
    assert np.isnan(parsed["total_bedrooms"]) and parsed["ocean_proximity"] == "NEAR BAY"
    assert all(isinstance(parsed[name], float) for name in parsed if name != "ocean_proximity")


def test_a_json_record_takes_numbers_strings_and_null() -> None:
    body = json.loads(
        '{"longitude": -122.23, "latitude": "37.88", "housing_median_age": 41, "total_rooms": 880, '
        '"total_bedrooms": null, "population": 322, "households": 126, "median_income": 8.3252, '
        '"ocean_proximity": "NEAR BAY"}'
    )
    parsed = PROJECT.parse_record(body, _run_of(SyntheticHousing()), {})
    assert parsed["longitude"] == -122.23 and parsed["latitude"] == 37.88 and parsed["housing_median_age"] == 41.0
    assert np.isnan(parsed["total_bedrooms"])
    expected = PROJECT.parse_record(DISTRICT, _run_of(SyntheticHousing()), {})
    assert {k: v for k, v in parsed.items() if k != "total_bedrooms"} == {
        k: v for k, v in expected.items() if k != "total_bedrooms"
    }, "a JSON body and a CSV row of the same district are the same record"


def test_a_bad_record_names_every_problem_at_once() -> None:
    record = {**DISTRICT, "ocean_proximity": "MARS", "median_income": "rich", "latitude": 91, "households": True}
    del record["population"]
    with pytest.raises(RecordError) as caught:
        PROJECT.parse_record(record, _run_of(SyntheticHousing()), {})
    message = str(caught.value)
    for problem in (
        "latitude 91 is outside [32, 42.5]",
        "population is missing",
        "households True is not a number",
        "median_income 'rich' is not a number",
        "ocean_proximity 'MARS' is not one of <1H OCEAN, INLAND, ISLAND, NEAR BAY, NEAR OCEAN",
    ):
        assert problem in message, problem
    with pytest.raises(RecordError, match="a district is a mapping"):
        PROJECT.parse_record(["-122.23", "37.88"], _run_of(SyntheticHousing()), {})


def test_a_record_needs_only_the_runs_own_features() -> None:
    """scikit-learn's copy has no ocean_proximity: its runs neither need nor read it."""
    record = {name: value for name, value in DISTRICT.items() if name != "ocean_proximity"}
    assert "ocean_proximity" not in PROJECT.parse_record(record, _run_of(SklearnCalifornia()), {})
    with pytest.raises(RecordError, match="ocean_proximity is missing"):
        PROJECT.parse_record(record, _run_of(SyntheticHousing()), {})


@pytest.mark.parametrize(
    ("column", "value", "problem"),
    [
        (FEATURES[1], "91", "latitude 91 is outside [32, 42.5]"),
        (FEATURES[7], "lots", "median_income 'lots' is not a number"),
        (FEATURES[7], "nan", "median_income 'nan' is not a number"),
        (FEATURES[8], "inland", "ocean_proximity 'inland' is not one of"),
        (FEATURES[5], " ", "population is empty"),
    ],
)
def test_training_file_and_records_share_one_rule_per_value(column: Column, value: str, problem: str) -> None:
    frame = pd.Series([DISTRICT[column.name], value, DISTRICT[column.name]])
    assert list(column.problems(frame) != "") == [False, True, False]
    assert column.problems(frame)[1].startswith(problem) and column.check(value).problem.startswith(problem)
    if problem.endswith("is empty"):  # in predict any cell may be empty: the model imputes it
        assert np.isnan(
            PROJECT.parse_record({**DISTRICT, column.name: value}, _run_of(SyntheticHousing()), {})[column.name]
        )
    else:
        with pytest.raises(RecordError, match=re.escape(problem)):
            PROJECT.parse_record({**DISTRICT, column.name: value}, _run_of(SyntheticHousing()), {})


# --- split -----------------------------------------------------------------------------------
def test_split_is_reproducible_stratified_and_disjoint() -> None:
    frame = synthetic_frame(1000, seed=3)
    first, second = split(frame), split(frame)
    assert first[0].index.equals(second[0].index) and first[1].index.equals(second[1].index)
    train, test = first
    assert len(test) == 200 and not set(train.index) & set(test.index)
    overall = income_category(frame["median_income"]).value_counts(normalize=True).sort_index()
    held_out = income_category(test["median_income"]).value_counts(normalize=True).sort_index()
    assert np.abs(overall - held_out).max() < 0.01, "stratified: every income band keeps its share"
    assert not split(frame, seed=1)[1].index.equals(test.index)
