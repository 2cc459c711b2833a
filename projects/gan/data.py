"""The GAN's data: the images its judge (an `mnist` run) was trained on, read through the core's run object (the
mnist project's own reader and checksums, never imported here), served as N×1×28×28 images in [-1, 1] with their
labels; and the judge that measures what the generator makes of them.

Splits are the judge data's, with this config's own `val_size` and `split_seed`: train, val carved from train with
a fixed seed (the per-epoch `val/fd`), test. Each held-out split also gets a `reference`: as many training images
as it has, drawn with a fixed seed, for the floor (real training images against the real held-out ones) and the
memorisation check.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from projects.gan.judge import Judge, load_judge
from shared import checks
from shared.data import ImageSplits, ProjectData, tensor_loader
from shared.errors import UsageError

DATASETS = ("mnist", "fashion_mnist", "synthetic")  # the judge's data configs of the same names


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
        # Patches of the judge's data config: this GAN's own split, and the source's own settings (the synthetic
        # set's sizes). The GAN reads the images as they are, so the judge's augmentation never applies.
        val_size = checks.share_or_count(val_size, "data.val_size", 5000)  # val/fd needs one: 0 is refused here
        self.source_patches = {"val_size": val_size, "split_seed": split_seed, **(options or {})}
        self._tensors: dict[str, torch.Tensor] = {}

    @property
    def source(self) -> ImageSplits:
        """The judge run's data, rebuilt with `source_patches` (its images, labels and class names)."""
        return self.judge.data

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.source.class_names

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
        paths = {"runs_dir": self.runs_dir, "mirror_dir": self.mirror_dir, "cache_dir": self.cache_dir}
        return load_judge(self.judge_dir, paths, self.dataset, self.source_patches)

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
