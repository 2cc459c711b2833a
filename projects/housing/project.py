"""California housing as the core sees it: description, metrics, plots, predict inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from projects.housing import evaluate, predict
from projects.housing.data import HousingData
from shared.config import load_run_config
from shared.errors import UsageError
from shared.project import Evaluation, PredictItem, Project
from shared.runs import resolve_run


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

    def score(self, targets: np.ndarray, outputs: np.ndarray) -> dict[str, float]:
        return evaluate.score(targets, outputs)

    def report(self, evaluation: Evaluation, plots_dir: Path, data: Any, model: Any) -> list[Path]:
        return evaluate.report(evaluation, plots_dir, data, model)

    def model_details(self, model: Any) -> dict[str, Any]:
        return model.details() if hasattr(model, "details") else {}

    def read_inputs(self, cfg: DictConfig) -> list[PredictItem]:
        if not cfg.get("input"):
            raise UsageError(
                "predict needs an input.", "python -m projects.housing predict input=districts.csv output=preds.csv"
            )
        run_dir = resolve_run(cfg.get("run"), cfg.paths.runs_dir, self.name)
        data = self.build_data(load_run_config(run_dir), cfg.paths)
        assert isinstance(data, HousingData)
        return predict.read_districts(str(cfg.input), data.features)

    def stack_inputs(self, values: list[Any]) -> Any:
        return predict.stack_districts(values)

    def prediction_columns(self, outputs: np.ndarray) -> list[dict[str, Any]]:
        return predict.prediction_columns(outputs)
