"""Housing on tiny synthetic districts (seconds): the pipeline, the models, train/predict/evaluate/compare."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LinearRegression
from sklearn.metrics import root_mean_squared_error

from projects.housing.data import (
    TARGET,
    SyntheticHousing,
    split,
    synthetic_frame,
)
from projects.housing.evaluate import METRICS, Estimates, score
from projects.housing.features import make_preprocessor
from projects.housing.models import CrossValidated, MLPRegressor, PointPredictor, pipeline
from projects.housing.project import HousingProject
from shared.capabilities import CarriesPreprocessor, Describes, FitsOnTrain
from shared.metrics import MAX, MIN, NEITHER
from tests.conftest import finished_runs, train_one

pytestmark = pytest.mark.heavy

SMOKE = ["data=synthetic", "model=ridge", "cv.folds=3"]
PROJECT = HousingProject()
# One district as a CSV row gives it: every value a string, an empty cell where the census has a gap.


def _runs(isolated: Path) -> list[Path]:
    return finished_runs(isolated, "housing")


@pytest.fixture
def trained(cli, isolated: Path) -> Path:
    return train_one(cli, isolated, "housing", *SMOKE)


# --- features and models ---------------------------------------------------------------------
def test_preprocessor_imputes_and_names_every_feature() -> None:
    frame = synthetic_frame(200)
    frame.loc[:20, "total_bedrooms"] = np.nan
    inputs = frame.drop(columns=TARGET)
    preprocessor = make_preprocessor(n_clusters=5, rotations=2)
    features = preprocessor.fit_transform(inputs)
    names = list(preprocessor.get_feature_names_out())
    assert features.shape == (200, len(names)) and not np.isnan(features).any()
    assert {"bedrooms_per_room", "people_per_household", "cluster_4_similarity", "rotated_30deg"} <= set(names)
    assert "ocean_proximity_INLAND" in names
    without = make_preprocessor(n_clusters=5).fit(inputs.drop(columns="ocean_proximity"))
    assert not any(name.startswith("ocean") for name in without.get_feature_names_out())


def test_cross_validation_gives_scores_and_an_interval_that_covers() -> None:
    frame = synthetic_frame(600, seed=1)
    train, test = split(frame)
    model = CrossValidated(pipeline(LinearRegression(), {"n_clusters": 3}), cv=5, coverage=0.9).fit(
        train.drop(columns=TARGET), train[TARGET]
    )
    outputs = PROJECT.outputs(model.predict(test.drop(columns=TARGET)))
    assert outputs.has_interval and len(outputs) == len(test)
    assert (outputs.low <= outputs.values).all() and (outputs.values <= outputs.high).all()
    metrics = score(test[TARGET].to_numpy(), outputs)
    assert 0.8 <= metrics["interval_coverage"] <= 1.0
    assert metrics["rmse_ci_low"] < metrics["rmse"] < metrics["rmse_ci_high"] and metrics["r2"] > 0.8
    details = model.details()
    assert details["cv_folds"] == 5 and 10_000 < details["cv_rmse_mean"] < 30_000
    assert np.array_equal(model.point(test.drop(columns=TARGET)), outputs.values)


def test_without_cross_validation_the_model_gives_nan_bounds_and_no_interval_metrics() -> None:
    model = CrossValidated(LinearRegression(), cv=0).fit(np.arange(10.0).reshape(-1, 1), 2.0 * np.arange(10) + 1)
    raw = model.predict(np.array([[1.0], [2.0], [3.0]]))
    assert raw.shape == (3, 3) and np.isnan(raw[:, 1:]).all()
    outputs = PROJECT.outputs(raw)
    assert not outputs.has_interval and np.allclose(outputs.values, [3.0, 5.0, 7.0])
    metrics = score(np.array([3.0, 5.0, 8.0]), outputs)
    assert set(metrics) == {"rmse", "rmse_ci_low", "rmse_ci_high", "mae", "r2"}
    assert metrics["rmse"] == pytest.approx(np.sqrt(1 / 3)) and metrics["mae"] == pytest.approx(1 / 3)
    assert model.details() == {"estimator": "LinearRegression"}, "no folds, no interval to describe"


def test_outputs_are_a_typed_record_and_score_reads_its_fields() -> None:
    targets = np.array([100.0, 200.0, 300.0, 400.0])
    raw = np.array([[110.0, 90.0, 130.0], [190.0, 170.0, 210.0], [330.0, 310.0, 350.0], [400.0, 380.0, 420.0]])
    outputs = PROJECT.outputs(raw)
    assert isinstance(outputs, Estimates) and outputs.has_interval
    assert np.array_equal(outputs.values, raw[:, 0]) and np.array_equal(outputs.high, raw[:, 2])
    metrics = score(targets, outputs)
    assert metrics["rmse"] == pytest.approx(np.sqrt((100 + 100 + 900 + 0) / 4))
    assert metrics["mae"] == pytest.approx((10 + 10 + 30 + 0) / 4)
    assert metrics["interval_coverage"] == pytest.approx(0.75), "300 lies below [310, 350]"
    assert metrics["interval_width"] == pytest.approx(40.0)
    assert set(metrics) <= set(METRICS.goals), "every reported metric is declared"
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        PROJECT.outputs(raw[:, 0])


def test_every_metric_has_its_goal() -> None:
    assert METRICS.headline == "rmse" and PROJECT.metrics is METRICS
    assert {name: METRICS.goal(name) for name in ("rmse", "rmse_ci_low", "rmse_ci_high", "mae", "interval_width")} == {
        name: MIN for name in ("rmse", "rmse_ci_low", "rmse_ci_high", "mae", "interval_width")
    }
    assert METRICS.goal("test/r2") == MAX and METRICS.goal("val/interval_coverage") == NEITHER


def test_models_declare_their_capabilities() -> None:
    cross_validated = CrossValidated(LinearRegression())
    mlp = MLPRegressor(hidden=(4,))
    assert isinstance(cross_validated, Describes) and isinstance(cross_validated, PointPredictor)
    assert not isinstance(cross_validated, FitsOnTrain), "a scikit-learn model fits in its own fit"
    for capability in (FitsOnTrain, CarriesPreprocessor, Describes, PointPredictor):
        assert isinstance(mlp, capability), capability.__name__


def test_mlp_fits_its_preprocessing_and_target_scale_on_the_train_rows() -> None:
    train = synthetic_frame(200, seed=2)
    model = MLPRegressor(hidden=(8,), features={"n_clusters": 3})
    model.fit_on_train(train.drop(columns=TARGET), train[TARGET].to_numpy())
    assert model.hparams.in_features == len(model.preprocessor.get_feature_names_out())
    assert float(model.target_mean) == pytest.approx(train[TARGET].mean())
    features = torch.as_tensor(model.preprocessor.transform(train.drop(columns=TARGET)), dtype=torch.float32)
    assert model(features).shape == (200,)


# --- train, evaluate, compare, predict -------------------------------------------------------
def test_train_writes_a_complete_run(trained: Path) -> None:
    names = {path.relative_to(trained).as_posix() for path in trained.rglob("*") if path.is_file()}
    plots = ("map", "correlations", "distributions", "predicted_vs_actual", "residuals", "error_by_group")
    for expected in ("config.yaml", "model.skops", "MODEL_CARD.md", *(f"plots/{plot}.png" for plot in plots)):
        assert expected in names
    assert "plots/permutation_importance.png" in names
    metrics = json.loads((trained / "metrics.json").read_text())
    assert set(metrics["metrics"]) >= {"test/rmse", "test/mae", "test/r2", "test/interval_coverage"}
    assert not any(name.startswith("val/") for name in metrics["metrics"]), "no validation split: k-fold CV instead"
    assert metrics["metrics"]["test/r2"] > 0.8, "the synthetic values follow a simple formula"
    assert metrics["model_details"]["cv_folds"] == 3 and metrics["data"]["test examples"] == 120
    assert metrics["model_details"]["estimator"] == "RidgeCV"
    assert metrics["headline"] == "test/rmse" and metrics["monitor"]["metric"] is None
    assert metrics["goals"]["test/r2"] == "max" and metrics["goals"]["test/interval_coverage"] == "neither"
    assert "cv_rmse_mean" in (trained / "MODEL_CARD.md").read_text()


def test_evaluate_and_compare_read_the_runs(cli, trained: Path, isolated: Path) -> None:
    result = cli("housing", "evaluate")
    assert result.code == 0, result.err
    logged = json.loads((trained / "metrics.json").read_text())["metrics"]["test/rmse"]
    assert json.loads((trained / "evaluations" / "test" / "evaluation.json").read_text())["metrics"][
        "test/rmse"
    ] == pytest.approx(logged)
    assert cli("housing", "train", "data=synthetic", "model=linear", "cv.folds=0").code == 0
    result = cli("housing", "compare", "sort=test/rmse")
    assert result.code == 0 and "-ridge" in result.out and "-linear" in result.out  # runs are named by model
    table = pd.read_csv(isolated / "runs" / "housing" / "comparison.csv")
    assert len(table) == 2 and table["test/rmse"].is_monotonic_increasing


def _test_rows(path: Path) -> pd.DataFrame:
    data = SyntheticHousing()
    data.prepare()
    data.frame("test").to_csv(path, index=False)
    return data.frame("test")


def test_predict_round_trip_recomputes_the_logged_rmse(cli, trained: Path, tmp_path: Path) -> None:
    test = _test_rows(tmp_path / "districts.csv")
    output = tmp_path / "out" / "preds.csv"
    result = cli("housing", "predict", f"input={tmp_path / 'districts.csv'}", f"output={output}")
    assert result.code == 0, result.err
    predictions = pd.read_csv(output)
    assert list(predictions.columns) == ["input", TARGET, "interval_low", "interval_high", "error"]
    logged = json.loads((trained / "metrics.json").read_text())["metrics"]
    rmse = root_mean_squared_error(test[TARGET], predictions[TARGET])
    assert rmse == pytest.approx(logged["test/rmse"], abs=1.0)  # predictions are written rounded to the dollar
    inside = (test[TARGET].to_numpy() >= predictions["interval_low"]) & (
        test[TARGET].to_numpy() <= predictions["interval_high"]
    )
    assert inside.mean() == pytest.approx(logged["test/interval_coverage"], abs=0.01)


def test_predict_keeps_good_rows_past_bad_ones(cli, trained: Path, tmp_path: Path) -> None:
    frame = _test_rows(tmp_path / "districts.csv").head(4).drop(columns=TARGET).astype(object)
    frame["district_id"] = ["a", "b", "c", "d"]
    frame.loc[frame.index[1], "ocean_proximity"] = "MARS"
    frame.loc[frame.index[2], "median_income"] = "rich"
    frame.loc[frame.index[3], ["total_bedrooms", "housing_median_age"]] = ""
    frame.to_csv(tmp_path / "mixed.csv", index=False)
    output = tmp_path / "preds.csv"
    result = cli("housing", "predict", f"input={tmp_path / 'mixed.csv'}", f"output={output}")
    assert result.code == 3, "some rows failed: the exit code says so"
    rows = list(csv.DictReader(output.open()))
    assert [bool(row["error"]) for row in rows] == [False, True, True, False]
    assert "ocean_proximity 'MARS' is not one of" in rows[1]["error"] and "median_income 'rich'" in rows[2]["error"]
    assert float(rows[3][TARGET]) > 0, "empty cells are imputed as in training"
    assert "ignoring column(s) the model does not use: district_id" in result.out + result.err


def test_predict_missing_column_names_it_and_writes_nothing(cli, trained: Path, tmp_path: Path) -> None:
    _test_rows(tmp_path / "districts.csv").drop(columns=["latitude", TARGET]).to_csv(tmp_path / "x.csv", index=False)
    output = tmp_path / "preds.csv"
    result = cli("housing", "predict", f"input={tmp_path / 'x.csv'}", f"output={output}")
    assert result.code == 1 and "lacks the column(s) latitude" in result.err and "Traceback" not in result.err
    assert not output.exists()


def test_same_seed_same_result(cli, isolated: Path) -> None:
    for name in ("a", "b"):
        mlp = ["model.hidden=[16]", "trainer.max_epochs=3"]
        assert cli("housing", "train", "data=synthetic", "model=mlp", *mlp, f"name={name}").code == 0
    first, second = (json.loads((run / "metrics.json").read_text())["metrics"] for run in _runs(isolated))
    assert first == second


def test_mlp_trains_through_the_core_and_predicts_what_it_logged(cli, isolated: Path, tmp_path: Path) -> None:
    """The torch model goes through the core's Trainer: checkpoint, fitted preprocessing beside it, learning
    curves, a validation split; predict on raw rows reproduces the logged test RMSE and coverage."""
    result = cli("housing", "train", "data=synthetic", "model=mlp", "trainer=cpu", "trainer.max_epochs=40")
    assert result.code == 0, result.err
    [run] = _runs(isolated)
    for expected in ("model.ckpt", "preprocessor.skops", "plots/learning_curves.png", "logs/metrics.csv"):
        assert (run / expected).is_file(), expected
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["data"]["val examples"] == 48 and metrics["device"].startswith("cpu")
    assert metrics["metrics"]["test/r2"] > 0.8, "the synthetic values follow a simple formula"
    assert metrics["model_details"]["interval_half_width"] > 0

    test = _test_rows(tmp_path / "districts.csv")
    output = tmp_path / "preds.csv"
    assert cli("housing", "predict", f"input={tmp_path / 'districts.csv'}", f"output={output}").code == 0
    predictions = pd.read_csv(output)
    assert root_mean_squared_error(test[TARGET], predictions[TARGET]) == pytest.approx(
        metrics["metrics"]["test/rmse"], abs=1.0
    )
    values = test[TARGET].to_numpy()
    inside = (values >= predictions["interval_low"]) & (values <= predictions["interval_high"])
    assert inside.mean() == pytest.approx(metrics["metrics"]["test/interval_coverage"], abs=0.01)


def test_mlp_without_a_validation_split_keeps_its_last_weights_and_has_no_interval(
    cli, isolated: Path, tmp_path: Path
) -> None:
    """data.validation_size=0: early stopping has nothing to watch, so model=mlp asks for callbacks=default;
    with it, the core keeps the last epoch's weights and says so, and the model has no interval to give."""
    no_val = ["data=synthetic", "model=mlp", "trainer=cpu", "trainer.max_epochs=5", "data.validation_size=0"]
    refused = cli("housing", "train", *no_val)
    assert refused.code == 2 and "early stopping needs a monitored validation metric" in refused.err
    assert "callbacks=default" in refused.err and "Traceback" not in refused.err
    assert not list((isolated / "runs" / "housing").glob("*")), "a refused train leaves no run behind"

    result = cli("housing", "train", *no_val, "callbacks=default")
    assert result.code == 0, result.err
    assert "no monitored metric: keeping the weights of the last epoch" in result.out + result.err
    [run] = _runs(isolated)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["monitor"]["metric"] is None and metrics["epochs"] == 5 and "val examples" not in metrics["data"]
    assert set(metrics["metrics"]) == {f"test/{name}" for name in ("rmse", "rmse_ci_low", "rmse_ci_high", "mae", "r2")}
    assert "interval_half_width" not in metrics["model_details"]
    assert metrics["goals"]["test/rmse"] == "min" and metrics["headline"] == "test/rmse"

    test = _test_rows(tmp_path / "districts.csv")
    output = tmp_path / "preds.csv"
    assert cli("housing", "predict", f"input={tmp_path / 'districts.csv'}", f"output={output}").code == 0
    predictions = pd.read_csv(output)
    assert list(predictions.columns) == ["input", TARGET, "error"], "no interval, no interval columns"
    rmse = root_mean_squared_error(test[TARGET], predictions[TARGET])
    assert rmse == pytest.approx(metrics["metrics"]["test/rmse"], abs=1.0)


def test_mlp_on_a_gpu_trainer_without_a_gpu_is_a_clear_error(cli) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = cli("housing", "train", "data=synthetic", "model=mlp", "trainer=gpu")
    assert result.code != 0 and "trainer=auto or trainer=cpu" in result.err and "Traceback" not in result.err


@pytest.mark.parametrize(
    ("preset", "options"),
    [
        ("ensemble", ["model.estimator.cv=2", "model.cv=2"]),
        ("search", ["model.estimator.n_iter=2", "model.estimator.cv=2", "cv.folds=2"]),
    ],
)
def test_models_that_nest_models_train_on_their_point_values(
    cli, isolated: Path, preset: str, options: list[str]
) -> None:
    """A stack blends its members' values and a search scores its draws' values, never the interval's columns."""
    members = "model.estimator.estimators"
    small = (
        [
            f"{members}.forest.estimator.regressor.n_estimators=10",
            f"{members}.extra_trees.estimator.regressor.n_estimators=10",
            f"{members}.hgb.estimator.regressor.max_iter=30",
        ]
        if preset == "ensemble"
        else []
    )
    trees = ["model.estimator.estimator.estimator.regressor.n_estimators=10"] if preset == "search" else []
    run = train_one(cli, isolated, "housing", "data=synthetic", f"experiment={preset}", *options, *small, *trees)
    reloaded = cli("housing", "evaluate", f"run={run}")  # every type its members saved loads back
    assert reloaded.code == 0, reloaded.err
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["metrics"]["test/r2"] > 0.8, "the synthetic value formula is easy to learn"
    assert 0.0 < metrics["metrics"]["test/interval_coverage"] <= 1.0
    details = metrics["model_details"]
    assert details["cv_rmse_mean"] > 0
    if preset == "search":
        assert set(details["best_params"]) and details["search_cv_rmse"] > 0
    else:
        assert details["estimator"].startswith("StackingRegressor(ridge=RidgeCV")
