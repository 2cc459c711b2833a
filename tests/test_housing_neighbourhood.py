"""The neighbourhood features: target encoding by place, so the tests check what must not leak (seconds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from projects.housing.data import TARGET, synthetic_frame
from projects.housing.features import NEIGHBOURHOOD_INPUTS, Neighbourhood, make_preprocessor
from projects.housing.models import MLPRegressor
from shared.errors import UsageError
from shared.fitters import load_estimator, save_estimator


@pytest.fixture
def districts() -> tuple[np.ndarray, np.ndarray]:
    """200 districts, the first worth a hundred times the rest's typical value."""
    frame = synthetic_frame(200, seed=3)
    values = frame[TARGET].to_numpy(dtype=float, copy=True)
    values[0] = 100 * np.median(values)
    return frame[NEIGHBOURHOOD_INPUTS].to_numpy(dtype=float), values


def test_a_district_never_sees_its_own_value_in_the_rows_it_is_fitted_on(districts) -> None:
    inputs, values = districts
    neighbourhood = Neighbourhood(neighbours=8)
    fitted = neighbourhood.fit_transform(inputs, values)
    as_new = neighbourhood.transform(inputs[:1])  # the same district, asked for as a new one: it is its own nearest
    own = np.log(values[0])
    assert fitted[0, :2].max() < own - 2  # the others' values alone: far below its own
    assert as_new[0, 0] > own - 0.5  # as a new district, the training district at the same spot dominates
    names = list(neighbourhood.get_feature_names_out())
    assert names == ["neighbour_value_2", "neighbour_value_8", "area_income", "area_age", "area_rooms", "area_spread"]
    assert fitted.shape == (200, len(names)) and np.isfinite(fitted).all()


def test_the_premium_is_the_neighbours_value_per_dollar_of_income_and_never_the_districts_own(districts) -> None:
    inputs, values = districts
    plain = Neighbourhood(neighbours=8).fit_transform(inputs, values)
    neighbourhood = Neighbourhood(neighbours=8, premium=True)
    fitted = neighbourhood.fit_transform(inputs, values)
    names = list(neighbourhood.get_feature_names_out())
    assert names[:6] == [
        "neighbour_value_2",
        "neighbour_value_8",
        "neighbour_premium_2",
        "neighbour_premium_8",
        "implied_value_2",
        "implied_value_8",
    ]
    assert fitted.shape == (200, len(names)) and np.isfinite(fitted).all()
    np.testing.assert_allclose(fitted[:, :2], plain[:, :2])  # the option adds columns and changes none
    np.testing.assert_allclose(fitted[:, 6:], plain[:, 2:])
    own_log_income = np.log(inputs[:, 2])
    np.testing.assert_allclose(fitted[:, 4:6], fitted[:, 2:4] + own_log_income[:, None])
    assert fitted[0, 4:6].max() < np.log(values[0]) - 2  # cross-fitted like the values: the district's own is not in it
    as_new = neighbourhood.transform(inputs[:1])
    assert as_new[0, 2] == pytest.approx(np.log(values[0]) - own_log_income[0], abs=0.5)  # as a new one, its own is


def test_the_area_means_leave_the_district_itself_out(districts) -> None:
    inputs, values = districts
    fitted = Neighbourhood(neighbours=5).fit_transform(inputs, values)
    position = np.column_stack([inputs[:, 0], inputs[:, 1] * np.cos(np.radians(inputs[:, 0]))])
    distances = np.linalg.norm(position - position[7], axis=1)
    distances[7] = np.inf
    nearest = np.argsort(distances)[:5]
    assert fitted[7, 2] == pytest.approx(np.log(inputs[nearest, 2]).mean())  # area_income
    assert fitted[7, 5] == pytest.approx(np.log(distances[nearest[-1]] + 1e-3))  # area_spread: the 5th nearest


def test_empty_cells_of_a_new_district_are_the_training_medians(districts) -> None:
    inputs, values = districts
    neighbourhood = Neighbourhood(neighbours=5).fit(inputs, values)
    gaps = inputs[:3].copy()
    gaps[0, :2] = np.nan  # no coordinates at all
    gaps[1, 2:] = np.nan
    assert np.isfinite(neighbourhood.transform(gaps)).all()


def test_the_preprocessor_with_neighbours_is_stored_as_plain_data(tmp_path: Path) -> None:
    frame = synthetic_frame(150, seed=4)
    inputs, values = frame.drop(columns=TARGET), frame[TARGET].to_numpy(dtype=float)
    preprocessor = make_preprocessor(n_clusters=3, neighbours=10)
    preprocessor.fit_transform(inputs, values)
    assert "neighbour_value_10" in preprocessor.get_feature_names_out()
    loaded = load_estimator(save_estimator(preprocessor, tmp_path / "preprocessor.skops"), ("projects.housing.",))
    np.testing.assert_allclose(loaded.transform(inputs[:20]), preprocessor.transform(inputs[:20]))


def test_fitting_without_values_and_the_mlp_with_neighbours_are_refused(districts) -> None:
    inputs, _ = districts
    with pytest.raises(ValueError, match="pass y"):
        Neighbourhood().fit_transform(inputs)
    with pytest.raises(UsageError, match="neighbours"):
        MLPRegressor(features={"neighbours": 10})
