"""What monitoring measures: a batch of inputs (or of predictions) as named numbers, categories and an embedding.

A project says once how its inputs become `Features` (`Project.monitored_features`); the core keeps a sample of them
from the training data (`shared.monitor.reference`) and tests new batches against it (`shared.monitor.drift`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from shared.capabilities import ExtractsFeatures


@dataclass
class Features:
    """One batch measured: per input, a value for each number and category, and optionally a vector.

    `numbers` are floats (NaN: not measured for that input), `categories` strings, `embedding` an (N, D) array
    of the model's own representation (the core reduces it by PCA fitted on the training sample).
    """

    numbers: Mapping[str, np.ndarray] = field(default_factory=dict)
    categories: Mapping[str, np.ndarray] = field(default_factory=dict)
    embedding: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.numbers = {name: np.asarray(values, dtype=np.float64).ravel() for name, values in self.numbers.items()}
        self.categories = {name: np.asarray(values).astype(str).ravel() for name, values in self.categories.items()}
        if self.embedding is not None:
            self.embedding = np.asarray(self.embedding, dtype=np.float64).reshape(len(self.embedding), -1)

    @property
    def empty(self) -> bool:
        return not self.numbers and not self.categories and self.embedding is None


def predicted_class_features(probabilities: np.ndarray, class_names: tuple[str, ...] | None = None) -> Features:
    """A classifier's outputs as the one category prediction drift is tested on: the predicted class."""
    best = np.asarray(probabilities).argmax(axis=1)
    names = np.asarray(class_names)[best] if class_names is not None else best.astype(str)
    return Features(categories={"predicted_class": names})


def network_features(model: ExtractsFeatures, inputs: torch.Tensor, batch_size: int = 1000) -> np.ndarray:
    """The network's own representation (`ExtractsFeatures.features`) of a tensor of inputs, in batches, without
    gradients, on the device the model is on."""
    device = next(iter(model.parameters())).device if isinstance(model, torch.nn.Module) else torch.device("cpu")
    was_training = isinstance(model, torch.nn.Module) and model.training
    if isinstance(model, torch.nn.Module):
        model.eval()
    parts = []
    with torch.inference_mode():
        for start in range(0, len(inputs), batch_size):
            parts.append(model.features(inputs[start : start + batch_size].to(device)).float().cpu().numpy())
    if was_training and isinstance(model, torch.nn.Module):
        model.train()
    return np.concatenate(parts) if parts else np.zeros((0, 0))


def take(inputs: Any, indices: np.ndarray) -> Any:
    """The rows `indices` of a split's inputs, whatever container the project uses for them."""
    if isinstance(inputs, pd.DataFrame | pd.Series):
        return inputs.iloc[indices]
    if isinstance(inputs, torch.Tensor):
        return inputs[torch.as_tensor(indices, dtype=torch.long)]
    if isinstance(inputs, np.ndarray):
        return inputs[indices]
    return [inputs[int(index)] for index in indices]
