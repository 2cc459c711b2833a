"""The contract between the core and a project: what a project must say about itself.

A project owns its data, its models and its metrics; everything else (dispatch, runs, training,
evaluation and prediction flows, reports) is the core's. A project subclasses `Project`, fills
in the few methods below, and hands an instance to `shared.cli.main`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from shared.data import ProjectData
from shared.errors import PortfolioError


def build(node: DictConfig, **extra: Any) -> Any:
    """Hydra-instantiate `node` with plain Python values. A `PortfolioError` raised by the constructor (a
    bad option the user can fix) comes out as itself, not wrapped in Hydra's InstantiationException."""
    try:
        return instantiate(node, **extra, _convert_="all")
    except InstantiationException as error:
        if isinstance(error.__cause__, PortfolioError):
            raise error.__cause__ from None
        raise


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


@dataclass(frozen=True)
class Command:
    """A verb of the command line: its name, one line of help, and the function that runs it.

    `run` gets the project and the composed config of `configs/<project>/<name>.yaml` and returns
    an exit code (None means 0).
    """

    name: str
    summary: str
    run: Callable[[Project, DictConfig], int | None]


class Project:
    """Subclass per project. Class attributes describe it; methods supply its data, models and metrics."""

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    intended_use: ClassVar[str] = ""
    limitations: ClassVar[str] = ""
    # Config keys whose command-line values are free text (`text=it's great, really`): the CLI quotes them
    # for Hydra, so commas, quotes and `${` reach the project verbatim instead of being parsed as grammar.
    free_text_keys: ClassVar[tuple[str, ...]] = ()

    # --- data and models ------------------------------------------------------------------
    def build_data(self, cfg: DictConfig, paths: DictConfig) -> ProjectData:
        """The data object of `cfg.data`, told where the mirror and the cache are."""
        return build(cfg.data, mirror_dir=paths.get("mirror_dir"), cache_dir=paths.cache_dir)

    def build_model(self, cfg: DictConfig, data: ProjectData) -> Any:
        """The model of `cfg.model`: a LightningModule or a scikit-learn estimator, given plain Python values.

        A model with a `fit_on_train(inputs, targets)` method (a vocabulary, fitted preprocessing, sizes
        taken from the data) gets the train split before training, so its project need not override this.
        """
        model = build(cfg.model)
        if hasattr(model, "fit_on_train"):
            model.fit_on_train(data.inputs("train"), data.targets("train"))
        return model

    # --- evaluation -----------------------------------------------------------------------
    def score(self, targets: np.ndarray, outputs: np.ndarray) -> dict[str, float]:
        """Metrics of outputs against targets, unprefixed (`acc`, `rmse`); the core adds `val/`, `test/`."""
        raise NotImplementedError

    # --- command line ---------------------------------------------------------------------
    def commands(self) -> dict[str, Command]:
        """Commands this project adds to (or replaces in) the core's table; each needs a config of its name."""
        return {}

    def report(self, evaluation: Evaluation, plots_dir: Path, data: ProjectData, model: Any) -> list[Path]:
        """Project-specific plots of the test evaluation (and of the data). Returns the files written."""
        return []

    def model_details(self, model: Any) -> dict[str, Any]:
        """Facts about a fitted model worth keeping in `metrics.json` and the card (chosen hyperparameters...)."""
        return {}

    # --- prediction -----------------------------------------------------------------------
    def read_inputs(self, cfg: DictConfig) -> list[PredictItem]:
        """Turn the predict config (`input=...` and the like) into items; an unreadable one carries its error."""
        raise NotImplementedError(f"{self.name} has no predict")

    def stack_inputs(self, values: list[Any]) -> Any:
        """Put the values of readable items together as the models' input type."""
        return values

    def prediction_columns(self, outputs: np.ndarray) -> list[dict[str, Any]]:
        """One dict of output columns (label, probability, ...) per row of `outputs`."""
        raise NotImplementedError

    def annotate_predictions(
        self, model: Any, values: list[Any], columns: list[dict[str, Any]], cfg: DictConfig
    ) -> list[dict[str, Any]]:
        """Columns that need the model or the inputs as well as the outputs (explanations, warnings).

        Gets the readable items' values and their `prediction_columns`; returns the rows to write.
        """
        return columns
