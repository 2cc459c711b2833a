"""On-the-fly degradations of training batches: digits from other sources, blurred, thick, thin or resized.

`predict` stretches every image's contrast and re-fits a digit that is not sized and centred like MNIST's
(`projects.mnist.predict.to_mnist`); what is left for the model to cope with is blur, a low resolution, the
stroke's thickness, a size a little off 20 px and a contrast not quite full. A share of each training batch gets
a random mix of those. On a CPU the cost must stay small beside the training step, so each linear degradation
(zoom, blur, down- and up-sampling) is one separable matrix per image, applied as `M @ image @ M.T` in a batched
matrix product, and dilation and erosion are maxima of shifted copies. Evaluation batches are never augmented.
The strengths were chosen on the validation split (`scripts/robustness.py --split val`), never on the test set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from functools import cache
from typing import Any

import torch
import torch.nn.functional as F

from shared.errors import UsageError

SIZE = 28
CENTRE = (SIZE - 1) / 2


@dataclass(frozen=True)
class Augmentation:
    """How a training batch is degraded; each share or range is per image (see configs/mnist/data/mnist.yaml)."""

    probability: float = 0.3  # share of the images degraded at all; the others stay clean
    blur: float = 0.35  # share of the degraded given a Gaussian blur ...
    sigma: tuple[float, float] = (0.6, 2.0)  # ... of a sigma in this range
    low_res: float = 0.35  # share of the degraded (not blurred) down-sampled and back up ...
    low_res_sizes: tuple[int, int] = (7, 14)  # ... to a side in this range
    thicker: float = 0.25  # share of the degraded dilated (3×3 or 2×2, half each)
    thinner: float = 0.25  # share of the degraded eroded (2×2)
    scale: tuple[float, float] = (0.85, 1.15)  # zoom about the centre: a digit re-fitted from a blurred box
    contrast: tuple[float, float] = (0.85, 1.0)  # gain after the contrast is stretched to full

    @classmethod
    def from_config(cls, options: Mapping[str, Any] | None) -> Augmentation | None:
        """The augmentation a data config asks for (a mapping of these fields), or None when it is off."""
        if not options:
            return None
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise UsageError(
                f"unknown augmentation option(s) {', '.join(unknown)}.", f"use some of: {', '.join(sorted(known))}."
            )
        values = {
            key: tuple(value) if isinstance(value, Sequence) and not isinstance(value, str) else value
            for key, value in options.items()
        }
        for key in ("probability", "blur", "low_res", "thicker", "thinner"):
            if key in values:
                _share(values[key], key)
        limits = {"sigma": (0.0, 10.0), "low_res_sizes": (2, SIZE), "scale": (0.0, 4.0), "contrast": (0.0, 1.0)}
        for key, (low, high) in limits.items():
            if key in values:
                _range(values[key], key, low, high, whole=key == "low_res_sizes")
        if "low_res_sizes" in values:
            values["low_res_sizes"] = tuple(int(side) for side in values["low_res_sizes"])
        return cls(**values)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """N×1×28×28 images in [0, 1] → the same, a share of them degraded (random draws from torch's generator)."""
        chosen = (torch.rand(images.shape[0]) < self.probability).nonzero().squeeze(1)
        if len(chosen) == 0:
            return images
        return images.index_copy(0, chosen, self._degrade(images.index_select(0, chosen)))

    def _degrade(self, images: torch.Tensor) -> torch.Tensor:
        count = images.shape[0]
        planes = separable(images[:, 0], zoom_matrices(_uniform(count, *self.scale)))
        kind = torch.rand(count)
        planes = _where(kind < self.thicker / 2, dilate(planes, 3), planes)
        planes = _where((kind >= self.thicker / 2) & (kind < self.thicker), dilate(planes, 2), planes)
        planes = _where((kind >= self.thicker) & (kind < self.thicker + self.thinner), erode2(planes), planes)
        which = torch.rand(count)
        matrices = torch.eye(SIZE).expand(count, SIZE, SIZE).clone()
        blurred = which < self.blur
        low_res = (which >= self.blur) & (which < self.blur + self.low_res)
        if blurred.any():
            matrices[blurred] = blur_matrices(_uniform(int(blurred.sum()), *self.sigma))
        if low_res.any():
            sides = torch.randint(self.low_res_sizes[0], self.low_res_sizes[1] + 1, (int(low_res.sum()),))
            matrices[low_res] = thumbnail_matrices()[sides]
        planes = separable(planes, matrices).clamp(0.0, 1.0)
        peak = planes.amax(dim=(1, 2), keepdim=True).clamp_min(1e-3)  # stretched to full, as predict does
        return (planes / peak * _uniform(count, *self.contrast).view(-1, 1, 1)).unsqueeze(1)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def _share(value: Any, key: str) -> None:
    """A share of images, 0 to 1 (both allowed: off, every one)."""
    if not _is_number(value) or not 0 <= value <= 1:
        raise UsageError(
            f"data.augment.{key}={value!r} is not a share from 0 to 1.", f"set it to one, e.g. data.augment.{key}=0.3."
        )


def _range(value: Any, key: str, low: float, high: float, whole: bool) -> None:
    """A [least, most] pair within (`low`, `high`] (whole numbers from `low` when `whole`), least first."""
    pair = value if isinstance(value, tuple) and len(value) == 2 else None
    fits = pair is not None and all(
        _is_number(item) and (int(item) == item and low <= item <= high if whole else low < item <= high)
        for item in pair
    )
    if not fits or pair[0] > pair[1]:  # type: ignore[index]
        default = getattr(Augmentation, key)
        raise UsageError(
            f"data.augment.{key}={list(value) if isinstance(value, tuple) else value!r} is not a [least, most] pair "
            f"{'of whole numbers ' if whole else ''}within {'[' if whole else '('}{low:g}, {high:g}], least first.",
            f"set it like data.augment.{key}=[{default[0]:g},{default[1]:g}].",
        )


def _uniform(count: int, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(count)


def _where(mask: torch.Tensor, changed: torch.Tensor, planes: torch.Tensor) -> torch.Tensor:
    return torch.where(mask.view(-1, 1, 1), changed, planes)


def separable(planes: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """Each N×28×28 plane through its own separable linear map: `M @ plane @ M.T`."""
    return matrices @ planes @ matrices.transpose(1, 2)


def _hat(positions: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear weights: row r of the result samples the source at `positions[..., r]` (0 outside the source)."""
    return (1 - (positions[..., None] - torch.arange(size, dtype=positions.dtype)).abs()).clamp_min(0.0)


def zoom_matrices(scales: torch.Tensor) -> torch.Tensor:
    """N×28×28 maps that zoom by each scale about the frame's centre (bilinear, black beyond the edges)."""
    steps = torch.arange(SIZE, dtype=torch.float32)
    return _hat((steps - CENTRE) / scales[:, None] + CENTRE, SIZE)


def blur_matrices(sigmas: torch.Tensor) -> torch.Tensor:
    """N×28×28 Gaussian blurs, one sigma each (black beyond the edges, so ink leaks out as it would on paper)."""
    offsets = torch.arange(SIZE, dtype=torch.float32)
    kernel = torch.exp(-((offsets[:, None] - offsets[None]) ** 2)[None] / (2 * sigmas.view(-1, 1, 1) ** 2))
    reach = torch.arange(-SIZE + 1, SIZE, dtype=torch.float32)
    total = torch.exp(-(reach[None] ** 2) / (2 * sigmas[:, None] ** 2)).sum(dim=1)
    return kernel / total.view(-1, 1, 1)


@cache
def thumbnail_matrices() -> torch.Tensor:
    """29×28×28: entry `side` down-samples to side×side (area average) and back up (bilinear), as a thumbnail."""
    table = torch.zeros(SIZE + 1, SIZE, SIZE)
    steps = torch.arange(SIZE, dtype=torch.float64)
    for side in range(1, SIZE + 1):
        width = SIZE / side  # each small pixel averages this many source pixels (with fractions at its edges)
        starts = torch.arange(side, dtype=torch.float64)[:, None] * width
        overlap = (torch.minimum(starts + width, steps + 1) - torch.maximum(starts, steps)).clamp_min(0.0)
        down = overlap / width
        up = _hat(((steps + 0.5) * side / SIZE - 0.5).clamp(0, side - 1), side)
        table[side] = (up @ down).float()
    return table


def dilate(planes: torch.Tensor, size: int) -> torch.Tensor:
    """Grey dilation with a size×size square (2 or 3): the maximum of shifted copies, rows then columns."""
    before = (size - 1) // 2  # as scipy.ndimage.grey_dilation places an even square
    padded = F.pad(planes, (before, size - 1 - before, before, size - 1 - before))
    rows = torch.stack([padded[:, shift : shift + SIZE, :] for shift in range(size)]).amax(dim=0)
    return torch.stack([rows[:, :, shift : shift + SIZE] for shift in range(size)]).amax(dim=0)


def erode2(planes: torch.Tensor) -> torch.Tensor:
    """Grey erosion with a 2×2 square: strokes a pixel thinner (black beyond the frame)."""
    padded = F.pad(planes, (1, 0, 1, 0))
    rows = torch.minimum(padded[:, :-1, :], padded[:, 1:, :])
    return torch.minimum(rows[:, :, :-1], rows[:, :, 1:])


def thumbnail(images: torch.Tensor, side: int) -> torch.Tensor:
    """N×1×28×28 images down-sampled to side×side and back up: a low-resolution source."""
    matrices = thumbnail_matrices()[side].expand(images.shape[0], SIZE, SIZE)
    return separable(images[:, 0], matrices).clamp(0.0, 1.0).unsqueeze(1)


def gaussian_blur(images: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """N×1×28×28 images, each blurred with its own sigma."""
    return separable(images[:, 0], blur_matrices(sigmas)).unsqueeze(1)


def zoom(images: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """N×1×28×28 images, each zoomed by its scale about the centre."""
    return separable(images[:, 0], zoom_matrices(scales)).unsqueeze(1)
