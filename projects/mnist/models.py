"""MNIST's models: a small CNN (default), an MLP, and a logistic-regression baseline.

The two neural models share `DigitClassifier`: cross-entropy with label smoothing, SGD with
Nesterov momentum under a one-cycle learning-rate schedule, accuracy from torchmetrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from lightning import LightningModule
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

CLASSES = 10


class DigitClassifier(LightningModule):
    """Training, validation and prediction steps shared by the neural digit models."""

    def __init__(self, lr: float, momentum: float, weight_decay: float, label_smoothing: float, warmup: float) -> None:
        super().__init__()
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.label_smoothing, self.warmup = label_smoothing, warmup
        self.train_accuracy = MulticlassAccuracy(num_classes=CLASSES, average="micro")
        self.val_accuracy = MulticlassAccuracy(num_classes=CLASSES, average="micro")

    def training_step(self, batch: Sequence[torch.Tensor], batch_index: int) -> torch.Tensor:
        images, labels = batch
        logits = self(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        self.train_accuracy(logits, labels)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True)
        self.log("train/acc", self.train_accuracy, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: Sequence[torch.Tensor], batch_index: int) -> None:
        images, labels = batch
        logits = self(images)
        self.val_accuracy(logits, labels)
        self.log("val/loss", F.cross_entropy(logits, labels), on_epoch=True, prog_bar=True, sync_dist=True)
        self.log("val/acc", self.val_accuracy, on_epoch=True, prog_bar=True)

    def predict_step(self, batch: Sequence[torch.Tensor], batch_index: int) -> torch.Tensor:
        return F.softmax(self(batch[0]).float(), dim=1)

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = torch.optim.SGD(
            self.parameters(),
            lr=self.lr,
            momentum=self.momentum,
            nesterov=True,
            weight_decay=self.weight_decay,
        )
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=self.lr,
            total_steps=self.trainer.estimated_stepping_batches,
            pct_start=self.warmup,
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def _conv_block(inputs: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inputs, outputs, 3, padding=1, bias=False),
        nn.BatchNorm2d(outputs),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class ConvNet(DigitClassifier):
    """Three conv-BN-ReLU-pool blocks (28→14→7→3) and a linear head: ~0.1M parameters, 99.5% on MNIST."""

    def __init__(
        self,
        widths: Sequence[int] = (32, 64, 128),
        dropout: float = 0.2,
        channels_last: bool = True,
        lr: float = 0.1,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        label_smoothing: float = 0.1,
        warmup: float = 0.25,
    ) -> None:
        super().__init__(lr, momentum, weight_decay, label_smoothing, warmup)
        self.save_hyperparameters()
        channels = [1, *widths]
        self.features = nn.Sequential(*(_conv_block(a, b) for a, b in pairwise(channels)))
        side = 28
        for _ in widths:
            side //= 2
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels[-1] * side * side, CLASSES))
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.to(memory_format=self.memory_format)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images.contiguous(memory_format=self.memory_format)))


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
