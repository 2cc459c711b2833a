"""The GAN's data: MNIST, Fashion-MNIST or the synthetic digits, read by the mnist project's own classes (the same
IDX reader and checksums), served as N×1×28×28 images in [-1, 1] with their labels; and the judge that measures
what the generator makes of them.

Splits are the mnist project's: train, val carved from train with a fixed seed (the per-epoch `val/fd`), test.
Each held-out split also gets a `reference`: as many training images as it has, drawn with a fixed seed, for
the floor (real training images against the real held-out ones) and the memorisation check.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from projects.gan.judge import Judge, load_judge
from projects.mnist.data import DigitImages, FashionMnist, Mnist, SyntheticDigits
from shared import checks
from shared.data import ProjectData, tensor_loader
from shared.errors import UsageError

DATASETS: dict[str, type[DigitImages]] = {"mnist": Mnist, "fashion_mnist": FashionMnist, "synthetic": SyntheticDigits}


def to_gan_range(images: np.ndarray) -> torch.Tensor:
    """uint8 N×28×28 images to the generator's range: N×1×28×28 floats in [-1, 1]."""
    return torch.from_numpy(images.astype(np.float32) / 127.5 - 1.0).unsqueeze(1)


class GanImages(ProjectData):
    """Real images for the discriminator, and the judge and references for measuring the generator."""

    def __init__(
        self,
        mirror_dir: str | None = None,
        cache_dir: str = "~/.cache/ml-portfolio",
        dataset: str = "mnist",
        judge: str | None = None,
        runs_dir: str = "runs",
        val_size: int | float = 5000,
        split_seed: int = 0,
        batch_size: int = 64,
        eval_batch_size: int = 1000,
        measure_samples: int = 5000,
        options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(mirror_dir, cache_dir)
        if dataset not in DATASETS:
            raise UsageError(f"data.dataset={dataset!r} is not a dataset here.", f"use one of: {', '.join(DATASETS)}.")
        self.dataset, self.judge_dir, self.runs_dir = dataset, judge, runs_dir
        self.batch_size = checks.whole(batch_size, "data.batch_size", example=64)
        self.eval_batch_size = checks.whole(eval_batch_size, "data.eval_batch_size", example=1000)
        self.measure_samples = checks.whole(measure_samples, "data.measure_samples", minimum=10, example=5000)
        self.split_seed = checks.seed(split_seed, "data.split_seed")
        # The source's own settings (sizes of the synthetic set); no shifts or augmentation: the GAN learns the data.
        self.source = DATASETS[dataset](
            mirror_dir=mirror_dir,
            cache_dir=cache_dir,
            val_size=val_size,
            split_seed=split_seed,
            max_shift=0,
            augment=None,
            **(options or {}),
        )
        self.class_names = self.source.class_names
        self._tensors: dict[str, torch.Tensor] = {}

    def prepare(self) -> None:
        self.source.prepare()
        self._tensors = {}

    def inputs(self, split: str) -> torch.Tensor:
        if split not in self._tensors:
            self._tensors[split] = to_gan_range(self.source.images(split))
        return self._tensors[split]

    def targets(self, split: str) -> np.ndarray:
        return self.source.targets(split)

    def images(self, split: str) -> np.ndarray:
        """The uint8 N×28×28 images of `split`, as read."""
        return self.source.images(split)

    def reference(self, split: str) -> torch.Tensor:
        """As many training images as `split` holds (all of train if it has fewer), drawn with a fixed seed: the
        real side of the floor, and the training images a sample is compared with for memorisation."""
        train, count = self.inputs("train"), len(self.targets(split))
        order = np.random.default_rng(self.split_seed + 1).permutation(len(train))[: min(count, len(train))]
        return train[torch.from_numpy(np.sort(order))]

    @cached_property
    def judge(self) -> Judge:
        """The judge run named by `judge` (the project resolves it before the run's config is saved)."""
        if not self.judge_dir:
            raise UsageError("no judge run was given to the data.", "pass judge=<an mnist run folder>.")
        return load_judge(self.judge_dir, self.runs_dir, self.dataset)

    def loader(self, inputs: torch.Tensor, targets: np.ndarray | None = None, train: bool = False) -> DataLoader:
        tensors = (inputs,) if targets is None else (inputs, torch.as_tensor(targets, dtype=torch.long))
        return tensor_loader(
            *tensors,
            batch_size=self.batch_size if train else self.eval_batch_size,
            shuffle=train,
            drop_last=train and len(inputs) > self.batch_size,
        )

    def describe(self) -> dict[str, Any]:
        return {**self.source.describe(), "judge": str(self.judge_dir), "judge test acc": self.judge.test_accuracy}
