"""Random crops, flips, cutout and Gaussian noise of whole training batches, on the batch's device.

The data's loaders only slice uint8 tensors; the model augments each training batch here, before it converts
it to float. On a CPU the cost must stay small beside the training step, so nothing loops over images: a
reflect-padded random crop is a shift of row and column indices (reflected at the borders, so no padded copy is
made), a flip reverses an image's column indices, and both are two `gather`s of uint8; cutout is one broadcast
mask. The random draws (a few numbers per image) come from a generator the augmentation owns, on the CPU: the same
seed gives the same batches on any device, and its state travels in the model's checkpoint.

`flip: alternate` is airbench's alternating flip: each image is mirrored in every other epoch, on a side that is
random per image but fixed (the parity of its pixel sum, salted by the seed), so two successive epochs always show
both sides of an image, where independent flips show a quarter of the images one side twice.

`noise` is Gaussian data augmentation against the corruption suite's `gaussian_noise`: each image gets noise of a
standard deviation drawn uniformly from [0, noise] (in [0, 1] pixel units, CIFAR-10-C's unit), so the network
sees clean and noisy images alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from shared.errors import UsageError

OPTIONS = ("crop_padding", "flip", "cutout", "noise", "seed")
FLIPS = (True, False, "alternate")


class BatchAugment:
    """Per image: a crop of the image reflect-padded by `crop_padding` (a shift of up to that many pixels each
    way, as in airbench's translate), a horizontal flip (half the images, or `alternate`), and a square of side
    `cutout` (0 = off), wholly inside the image, set to `fill`: a colour in [0, 1] per channel (the model passes
    the data's mean colour, which normalises to 0); then Gaussian noise of a standard deviation up to `noise`
    (0 = off)."""

    def __init__(
        self,
        crop_padding: int = 2,
        flip: bool | str = True,
        cutout: int = 0,
        noise: float = 0.0,
        seed: int | None = None,
        fill: Sequence[float] = (0.0, 0.0, 0.0),
    ) -> None:
        if crop_padding < 0 or cutout < 0:
            raise UsageError(
                f"augment.crop_padding={crop_padding} and augment.cutout={cutout} must not be negative.",
                "use 0 to turn either off.",
            )
        if not 0 <= noise <= 1:
            raise UsageError(f"augment.noise={noise} is not a standard deviation in [0, 1].", "e.g. augment.noise=0.1.")
        if flip not in FLIPS:
            raise UsageError(f"augment.flip={flip!r} is not one of true, false, alternate.", "e.g. augment.flip=true.")
        self.crop_padding, self.flip, self.cutout, self.noise = int(crop_padding), flip, int(cutout), float(noise)
        self.fill = torch.tensor(fill, dtype=torch.float32).view(1, -1, 1, 1)
        self.generator = torch.Generator()
        # The core seeds torch's global generator, so a run's augmentation is reproducible without a seed too.
        self.generator.manual_seed(int(torch.randint(2**62, ())) if seed is None else int(seed))
        self.salt = int(torch.randint(2, (), generator=self.generator))

    @classmethod
    def from_config(cls, options: Mapping[str, Any] | None, **extra: Any) -> BatchAugment | None:
        """The augmentation an `augment` config asks for, or None when it asks for nothing (null, or all off)."""
        if options is None:
            return None
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise UsageError(f"unknown augment option(s) {', '.join(unknown)}.", f"use some of: {', '.join(OPTIONS)}.")
        augment = cls(**options, **extra)
        return augment if augment.crop_padding or augment.flip or augment.cutout or augment.noise else None

    def __call__(self, images: torch.Tensor, epoch: int = 0) -> torch.Tensor:
        """N×C×H×W images (uint8, or float in [0, 1]) → the same shape and dtype, moved about per image."""
        count, channels, height, width = images.shape
        if self.crop_padding >= min(height, width):
            raise UsageError(
                f"augment.crop_padding={self.crop_padding} does not fit {height}×{width} images.",
                f"use less than {min(height, width)}.",
            )
        rows = torch.arange(height).expand(count, height)
        columns = torch.arange(width).expand(count, width)
        if self.crop_padding:
            shifts = torch.randint(-self.crop_padding, self.crop_padding + 1, (count, 2), generator=self.generator)
            rows, columns = _reflect(rows + shifts[:, :1], height), _reflect(columns + shifts[:, 1:], width)
        if self.flip:
            flipped = self._flipped(images, epoch)
            columns = torch.where(flipped[:, None], columns.flip(1), columns)
        if self.crop_padding:
            index = rows.to(images.device)[:, None, :, None].expand(count, channels, height, width)
            images = images.gather(2, index)
        if self.crop_padding or self.flip:
            index = columns.to(images.device)[:, None, None, :].expand(count, channels, height, width)
            images = images.gather(3, index)
        if self.cutout:
            fill = (self.fill * 255).round() if images.dtype == torch.uint8 else self.fill
            mask = self._cutout_mask(count, height, width).to(images.device)
            images = torch.where(mask, fill.to(images), images)
        if self.noise:
            images = self._noisy(images)
        return images

    def _noisy(self, images: torch.Tensor) -> torch.Tensor:
        """Each image plus Gaussian noise of its own standard deviation in [0, noise], clipped, in its own dtype."""
        count = len(images)
        deviations = torch.rand(count, 1, 1, 1, generator=self.generator) * self.noise
        noise = torch.randn(images.shape, generator=self.generator) * deviations
        scale = 255.0 if images.dtype == torch.uint8 else 1.0
        noisy = images.float() + noise.to(images.device) * scale
        return noisy.round().clamp(0, 255).to(torch.uint8) if images.dtype == torch.uint8 else noisy.clamp(0, 1)

    def _flipped(self, images: torch.Tensor, epoch: int) -> torch.Tensor:
        """Which images to mirror (a CPU bool per image)."""
        if self.flip != "alternate":
            return torch.rand(len(images), generator=self.generator) < 0.5
        levels = images if images.dtype == torch.uint8 else (images * 255).round()
        side = levels.flatten(1).sum(1, dtype=torch.int64).cpu() + self.salt
        return (side + epoch) % 2 == 1

    def _cutout_mask(self, count: int, height: int, width: int) -> torch.Tensor:
        """N×1×H×W, True on each image's square."""
        size = min(self.cutout, height, width)
        top = torch.randint(0, height - size + 1, (count, 1), generator=self.generator)
        left = torch.randint(0, width - size + 1, (count, 1), generator=self.generator)
        inside_rows = (torch.arange(height) >= top) & (torch.arange(height) < top + size)
        inside_columns = (torch.arange(width) >= left) & (torch.arange(width) < left + size)
        return inside_rows[:, None, :, None] & inside_columns[:, None, None, :]


def _reflect(positions: torch.Tensor, size: int) -> torch.Tensor:
    """Indices beyond the edges reflected back inside (-1 → 1, size → size - 2), as `F.pad(mode="reflect")`."""
    return (size - 1) - ((size - 1) - positions.abs()).abs()
