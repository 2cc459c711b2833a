"""Géron's real housing.csv from the mirror: validation passes, the book's split, and a real accuracy floor."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from projects.housing.data import FEATURES, GeronHousing
from projects.housing.project import HousingProject

pytestmark = pytest.mark.integration


@pytest.fixture
def housing_mirror(mirror: Path) -> Path:
    if not (mirror / "california-housing" / "housing.csv").is_file():
        pytest.skip(f"no california-housing/housing.csv in the mirror {mirror}")
    return mirror


def test_real_file_validates_and_splits_as_in_the_book(housing_mirror: Path, isolated: Path) -> None:
    data = GeronHousing(mirror_dir=str(housing_mirror), cache_dir=str(isolated / "cache"))
    data.prepare()
    train, test = data.frame("train"), data.frame("test")
    assert (len(train), len(test)) == (16_512, 4_128)
    assert train["total_bedrooms"].isna().sum() + test["total_bedrooms"].isna().sum() == 207
    # The first training districts as the 3rd edition's chapter 2 prints them: the very same split.
    assert list(train.index[:5]) == [13096, 14973, 3785, 14689, 20507]


def test_small_forest_beats_the_books_linear_model_on_real_data(cli, housing_mirror: Path, isolated: Path) -> None:
    small = ["model=extra_trees", "model.estimator.regressor.n_estimators=40", "cv.folds=0"]
    result = cli("housing", "train", *small)
    assert result.code == 0, result.err
    [metrics_file] = (isolated / "runs" / "housing").rglob("metrics.json")
    metrics = json.loads(metrics_file.read_text())
    assert metrics["data"]["train examples"] == 16_512 and metrics["data"]["test examples"] == 4_128
    assert metrics["metrics"]["test/rmse"] < 45_000, metrics["metrics"]  # the book's linear model: ~$70,000
    assert metrics["metrics"]["test/r2"] > 0.83
    assert "test/interval_coverage" not in metrics["metrics"], "cv.folds=0: no interval, so no interval metrics"


def test_every_real_district_parses_as_a_record_to_its_training_values(housing_mirror: Path, isolated: Path) -> None:
    """`predict`'s records and the training file go through the same rules: each row of housing.csv, read as
    the strings a CSV gives, parses to exactly the values training validated."""
    data = GeronHousing(mirror_dir=str(housing_mirror), cache_dir=str(isolated / "cache"))
    data.prepare()
    trained = pd.concat([data.inputs("train"), data.inputs("test")]).sort_index()
    raw = pd.read_csv(housing_mirror / "california-housing" / "housing.csv", dtype=str, keep_default_na=False)
    project, run = HousingProject(), SimpleNamespace(data=data)
    parsed = pd.DataFrame([project.parse_record(record, run, {}) for record in raw.to_dict("records")])
    assert len(parsed) == len(trained) == 20_640
    for column in FEATURES:
        expected, got = trained[column.name].to_numpy(), parsed[column.name].to_numpy()
        if column.categories:
            assert (expected == got).all(), column.name
        else:
            assert np.array_equal(expected, got.astype(float), equal_nan=True), column.name
