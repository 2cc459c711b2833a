"""The drift tests on synthetic data: what they flag, what they leave alone, and the reference file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shared.monitor.drift import (
    FeatureDrift,
    Thresholds,
    categorical_drift,
    embedding_drift,
    judge,
    numeric_drift,
    psi,
    quantile_edges,
)
from shared.monitor.features import Features, take
from shared.monitor.reference import Reference, load_reference, save_reference


def test_numbers_from_one_distribution_pass_and_a_shifted_mean_is_found() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(0, 1, 5000)
    same = numeric_drift("x", reference, rng.normal(0, 1, 500))
    moved = numeric_drift("x", reference, rng.normal(0.5, 1, 500))
    assert same.p_value > 0.01 and same.psi < 0.05
    assert moved.p_value < 1e-10 and moved.psi > 0.2
    assert moved.statistic > same.statistic


def test_numbers_ignore_missing_values_and_a_few_values_are_not_tested() -> None:
    reference = np.r_[np.arange(100.0), [np.nan] * 10]
    result = numeric_drift("x", reference, np.array([1.0, 2.0, np.nan, np.nan, np.nan, np.nan]))
    assert result.p_value is None and "not tested" in result.note
    counted = numeric_drift("x", reference, np.r_[np.arange(0.0, 100.0, 2.0), [np.nan]])
    assert counted.reference_size == 100 and counted.new_size == 50


def test_categories_with_the_same_shares_pass_and_a_new_mix_is_found() -> None:
    rng = np.random.default_rng(1)
    reference = rng.choice(["a", "b", "c"], 5000, p=[0.5, 0.3, 0.2])
    same = categorical_drift("c", reference, rng.choice(["a", "b", "c"], 500, p=[0.5, 0.3, 0.2]))
    only_b = categorical_drift("c", reference, np.array(["b"] * 500))
    unseen = categorical_drift("c", reference, rng.choice(["a", "z"], 500))  # a category training never had
    assert same.p_value > 0.01 and same.psi < 0.05
    assert only_b.p_value < 1e-50 and only_b.psi > 1
    assert unseen.p_value < 1e-50


def test_embedding_domain_classifier_separates_a_shift_and_not_noise() -> None:
    rng = np.random.default_rng(2)
    reference = rng.normal(0, 1, (3000, 8))
    same = embedding_drift("e", reference, rng.normal(0, 1, (500, 8)))
    spread = embedding_drift("e", reference, rng.normal(0, 1.6, (500, 8)))  # no mean shift: only the squares see it
    assert same.auc < 0.6 and same.p_value > 0.001
    assert spread.auc > 0.7 and spread.p_value < 1e-10


def test_psi_is_zero_for_equal_shares_and_bins_cover_every_value() -> None:
    shares = np.array([0.2, 0.3, 0.5])
    assert psi(shares, shares) == pytest.approx(0.0)
    assert psi(shares, np.array([0.5, 0.3, 0.2])) > 0.3
    edges = quantile_edges(np.array([1.0, 1.0, 1.0, 2.0, 3.0]))  # ties merged, open ends
    assert edges[0] == -np.inf and edges[-1] == np.inf and len(np.unique(edges)) == len(edges)


def _result(p_value: float, psi_value: float) -> FeatureDrift:
    return FeatureDrift("f", "number", "input", "ks", 0.1, p_value, psi=psi_value)


def test_judge_adjusts_by_bonferroni_and_requires_a_shift_big_enough() -> None:
    results = [_result(0.02, 0.5), *(_result(0.9, 0.01) for _ in range(4))]
    assert not judge(results, Thresholds()), "0.02 × 5 tests = 0.1 is not significant at 0.05"
    assert results[0].adjusted_p_value == pytest.approx(0.1)
    tiny = [_result(1e-12, 0.02)]
    assert not judge(tiny, Thresholds()), "significant, but a PSI of 0.02 is no shift to act on"
    big = [_result(1e-12, 0.3)]
    assert judge(big, Thresholds()) and big[0].drifted


def test_unshifted_batches_rarely_raise_an_alarm() -> None:
    """Family-wise: three independent features, 40 batches from the reference's own distribution."""
    rng = np.random.default_rng(3)
    reference = rng.normal(0, 1, (5000, 3))
    alarms = 0
    for _ in range(40):
        batch = rng.normal(0, 1, (500, 3))
        results = [numeric_drift(f"x{i}", reference[:, i], batch[:, i]) for i in range(3)]
        alarms += judge(results, Thresholds())
    assert alarms <= 2


def test_reference_round_trips_through_npz_without_pickle(tmp_path: Path) -> None:
    reference = Reference(
        Features({"x": [1.0, np.nan, 3.0]}, {"c": ["a", "b", "a"]}, np.ones((3, 2))),
        Features(categories={"predicted_class": ["1", "2", "1"]}),
        "train split: 3 of 3 inputs",
        pca_mean=np.zeros(4),
        pca_components=np.eye(2, 4),
    )
    loaded = load_reference(save_reference(reference, tmp_path / "reference.npz"))
    np.testing.assert_array_equal(loaded.inputs.numbers["x"], [1.0, np.nan, 3.0])
    assert list(loaded.inputs.categories["c"]) == ["a", "b", "a"]
    assert list(loaded.predictions.categories["predicted_class"]) == ["1", "2", "1"]
    assert loaded.source == reference.source
    np.testing.assert_array_equal(loaded.reduce(np.arange(8.0).reshape(2, 4)), [[0.0, 1.0], [4.0, 5.0]])


def test_take_picks_rows_of_any_container() -> None:
    import pandas as pd
    import torch

    indices = np.array([2, 0])
    assert take([10, 11, 12], indices) == [12, 10]
    assert take(np.arange(3), indices).tolist() == [2, 0]
    assert take(torch.arange(3), indices).tolist() == [2, 0]
    assert take(pd.DataFrame({"a": [1, 2, 3]}), indices)["a"].tolist() == [3, 1]
