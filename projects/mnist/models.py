"""MNIST's models: a small CNN (default), an MLP, and a logistic-regression baseline.

The two neural models share `DigitClassifier`: the core's classifier steps (cross-entropy with label
smoothing, accuracy from torchmetrics) with SGD, Nesterov momentum and a one-cycle learning-rate schedule.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from torch import nn

from shared import checks
from shared.capabilities import ExportGraph, Exports, ExtractsFeatures, PredictStep
from shared.classification import Classifier
from shared.schedules import BudgetedOneCycleLR, time_budget_spent

CLASSES = 10


class DigitClassifier(Classifier, Exports):
    """The shared classifier steps (`shared.classification.Classifier`) with SGD, Nesterov momentum and a
    one-cycle learning-rate schedule that ends on time when `trainer.max_time` comes first.
    Exported as its prediction: normalised N×1×28×28 images to probabilities."""

    def __init__(self, lr: float, momentum: float, weight_decay: float, label_smoothing: float, warmup: float) -> None:
        super().__init__(CLASSES, label_smoothing)
        self.lr, self.momentum, self.weight_decay, self.warmup = lr, momentum, weight_decay, warmup

    def export_graph(self, batch: Sequence[torch.Tensor]) -> ExportGraph:
        return ExportGraph(PredictStep(self), ("images",))

    def export_inputs(self, batch: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"images": batch[0].cpu()}

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = torch.optim.SGD(
            self.parameters(),
            lr=self.lr,
            momentum=self.momentum,
            nesterov=True,
            weight_decay=self.weight_decay,
        )
        schedule = BudgetedOneCycleLR(  # OneCycleLR, ending on time when trainer.max_time comes first
            optimizer,
            budget_spent=time_budget_spent(self.trainer),
            max_lr=self.lr,
            total_steps=self.trainer.estimated_stepping_batches,
            pct_start=self.warmup,
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def _conv_block(inputs: int, outputs: int, pool_before_norm: bool, convolutions: int) -> nn.Sequential:
    """A convolution that halves the side, then `convolutions - 1` more at the halved side (airbench's groups).

    The first is conv-BN-ReLU-pool, or conv-pool-BN-ReLU with `pool_before_norm`: the same kind of function
    (max-pooling commutes with a rising affine map and ReLU) with BatchNorm and ReLU on a quarter of the values.
    """
    convolution = nn.Conv2d(inputs, outputs, 3, padding=1, bias=False)
    if pool_before_norm:
        layers = [convolution, nn.MaxPool2d(2), nn.BatchNorm2d(outputs), nn.ReLU(inplace=True)]
    else:
        layers = [convolution, nn.BatchNorm2d(outputs), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
    for _ in range(convolutions - 1):
        layers += [
            nn.Conv2d(outputs, outputs, 3, padding=1, bias=False),
            nn.BatchNorm2d(outputs),
            nn.ReLU(inplace=True),
        ]
    return nn.Sequential(*layers)


class ConvNet(DigitClassifier, ExtractsFeatures):
    """Three conv-BN-ReLU-pool blocks (28→14→7→3) and a linear head: ~0.1M parameters, 99.5% on MNIST.

    `features` is the flattened output of the blocks, the layer before the head: what the GAN project measures
    its samples with.
    """

    def __init__(
        self,
        widths: Sequence[int] = (32, 64, 128),
        dropout: float = 0.2,
        channels_last: bool = True,
        pool_before_norm: bool = False,
        convolutions_per_block: int = 1,
        lr: float = 0.1,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        label_smoothing: float = 0.1,
        warmup: float = 0.25,
    ) -> None:
        super().__init__(lr, momentum, weight_decay, label_smoothing, warmup)
        self.save_hyperparameters()
        channels = [1, *widths]
        convolutions = checks.whole(convolutions_per_block, "model.convolutions_per_block", example=1)
        self.blocks = nn.Sequential(*(_conv_block(a, b, pool_before_norm, convolutions) for a, b in pairwise(channels)))
        side = 28
        for _ in widths:
            side //= 2
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(channels[-1] * side * side, CLASSES))
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.to(memory_format=self.memory_format)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.blocks(images.contiguous(memory_format=self.memory_format)).flatten(1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


class MultilayerPerceptron(DigitClassifier):
    """Fully connected layers on the 784 pixels: the classic MLP baseline (~98.3%)."""

    def __init__(
        self,
        hidden: Sequence[int] = (512, 256),
        dropout: float = 0.2,
        lr: float = 0.05,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        label_smoothing: float = 0.0,
        warmup: float = 0.2,
    ) -> None:
        super().__init__(lr, momentum, weight_decay, label_smoothing, warmup)
        self.save_hyperparameters()
        sizes = [28 * 28, *hidden]
        layers: list[nn.Module] = [nn.Flatten()]
        for inputs, outputs in pairwise(sizes):
            layers += [nn.Linear(inputs, outputs), nn.ReLU(inplace=True), nn.Dropout(dropout)]
        layers.append(nn.Linear(sizes[-1], CLASSES))
        self.network = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network(images)


def flatten_images(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """N×1×28×28 tensors to the N×784 matrix scikit-learn expects."""
    array = images.numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    return array.reshape(len(array), -1)


def logistic_regression(C: float = 0.05, max_iter: int = 200, tol: float = 1e-3) -> Pipeline:
    """Multinomial logistic regression on raw normalised pixels (~92.5%): the classical baseline."""
    return Pipeline(
        [
            ("flatten", FunctionTransformer(flatten_images)),
            ("classifier", LogisticRegression(C=C, max_iter=max_iter, tol=tol)),
        ]
    )
