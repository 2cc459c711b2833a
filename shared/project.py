"""The contract between the core and a project: what a project must say about itself.

A project owns its data, its models and its metrics; everything else (dispatch, runs, training,
evaluation and prediction flows, reports) is the core's. A project subclasses `Project`, fills
in the few methods below, and hands an instance to `shared.cli.main`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig

from shared.data import ProjectData


@dataclass
class Evaluation:
    """One split's targets, the model's outputs for them, and the metrics computed from both."""

    split: str
    inputs: Any
    targets: np.ndarray
    outputs: np.ndarray
    metrics: dict[str, float]


@dataclass
class PredictItem:
    """One input of `predict`: its name, and either the model input or why it could not be read."""

    name: str
    value: Any = None
    error: str | None = None


class Project:
    """Subclass per project. Class attributes describe it; methods supply its data, models and metrics."""

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    intended_use: ClassVar[str] = ""
    limitations: ClassVar[str] = ""

    # --- data and models ------------------------------------------------------------------
    def build_data(self, cfg: DictConfig, paths: DictConfig) -> ProjectData:
        """The data object of `cfg.data`, told where the mirror and the cache are."""
        return instantiate(cfg.data, mirror_dir=paths.get("mirror_dir"), cache_dir=paths.cache_dir, _convert_="all")

    def build_model(self, cfg: DictConfig, data: ProjectData) -> Any:
        """The model of `cfg.model`: a LightningModule or a scikit-learn estimator, given plain Python values."""
        return instantiate(cfg.model, _convert_="all")

    # --- evaluation -----------------------------------------------------------------------
    def score(self, targets: np.ndarray, outputs: np.ndarray) -> dict[str, float]:
        """Metrics of outputs against targets, unprefixed (`acc`, `rmse`); the core adds `val/`, `test/`."""
        raise NotImplementedError

    def report(self, evaluation: Evaluation, plots_dir: Path) -> list[Path]:
        """Project-specific plots of the test evaluation. Returns the files written."""
        return []

    # --- prediction -----------------------------------------------------------------------
    def read_inputs(self, source: str) -> list[PredictItem]:
        """Turn `predict input=...` into items; an unreadable one carries its error instead of a value."""
        raise NotImplementedError(f"{self.name} has no predict")

    def stack_inputs(self, values: list[Any]) -> Any:
        """Put the values of readable items together as the models' input type."""
        return values

    def prediction_columns(self, outputs: np.ndarray) -> list[dict[str, Any]]:
        """One dict of output columns (label, probability, ...) per row of `outputs`."""
        raise NotImplementedError
