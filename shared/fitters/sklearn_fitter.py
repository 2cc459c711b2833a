"""scikit-learn estimators: fitted and cross-validated on the train split, saved with skops (no pickles)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import get_object
from omegaconf import DictConfig
from sklearn.base import is_classifier
from sklearn.model_selection import KFold, StratifiedKFold, cross_validate
from sklearn.pipeline import Pipeline

from shared.data import ProjectData
from shared.errors import RunNotFoundError
from shared.fitters.base import FitResult, Fitter
from shared.fitters.estimator_files import load_estimator, save_estimator


class SklearnFitter(Fitter):
    """scikit-learn estimators and pipelines: `fit` on the train split; `predict_proba` (classifiers) or `predict`."""

    artifact = "model.skops"

    def fit(self, model: Any, data: ProjectData, cfg: DictConfig, run_dir: Path) -> FitResult:
        inputs, targets = data.inputs("train"), data.targets("train")
        started = time.perf_counter()
        model.fit(inputs, targets)
        seconds = time.perf_counter() - started
        return FitResult(seconds=seconds, samples_seen=len(targets), device="cpu (scikit-learn)")

    def cross_validate(
        self,
        model: Any,
        data: ProjectData,
        folds: int,
        score: Callable[[np.ndarray, np.ndarray], dict[str, float]],
        seed: int,
    ) -> dict[str, float]:
        """scikit-learn's `cross_validate` on the train split (stratified folds for a classifier), each fold scored
        by `score` on the model's outputs: what `tune` ranks a scikit-learn trial by, the test split never read."""
        splitter = (StratifiedKFold if is_classifier(model) else KFold)(folds, shuffle=True, random_state=seed)

        def scoring(estimator: Any, inputs: Any, targets: np.ndarray) -> dict[str, float]:
            return score(np.asarray(targets), self.predict(estimator, data, inputs))

        result = cross_validate(
            model, data.inputs("train"), data.targets("train"), cv=splitter, scoring=scoring, error_score="raise"
        )
        prefix = "test_"  # scikit-learn's name for each fold's held-out part
        return {key[len(prefix) :]: float(np.mean(values)) for key, values in result.items() if key.startswith(prefix)}

    def predict(self, model: Any, data: ProjectData, inputs: Any, device: torch.device | None = None) -> np.ndarray:
        if is_classifier(model):
            return np.asarray(model.predict_proba(inputs))
        return np.asarray(model.predict(inputs))

    def save(self, model: Any, run_dir: Path) -> Path:
        return save_estimator(model, run_dir / self.artifact)

    def load(self, model_cfg: DictConfig, run_dir: Path, trusted: tuple[str, ...]) -> Any:
        model = load_estimator(run_dir / self.artifact, trusted)
        try:  # the run's config names the model's class (its _target_s were checked before this is called)
            expected = get_object(str(model_cfg.get("_target_")))
        except Exception:
            expected = None
        if isinstance(expected, type) and not isinstance(model, expected):  # a factory function names no class
            raise RunNotFoundError(
                f"{run_dir / self.artifact} holds a {type(model).__name__}, but the run's config.yaml trained a "
                f"{expected.__name__}: the model file was replaced.",
                "retrain the run.",
            )
        return model

    @staticmethod
    def parameter_count(model: Any) -> int | None:
        estimator = model.steps[-1][1] if isinstance(model, Pipeline) else model
        sizes = [np.size(getattr(estimator, name)) for name in ("coef_", "intercept_") if hasattr(estimator, name)]
        return int(sum(sizes)) if sizes else None
