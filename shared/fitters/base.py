"""What every fitter is: the `Fitter` interface the train, evaluate and predict flows talk to, what a fit reports,
and the small helpers both kinds share (reading a plain checkpoint, quoting an error, a carried preprocessor)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning import LightningModule
from omegaconf import DictConfig

from shared.capabilities import CarriesPreprocessor
from shared.data import ProjectData
from shared.errors import RunNotFoundError


@dataclass
class FitResult:
    """What a fit reports back: timing and throughput for `metrics.json`, history for the learning curves."""

    seconds: float
    samples_seen: int
    device: str
    precision: str = "32-true"
    epochs: int | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    is_global_zero: bool = True

    @property
    def samples_per_second(self) -> float:
        return self.samples_seen / self.seconds if self.seconds > 0 else float("nan")


class Fitter(ABC):
    """Fit, run and store one kind of model."""

    artifact: str  # file name of the saved model inside the run directory

    @abstractmethod
    def fit(self, model: Any, data: ProjectData, cfg: DictConfig, run_dir: Path) -> FitResult:
        """Train `model` on the train split (validating on val when there is one), leaving it at its kept weights."""

    @abstractmethod
    def predict(self, model: Any, data: ProjectData, inputs: Any, device: torch.device | None = None) -> np.ndarray:
        """Model outputs (probabilities, scores or values) for `inputs`, in order."""

    @abstractmethod
    def save(self, model: Any, run_dir: Path) -> Path:
        """Store the model in the run directory."""

    @abstractmethod
    def load(self, model_cfg: DictConfig, run_dir: Path, trusted: tuple[str, ...]) -> Any:
        """Rebuild the model of a finished run. `trusted`: the module prefixes (the project's own package) whose
        classes and functions a saved scikit-learn object may hold; anything else is refused."""

    @staticmethod
    def parameter_count(model: Any) -> int | None:
        """Number of learned parameters, where the model has a natural count."""
        return None

    def cross_validate(
        self,
        model: Any,
        data: ProjectData,
        folds: int,
        score: Callable[[np.ndarray, np.ndarray], dict[str, float]],
        seed: int,
    ) -> dict[str, float] | None:
        """The mean of `score(targets, outputs)` over `folds` folds of the train split, each fitted afresh on the
        rest; None for a kind of model that is not cross-validated (Lightning modules: `tune` scores them on val,
        epoch by epoch, and prunes them there)."""
        return None


def read_plain_checkpoint(path: Path, use: str, fix: str) -> Any:
    """A checkpoint read `weights_only` (tensors and plain values: torch refuses anything that would run code);
    a damaged file, or one holding other objects, is a `RunNotFoundError` saying it cannot be `use`d, with `fix`."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # damaged (EOFError, RuntimeError) or not plain data (UnpicklingError)
        raise RunNotFoundError(
            f"{path} cannot be {use}: it is damaged or holds more than weights and plain values ({first_line(error)}).",
            fix,
        ) from error


def first_line(error: BaseException) -> str:
    """An exception's first sentence (its type when it has no message), for an error that quotes it."""
    text = str(error).strip()
    return text.splitlines()[0].split(". ")[0].rstrip(".") if text else type(error).__name__


def preprocessed(model: LightningModule, inputs: Any) -> Any:
    """`inputs` through the module's fitted scikit-learn preprocessor, when it carries one."""
    return model.preprocessor.transform(inputs) if isinstance(model, CarriesPreprocessor) else inputs
