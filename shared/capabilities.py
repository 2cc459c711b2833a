"""What a model may offer beyond fitting and predicting, declared once: a model says so by subclassing.

The core asks `isinstance(model, Explains)`, never `hasattr(model, "explain")`: a capability is a
name with a signature, and a model that claims one must implement it (these are abstract bases).

| capability | the core uses it to |
| --- | --- |
| `FitsOnTrain` | let the model see the train split before training (a vocabulary, fitted preprocessing, sizes) |
| `CarriesPreprocessor` | send every input through the model's fitted scikit-learn transformer, and save it |
| `Explains` | add an `explanation` column to `predict` (`explain=N`) |
| `Describes` | put facts about the fitted model (chosen parameters, vocabulary size) in `metrics.json` and the card |
| `ExtractsFeatures` | give other projects a representation to measure with (the GAN's Fréchet distance) |
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

Explanation = list[tuple[str, float]]  # (feature or token, signed contribution), strongest first


class FitsOnTrain(ABC):
    """A model that learns something from the train split before training proper."""

    @abstractmethod
    def fit_on_train(self, inputs: Any, targets: np.ndarray) -> None:
        """See the train split once; the core calls this right after building the model."""


class CarriesPreprocessor(ABC):
    """A model (a LightningModule) that carries a fitted scikit-learn transformer as `preprocessor`: the core sends
    every input through it before the data's loader, and saves it beside the checkpoint, so raw inputs (a CSV of
    districts) reach the network exactly as in training."""

    preprocessor: Any


class Explains(ABC):
    """A model that can say why it predicted what it did."""

    @abstractmethod
    def explain(self, inputs: Any, count: int = 5) -> list[Explanation]:
        """Per input, the `count` features (n-grams, tokens, columns) that weighed most, with signed weights."""


class Describes(ABC):
    """A fitted model with facts worth keeping in `metrics.json` and the model card."""

    @abstractmethod
    def details(self) -> dict[str, Any]:
        """Plain JSON-able facts: chosen hyperparameters, cross-validated scores, vocabulary size."""


class ExtractsFeatures(ABC):
    """A network whose penultimate layer is a useful representation of its inputs."""

    @abstractmethod
    def features(self, inputs: torch.Tensor) -> torch.Tensor:
        """(N, D) features of a batch of model inputs."""


def format_explanation(pairs: Sequence[tuple[str, float]]) -> str:
    """`great (+0.41), dull (-0.30)`: the strongest features and which way they push."""
    return ", ".join(f"{name} ({value:+.2f})" for name, value in pairs)
