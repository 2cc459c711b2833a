"""CIFAR-10's networks: a ResNet-9 (default), torchvision architectures by name, and airbench (`airbench.py`).

All share `VisionClassifier`: uint8 (or [0, 1] float) images in, normalised with CIFAR-10's channel statistics
on the batch's device, in channels-last memory (what oneDNN and cuDNN convolve fastest); each training batch
augmented whole (`augment.py`); the core's classifier steps with label smoothing; test-time augmentation by
mirror images (and one-pixel shifts).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from projects.vision.augment import BatchAugment
from shared.capabilities import ExportGraph, Exports, ExtractsFeatures, PredictStep
from shared.classification import Classifier
from shared.errors import UsageError
from shared.schedules import BudgetedOneCycleLR, time_budget_spent

# Per-channel mean and standard deviation of the 50,000 CIFAR-10 training images in [0, 1], as airbench and
# most CIFAR-10 code use them (github.com/KellerJordan/cifar10-airbench, airbench94.py: CIFAR_MEAN, CIFAR_STD).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


def one_cycle(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup: float,
    start: float,
    end: float,
    budget_spent: Callable[[], float] = lambda: 0.0,
) -> BudgetedOneCycleLR:
    """Each group's lr rises linearly from `start`× its lr to its lr over the first `warmup` share of the steps,
    then falls linearly to `end`× (momentum left alone): the schedule of Page's ResNet-9 and of airbench.
    With `budget_spent` (`shared.schedules.time_budget_spent`), a run capped by `trainer.max_time` follows the
    time spent where it runs ahead of the steps, so the rate has fallen when the cap stops training.
    OneCycleLR divides by each phase's length in steps, so a run of a handful of steps (a tiny dataset) gets a
    phase of at least two steps each way rather than a division by zero."""
    total = max(int(total_steps), 3)
    return BudgetedOneCycleLR(
        optimizer,
        budget_spent=budget_spent,
        max_lr=[group["lr"] for group in optimizer.param_groups],
        total_steps=total,
        pct_start=min(max(warmup, 2 / total), 1 - 1 / total),
        anneal_strategy="linear",
        cycle_momentum=False,
        div_factor=1 / start,
        final_div_factor=start / end,
    )


class VisionClassifier(Classifier, ExtractsFeatures, Exports):
    """The steps every vision network shares. A subclass builds its layers and defines `logits` and `embed` on
    normalised channels-last batches; `forward` and `features` take images as the data gives them.

    The export is `predict_step` itself: uint8 images in, the run's test-time augmentation (`tta`: its views and
    their mirrors, averaged) inside the graph, probabilities out. So the ONNX backend answers what `predict` and
    the run's metrics answer; a run trained with `tta: none` exports the plain network's softmax.
    """

    sum_loss = False  # airbench's learning rate is per example: its loss is summed over the batch, not averaged
    TEST_TIME_AUGMENTATIONS = ("none", "mirror", "mirror_translate")

    def __init__(
        self,
        classes: int,
        label_smoothing: float,
        augment: Mapping[str, Any] | None,
        tta: bool | str,
        channels_last: bool,
        class_names: Sequence[str] | None,
        image_size: int,
    ) -> None:
        super().__init__(classes, label_smoothing)
        self.class_names = list(class_names) if class_names is not None else [str(index) for index in range(classes)]
        self.image_size, self.tta = image_size, tta
        self.augment = BatchAugment.from_config(augment, fill=CIFAR10_MEAN)  # cutout: the mean colour
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        mean, std = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1), torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)

    @property
    def tta(self) -> str:
        """Test-time augmentation of validation and predict: `none`, `mirror` (each image and its mirror image,
        averaged) or `mirror_translate` (airbench's: those two, and both shifted one pixel up-left and
        down-right, the shifted views together weighing as much as the unshifted). true is `mirror`."""
        return self._tta

    @tta.setter
    def tta(self, value: bool | str) -> None:
        chosen = ("mirror" if value else "none") if isinstance(value, bool) else value
        if chosen not in self.TEST_TIME_AUGMENTATIONS:
            raise UsageError(
                f"model.tta={value!r} is not a test-time augmentation.",
                f"use one of {', '.join(self.TEST_TIME_AUGMENTATIONS)} (or true/false).",
            )
        self._tta = chosen

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def embed(self, inputs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (0-255) or float ([0, 1]) N×3×H×W → normalised float32 in the network's memory format."""
        scale = 255.0 if images.dtype == torch.uint8 else 1.0
        inputs = (images.float() - self.mean * scale) / (self.std * scale)
        return inputs.contiguous(memory_format=self.memory_format)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits(self.normalise(images))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The penultimate layer: the pooled activations the linear head reads."""
        return self.embed(self.normalise(images))

    def training_step(self, batch: Sequence[Any], batch_index: int) -> torch.Tensor:
        images, labels = batch
        if self.augment is not None:  # on the uint8 batch: a quarter of the bytes to move
            images = self.augment(images, self.current_epoch)
        logits = self.logits(self.normalise(images))
        loss = self.loss(logits, labels)
        self.log_training(loss, logits, labels)
        return loss * len(labels) if self.sum_loss else loss

    def _views(self, images: torch.Tensor) -> list[tuple[torch.Tensor, float]]:
        """The logits of each view `tta` asks for, with its weight (the weights sum to 1)."""
        inputs = self.normalise(images)
        if self.tta == "none":
            return [(self.logits(inputs), 1.0)]
        views = [inputs]
        if self.tta == "mirror_translate":
            height, width = inputs.shape[-2:]
            padded = F.pad(inputs, (1, 1, 1, 1), mode="reflect")
            views += [padded[..., :height, :width], padded[..., 2:, 2:]]
        weights = [1.0] if len(views) == 1 else [0.5, 0.25, 0.25]
        # each view and its mirror image share the view's weight
        return [
            (self.logits(seen), weight / 2)
            for view, weight in zip(views, weights, strict=True)
            for seen in (view, view.flip(-1))
        ]

    def validation_step(self, batch: Sequence[Any], batch_index: int) -> None:
        images, labels = batch
        logits = sum(weight * logits.float() for logits, weight in self._views(images))
        self.val_accuracy(logits, labels)
        size = len(labels)
        loss = F.cross_entropy(logits, labels)
        self.log("val/loss", loss, on_epoch=True, prog_bar=True, sync_dist=True, batch_size=size)
        self.log("val/acc", self.val_accuracy, on_epoch=True, prog_bar=True, batch_size=size)

    def predict_step(self, batch: Sequence[Any], batch_index: int) -> torch.Tensor:
        return sum(weight * F.softmax(logits.float(), dim=1) for logits, weight in self._views(batch[0]))

    def export_graph(self, batch: Sequence[Any]) -> ExportGraph:
        return ExportGraph(PredictStep(self), ("images",))

    def export_inputs(self, batch: Sequence[Any]) -> dict[str, torch.Tensor]:
        return {"images": batch[0].cpu()}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.augment is not None:  # a resumed run draws the crops and flips it would have drawn
            checkpoint["augment_generator"] = self.augment.generator.get_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.augment is not None and "augment_generator" in checkpoint:
            self.augment.generator.set_state(checkpoint["augment_generator"])


class SGDClassifier(VisionClassifier):
    """Nesterov SGD with weight decay on every parameter and the linear warmup-decay schedule, by step."""

    def __init__(
        self,
        lr: float,
        momentum: float,
        weight_decay: float,
        warmup: float,
        lr_start: float,
        lr_end: float,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.warmup, self.lr_start, self.lr_end = warmup, lr_start, lr_end

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = torch.optim.SGD(
            self.parameters(), lr=self.lr, momentum=self.momentum, nesterov=True, weight_decay=self.weight_decay
        )
        total = self.trainer.estimated_stepping_batches
        budget = time_budget_spent(self.trainer)
        schedule = one_cycle(optimizer, total, self.warmup, self.lr_start, self.lr_end, budget_spent=budget)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def _conv_bn(inputs: int, outputs: int, pool: bool = False) -> nn.Sequential:
    """3×3 conv, (2×2 max-pool: before the norm, so it and the ReLU see a quarter of the pixels), BN, ReLU."""
    layers = [nn.Conv2d(inputs, outputs, 3, padding=1, bias=False), nn.MaxPool2d(2) if pool else nn.Identity()]
    return nn.Sequential(*layers, nn.BatchNorm2d(outputs), nn.ReLU(inplace=True))


class Residual(nn.Module):
    """x + f(x)."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs + self.body(inputs)


class ResNet9(SGDClassifier):
    """The DAWNBench ResNet-9 of Myrtle.ai (Page, "How to train your ResNet", 2018): prep conv; layer 1 (conv,
    pool, residual of two convs); layer 2 (conv, pool); layer 3 (conv, pool, residual); global max-pool; a linear
    head whose logits are scaled down (0.125), which stands in for a lower softmax temperature. 6.6M parameters
    at the default widths; 94% on CIFAR-10 in 24 epochs in Page's runs."""

    def __init__(
        self,
        classes: int = 10,
        widths: Sequence[int] = (64, 128, 256, 512),
        logit_scale: float = 0.125,
        label_smoothing: float = 0.2,
        augment: Mapping[str, Any] | None = None,
        tta: bool | str = True,
        channels_last: bool = True,
        lr: float = 0.4,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        warmup: float = 0.2,
        lr_start: float = 0.04,
        lr_end: float = 0.002,
        class_names: Sequence[str] | None = None,
        image_size: int = 32,
    ) -> None:
        super().__init__(
            lr, momentum, weight_decay, warmup, lr_start, lr_end, classes=classes, label_smoothing=label_smoothing,
            augment=augment, tta=tta, channels_last=channels_last, class_names=class_names, image_size=image_size,
        )  # fmt: skip
        self.save_hyperparameters()
        prep, first, second, third = widths
        residual = lambda width: Residual(nn.Sequential(_conv_bn(width, width), _conv_bn(width, width)))  # noqa: E731
        self.body = nn.Sequential(
            _conv_bn(3, prep),
            nn.Sequential(_conv_bn(prep, first, pool=True), residual(first)),
            _conv_bn(first, second, pool=True),
            nn.Sequential(_conv_bn(second, third, pool=True), residual(third)),
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(third, classes, bias=False)
        self.logit_scale = logit_scale
        self.to(memory_format=self.memory_format)

    def embed(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.body(inputs)

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(inputs)) * self.logit_scale


def torchvision_architectures() -> list[str]:
    """torchvision's image-classification models (not detection, segmentation, video, optical flow)."""
    return torchvision.models.list_models(module=torchvision.models)


class TorchvisionNet(SGDClassifier):
    """Any torchvision classification architecture by name, from random weights (nothing is downloaded). A
    ResNet's stem is made for 32×32: a 3×3 stride-1 conv and no max-pool, so layer 1 sees 32×32, not 8×8.

    `features` is the input of the last linear layer (the pooled features for ResNets, VGG's last hidden layer).
    """

    def __init__(
        self,
        classes: int = 10,
        arch: str = "resnet18",
        label_smoothing: float = 0.1,
        augment: Mapping[str, Any] | None = None,
        tta: bool | str = True,
        channels_last: bool = True,
        lr: float = 0.2,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        warmup: float = 0.2,
        lr_start: float = 0.04,
        lr_end: float = 0.002,
        class_names: Sequence[str] | None = None,
        image_size: int = 32,
    ) -> None:
        super().__init__(
            lr, momentum, weight_decay, warmup, lr_start, lr_end, classes=classes, label_smoothing=label_smoothing,
            augment=augment, tta=tta, channels_last=channels_last, class_names=class_names, image_size=image_size,
        )  # fmt: skip
        self.save_hyperparameters()
        choices = torchvision_architectures()
        if arch not in choices:
            raise UsageError(
                f"model.arch={arch!r} is not a torchvision classification architecture.",
                f"use one of: {', '.join(choices)}.",
            )
        sized = {"image_size": image_size} if arch.startswith("vit_") else {}  # a ViT is built for one size
        self.network = torchvision.models.get_model(arch, weights=None, num_classes=classes, **sized)
        if isinstance(self.network, torchvision.models.ResNet):
            stem = self.network.conv1
            self.network.conv1 = nn.Conv2d(3, stem.out_channels, 3, padding=1, bias=False)
            self.network.maxpool = nn.Identity()
        linear = [module for module in self.network.modules() if isinstance(module, nn.Linear)]
        self.last_linear = linear[-1] if linear else None
        self.to(memory_format=self.memory_format)

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        outputs = self.network(inputs)
        return getattr(outputs, "logits", outputs)  # GoogLeNet and Inception add auxiliary logits in training

    def embed(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.last_linear is None:
            raise UsageError(f"torchvision's {self.hparams['arch']} has no linear head to read features before.")
        captured: list[torch.Tensor] = []
        hook = self.last_linear.register_forward_pre_hook(lambda module, args: captured.append(args[0]))
        try:
            self.network(inputs)
        finally:
            hook.remove()
        return captured[0].flatten(1)
