"""California housing as the core sees it: description, declared metrics, typed outputs, plots, predict records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from projects.housing import evaluate, plots, predict
from projects.housing.data import Column, HousingData
from projects.housing.evaluate import METRICS, Estimates
from shared.api_schema import RecordSchema
from shared.data import ProjectData
from shared.monitor.features import Features
from shared.predict import parse_item
from shared.project import Evaluation, PredictItem, Project
from shared.runs import Run


class HousingProject(Project):
    name = "housing"
    summary = (
        "California housing: a district's median house value from the 1990 census "
        "(regression: scikit-learn pipelines and a torch MLP)."
    )
    intended_use = (
        "Teaching and benchmarking end-to-end tabular regression: estimating the 1990 median house value of a "
        "California census block group from its census aggregates, with an honest error estimate."
    )
    limitations = (
        "1990 prices: not a valuation of any home today. Values were capped at $500,001 by the census, so the "
        "model cannot predict above that and underestimates the dearest districts. Districts are aggregates of "
        "~1,400 people; nothing here applies to an individual home or household. The interval covers the stated "
        "share of districts on average (conformal, from cross-validation), not each district equally: it is too "
        "wide for cheap inland districts and too narrow for dear coastal ones."
    )

    metrics = METRICS
    predict_usage = "input=districts.csv output=predictions.csv"
    trusted_targets = (  # the library estimators and distributions the model configs name
        "sklearn.ensemble.ExtraTreesRegressor",
        "sklearn.ensemble.HistGradientBoostingRegressor",
        "sklearn.ensemble.RandomForestRegressor",
        "sklearn.compose.TransformedTargetRegressor",
        "sklearn.neural_network.MLPRegressor",
        "sklearn.preprocessing.StandardScaler",
        "sklearn.linear_model.LinearRegression",
        "sklearn.linear_model.RidgeCV",
        "scipy.stats.randint",
        "scipy.stats.uniform",
    )

    def outputs(self, raw: np.ndarray) -> Estimates:
        return Estimates.from_columns(raw)

    def score(self, data: ProjectData, split: str, outputs: Estimates) -> dict[str, float]:
        return evaluate.score(data.targets(split), outputs)

    def report(self, evaluation: Evaluation, plots_dir: Path, data: ProjectData, model: Any) -> list[Path]:
        assert isinstance(data, HousingData)
        return plots.report(evaluation, plots_dir, data, model)

    def read_file(self, path: Path, run: Run, cfg: DictConfig) -> list[PredictItem]:
        return predict.read_districts(
            path, _features(run), lambda name, record: parse_item(self, name, record, run, cfg), cfg.get("encoding")
        )

    def request_schema(self, run: Run) -> RecordSchema:
        return predict.district_schema(_features(run))

    def parse_record(self, payload: Any, run: Run, cfg: DictConfig) -> dict[str, Any]:
        return predict.parse_district(payload, _features(run))

    def stack_inputs(self, values: list[Any]) -> pd.DataFrame:
        return pd.DataFrame(values)

    def prediction_columns(self, outputs: Estimates) -> list[dict[str, Any]]:
        return predict.prediction_columns(outputs)

    def monitored_features(self, model: Any, data: ProjectData, inputs: pd.DataFrame) -> Features:
        """Every column the model takes: numbers as numbers (empty cells left out), categories as categories."""
        assert isinstance(data, HousingData)
        return Features(
            numbers={c.name: inputs[c.name].to_numpy(dtype=float) for c in data.features if not c.categories},
            categories={c.name: inputs[c.name].to_numpy() for c in data.features if c.categories},
        )

    def monitored_predictions(self, data: ProjectData, outputs: Estimates) -> Features:
        return Features(numbers={"predicted_value": outputs.values})


def _features(run: Run) -> tuple[Column, ...]:
    """The columns the run's model was trained on (scikit-learn's copy has no `ocean_proximity`)."""
    data = run.data  # built from the run's config, not prepared: no dataset is read to predict
    assert isinstance(data, HousingData)
    return data.features
