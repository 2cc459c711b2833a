"""Keller Jordan's airbench94 (github.com/KellerJordan/cifar10-airbench, "94% on CIFAR-10 in 3.29 seconds on a
single GPU", 2024), written again for this core: the recipe, not the code.

What makes it fast to train, each kept here:
- a frozen first layer of 2×2 convolutions that whitens the image patches (filters from the eigenvectors of the
  patches' covariance, and their negatives), fitted on a few thousand training images before training; only its
  bias trains, and only for the first epochs;
- three conv groups (conv, max-pool, BN, GELU, conv, BN, GELU), convs initialised to pass their inputs through
  (identity on the first channels); BatchNorm with its scale frozen at 1, a fast running average and a tiny eps;
- a max-pooled linear head without bias, its logits scaled by 1/9; label smoothing 0.2 on a summed loss;
- Nesterov SGD whose lr and weight decay are given per 1024 examples and independent of the momentum, BatchNorm
  biases at 64× the lr; a linear warmup to 23% of the steps, then a linear decay;
- lookahead: from the third epoch, every 5 steps the weights move to an average that grows more stable as training
  ends, and the network restarts from it; after the last step the network is the average;
- test-time augmentation by mirror images (in `VisionClassifier`).

`AirbenchMuon` is the same network trained by the later airbench94_muon recipe (`muon.py`): 8 epochs, not 10.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from projects.vision.models import VisionClassifier, one_cycle
from projects.vision.muon import MuonSGD
from shared.capabilities import FitsOnTrain
from shared.errors import UsageError
from shared.schedules import time_budget_spent

WIDTHS = {"block1": 64, "block2": 256, "block3": 256}
WHITEN_KERNEL = 2  # 2×2 patches of 3 channels: 12 whitened directions, each with its negative → 24 channels
WHITEN_EPS = 5e-4  # added to the eigenvalues, so the faintest directions are not blown up to unit variance
BATCHNORM_MOMENTUM = 0.4  # torch's convention: the running statistics keep 0.6 of themselves each step
BATCHNORM_EPS = 1e-12
LOGIT_SCALE = 1 / 9
LOOKAHEAD_EVERY = 5  # steps between two moves to the average
LOOKAHEAD_DECAY = 0.95  # per step; raised to LOOKAHEAD_EVERY, times (step / total steps) ** LOOKAHEAD_POWER
LOOKAHEAD_POWER = 3.0


def _batch_norm(width: int) -> nn.BatchNorm2d:
    norm = nn.BatchNorm2d(width, eps=BATCHNORM_EPS, momentum=BATCHNORM_MOMENTUM)
    norm.weight.requires_grad_(False)  # the scale stays 1: only the bias trains
    return norm


def _conv(inputs: int, outputs: int) -> nn.Conv2d:
    """3×3, no bias, its first `inputs` filters the identity: the group starts as (almost) a shortcut."""
    conv = nn.Conv2d(inputs, outputs, 3, padding=1, bias=False)
    with torch.no_grad():
        nn.init.dirac_(conv.weight[:inputs])
    return conv


def _conv_group(inputs: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(
        _conv(inputs, outputs),
        nn.MaxPool2d(2),
        _batch_norm(outputs),
        nn.GELU(),
        _conv(outputs, outputs),
        _batch_norm(outputs),
        nn.GELU(),
    )


class AirbenchNetwork(VisionClassifier, FitsOnTrain):
    """airbench's network: the whitening layer (its bias trained for the first `whiten_bias_epochs`), three conv
    groups, a max-pooled linear head. Its recipes (`Airbench`, `AirbenchMuon`) add their optimisers."""

    sum_loss = True

    def __init__(
        self,
        classes: int,
        widths: Mapping[str, int],
        whiten_images: int,
        whiten_bias_epochs: int,
        logit_scale: float,
        label_smoothing: float,
        augment: Mapping[str, Any] | None,
        tta: bool | str,
        channels_last: bool,
        class_names: Sequence[str] | None,
        image_size: int,
    ) -> None:
        super().__init__(classes, label_smoothing, augment, tta, channels_last, class_names, image_size)
        unknown = sorted(set(widths) - set(WIDTHS))
        if unknown:
            raise UsageError(f"unknown airbench width(s) {', '.join(unknown)}.", f"use {', '.join(WIDTHS)}.")
        self.widths = {**WIDTHS, **widths}
        whitened = 2 * 3 * WHITEN_KERNEL**2
        self.whiten = nn.Conv2d(3, whitened, WHITEN_KERNEL, bias=True)
        self.whiten.weight.requires_grad_(False)
        nn.init.zeros_(self.whiten.bias)
        self.body = nn.Sequential(
            nn.GELU(),
            _conv_group(whitened, self.widths["block1"]),
            _conv_group(self.widths["block1"], self.widths["block2"]),
            _conv_group(self.widths["block2"], self.widths["block3"]),
            nn.MaxPool2d(3),
            nn.Flatten(),
        )
        self.head = nn.Linear(self.widths["block3"], classes, bias=False)
        self.whiten_images, self.whiten_bias_epochs, self.logit_scale = whiten_images, whiten_bias_epochs, logit_scale
        self.to(memory_format=self.memory_format)

    def embed(self, inputs: torch.Tensor) -> torch.Tensor:
        # The whitening stays in float32 under autocast: its faintest directions are small differences of
        # neighbouring pixels, which bf16's 8-bit mantissa blurs (12% relative error on the faintest channel,
        # measured on CIFAR-10; 3% in fp16). It is 0.2% of the network's multiply-adds.
        with torch.autocast(inputs.device.type, enabled=False):
            whitened = self.whiten(inputs.float())
        return self.body(whitened)

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(inputs)) * self.logit_scale

    def norm_biases(self) -> list[nn.Parameter]:
        """The BatchNorm biases (their scales are frozen): airbench gives them their own learning rate."""
        return [module.bias for module in self.modules() if isinstance(module, nn.BatchNorm2d)]

    # --- whitening ------------------------------------------------------------------------------------------
    def fit_on_train(self, inputs: Any, targets: np.ndarray) -> None:
        """The whitening filters from `whiten_images` training images (uint8 N×3×H×W), spread evenly over the split:
        a split stored in class order (CIFAR-10's images from their class folders) would give one class first."""
        step = max(1, len(inputs) // self.whiten_images)
        images = torch.as_tensor(inputs[::step][: self.whiten_images])
        with torch.no_grad():
            covariance = torch.zeros(3 * WHITEN_KERNEL**2, 3 * WHITEN_KERNEL**2, dtype=torch.float64)
            count = 0
            for chunk in images.split(1000):
                patches = F.unfold(self.normalise(chunk.to(self.whiten.weight.device)), WHITEN_KERNEL)
                patches = patches.transpose(1, 2).reshape(-1, covariance.shape[0]).double().cpu()
                covariance += patches.T @ patches
                count += len(patches)
            eigenvalues, eigenvectors = torch.linalg.eigh(covariance / count)
            filters = (eigenvectors / (eigenvalues + WHITEN_EPS).sqrt()).T.reshape(-1, 3, WHITEN_KERNEL, WHITEN_KERNEL)
            self.whiten.weight.copy_(torch.cat([filters, -filters]).to(self.whiten.weight))

    def on_train_epoch_start(self) -> None:
        # With nothing before the first group needing a gradient, backward stops there: 8% faster steps on a CPU.
        # Under DDP the set of parameters with gradients must not change, so there the gradient is dropped instead.
        trains = self.current_epoch < self.whiten_bias_epochs
        self.whiten.bias.requires_grad_(trains or self.trainer.world_size > 1)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.current_epoch >= self.whiten_bias_epochs:
            self.whiten.bias.grad = None  # SGD skips it: frozen, momentum and decay included


class Airbench(AirbenchNetwork):
    """airbench94's network and training recipe. 2.0M parameters at the default widths (64, 256, 256); 94% on
    CIFAR-10 in about 10 epochs at batch 1024. Epochs come from `trainer.max_epochs`, the batch from the data."""

    def __init__(
        self,
        classes: int = 10,
        widths: Mapping[str, int] = WIDTHS,
        whiten_images: int = 5000,
        whiten_bias_epochs: int = 3,
        label_smoothing: float = 0.2,
        augment: Mapping[str, Any] | None = None,
        tta: bool | str = True,
        channels_last: bool = True,
        lr: float = 11.5,
        momentum: float = 0.85,
        weight_decay: float = 0.0153,
        bias_scaler: float = 64.0,
        batch_size: int = 1024,
        warmup: float = 0.23,
        lr_start: float = 0.2,
        lr_end: float = 0.07,
        lookahead_from: int | None = 3,
        class_names: Sequence[str] | None = None,
        image_size: int = 32,
    ) -> None:
        super().__init__(
            classes, widths, whiten_images, whiten_bias_epochs, LOGIT_SCALE, label_smoothing, augment, tta,
            channels_last, class_names, image_size,
        )  # fmt: skip
        self.save_hyperparameters()
        self.lr, self.momentum, self.weight_decay, self.bias_scaler = lr, momentum, weight_decay, bias_scaler
        self.batch_size, self.warmup, self.lr_start, self.lr_end = batch_size, warmup, lr_start, lr_end
        self.lookahead_from = lookahead_from
        self._average: list[torch.Tensor] | None = None
        self._budget_spent: Callable[[], float] = lambda: 0.0  # the share of trainer.max_time spent: fit sets it

    def configure_optimizers(self) -> dict[str, Any]:
        # airbench's decoupled form: Nesterov's steps are 1 + 1 / (1 - momentum) times the gradient's, so the lr is
        # divided by that (and by 1024 examples, the loss being summed); the decay per example stays `weight_decay`.
        per_example = 1024 * (1 + 1 / (1 - self.momentum))
        lr, decay = self.lr / per_example, self.weight_decay * self.batch_size / per_example
        norm_biases = self.norm_biases()
        chosen = {id(parameter) for parameter in norm_biases}
        trained = [p for p in self.parameters() if p.requires_grad or p is self.whiten.bias]  # bias: frozen later
        others = [p for p in trained if id(p) not in chosen]
        biases_lr = lr * self.bias_scaler
        groups = [
            {"params": norm_biases, "lr": biases_lr, "weight_decay": decay / biases_lr},
            {"params": others, "lr": lr, "weight_decay": decay / lr},  # torch multiplies the decay by the lr
        ]
        optimizer = torch.optim.SGD(groups, momentum=self.momentum, nesterov=True)
        total = self.trainer.estimated_stepping_batches
        self._budget_spent = time_budget_spent(self.trainer)
        schedule = one_cycle(optimizer, total, self.warmup, self.lr_start, self.lr_end, self._budget_spent)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_index: int) -> None:
        """Lookahead: every few steps, the average moves towards the weights and the weights jump to it."""
        if self.lookahead_from is None or self.current_epoch < self.lookahead_from:
            return
        # How far training is: the steps taken, or the share of trainer.max_time spent where that is further (the
        # schedule's own measure); the Timer's stop (or any other) is the last step.
        progress = min(1.0, max(self.global_step / self.trainer.estimated_stepping_batches, self._budget_spent()))
        last = progress >= 1 or self.trainer.should_stop
        due = self.global_step % LOOKAHEAD_EVERY == 0
        if not due and not last:
            return
        tensors = [tensor for tensor in self.state_dict().values() if tensor.is_floating_point()]
        if self._average is None:
            self._average = [tensor.clone() for tensor in tensors]
            return
        decay = LOOKAHEAD_DECAY**LOOKAHEAD_EVERY * progress**LOOKAHEAD_POWER
        with torch.no_grad():  # after the last step the weights return to the average (airbench's): the run keeps it
            for average, tensor in zip(self._average, tensors, strict=True):
                if due:
                    average.lerp_(tensor, 1 - decay)
                tensor.copy_(average)


class AirbenchMuon(AirbenchNetwork):
    """airbench94_muon's recipe on the same network: Muon (`muon.py`) for the conv filters, Nesterov SGD for the
    BatchNorm biases, the whitening bias and the head; no warmup and no lookahead, every lr falling linearly to 0
    (the whitening bias's within its `whiten_bias_epochs`). The head starts at unit scale and its logits are
    divided by its width. 94.01% on CIFAR-10 in 8 epochs at batch 2000, against airbench94's 10 epochs."""

    def __init__(
        self,
        classes: int = 10,
        widths: Mapping[str, int] = WIDTHS,
        whiten_images: int = 5000,
        whiten_bias_epochs: int = 3,
        label_smoothing: float = 0.2,
        augment: Mapping[str, Any] | None = None,
        tta: bool | str = True,
        channels_last: bool = True,
        filter_lr: float = 0.24,
        filter_momentum: float = 0.6,
        bias_lr: float = 0.053,
        head_lr: float = 0.67,
        momentum: float = 0.85,
        weight_decay: float = 2e-6,
        batch_size: int = 2000,
        class_names: Sequence[str] | None = None,
        image_size: int = 32,
    ) -> None:
        width = {**WIDTHS, **widths}["block3"]
        super().__init__(
            classes, widths, whiten_images, whiten_bias_epochs, 1 / width, label_smoothing, augment, tta,
            channels_last, class_names, image_size,
        )  # fmt: skip
        self.save_hyperparameters()
        with torch.no_grad():
            self.head.weight /= self.head.weight.std()
        self.filter_lr, self.filter_momentum, self.bias_lr, self.head_lr = filter_lr, filter_momentum, bias_lr, head_lr
        self.momentum, self.weight_decay, self.batch_size = momentum, weight_decay, batch_size

    def configure_optimizers(self) -> dict[str, Any]:
        decay = self.weight_decay * self.batch_size  # per example, on a loss summed over the batch
        filters = [module.weight for module in self.body.modules() if isinstance(module, nn.Conv2d)]
        groups = [
            {"params": [self.whiten.bias], "lr": self.bias_lr, "weight_decay": decay / self.bias_lr},
            {"params": self.norm_biases(), "lr": self.bias_lr, "weight_decay": decay / self.bias_lr},
            {"params": [self.head.weight], "lr": self.head_lr, "weight_decay": decay / self.head_lr},
            {"params": filters, "lr": self.filter_lr, "momentum": self.filter_momentum, "orthogonalise": True},
        ]
        optimizer = MuonSGD(groups, momentum=self.momentum)
        total = self.trainer.estimated_stepping_batches
        whiten_steps = max(1, round(total * self.whiten_bias_epochs / self.trainer.max_epochs))
        falls = [lambda step: max(0.0, 1 - step / whiten_steps)] + [lambda step: 1 - step / total] * 3
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, falls)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
