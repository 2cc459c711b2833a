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
| `Exports` | write the network as ONNX (`export`): the module that computes `predict_step`, over named tensors |
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from lightning import LightningModule

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


@dataclass(frozen=True)
class ExportGraph:
    """What `export` writes for one kind of batch: `module(*tensors)` with the tensors in `names` order returns
    what the model's `predict_step` returns for that batch (probabilities, values with their interval, scores).

    Axis 0 of every input is the batch, always dynamic; `axes` names the other dynamic axes of an input
    (`{"input_ids": {1: "tokens"}}`). The same name on two inputs means the same size.
    """

    module: nn.Module
    names: tuple[str, ...]
    axes: Mapping[str, Mapping[int, str]] = field(default_factory=dict)


class Exports(ABC):
    """A network that can be written as an ONNX graph: what it computes for a batch of its data's loader, split from
    what stays in Python (a tokenizer, a fitted scikit-learn preprocessor, the loader itself)."""

    @abstractmethod
    def export_graph(self, batch: Any) -> ExportGraph:
        """The module to export for batches like `batch` (one of the data's loader, at prediction)."""

    @abstractmethod
    def export_inputs(self, batch: Any) -> dict[str, torch.Tensor]:
        """A loader batch as the graph's named input tensors, in `ExportGraph.names` order (on the CPU)."""


class PredictStep(nn.Module):
    """A LightningModule's own `predict_step` as a module over the batch's tensors, for an `ExportGraph`: the graph
    then computes exactly what prediction computes. `keys` rebuilds a dict batch (`{"user": ..., "item": ...}`);
    without them the batch is the list of tensors (`[images]`)."""

    def __init__(self, model: LightningModule, keys: Sequence[str] = ()) -> None:
        super().__init__()
        self.model, self.keys = model, tuple(keys)

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        batch: Any = dict(zip(self.keys, tensors, strict=True)) if self.keys else list(tensors)
        return self.model.predict_step(batch, 0)


def format_explanation(pairs: Sequence[tuple[str, float]]) -> str:
    """`great (+0.41), dull (-0.30)`: the strongest features and which way they push."""
    return ", ".join(f"{name} ({value:+.2f})" for name, value in pairs)
