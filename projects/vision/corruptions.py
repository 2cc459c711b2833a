"""Common corruptions of the test images, CIFAR-10-C style (Hendrycks & Dietterich 2019), made on the fly.

Five of the paper's fifteen, one per family: `gaussian_noise` (noise), `defocus_blur` (blur), `contrast` and
`jpeg` (digital), `pixelate`. Each has five severities; the numbers are the paper's CIFAR-scale ones (its noise
deviations, disk radii, contrast factors, JPEG qualities and pixelation factors), applied to whole uint8 batches
N×3×H×W with torch, seeded, so a run's `test/corruption_acc` is the same on every evaluation.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from shared.errors import UsageError

SEVERITIES = 5
CHUNK = 1000  # images corrupted at a time: float copies of a whole test set of large photos would not fit


def gaussian_noise(pixels: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Additive white noise, as from a camera sensor in low light."""
    deviation = (0.04, 0.06, 0.08, 0.09, 0.10)[severity - 1]
    noise = torch.randn(pixels.shape, generator=generator).to(pixels.device)
    return pixels + deviation * noise


def defocus_blur(pixels: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """A lens out of focus: the image seen through a disk (its edge softened by a small Gaussian)."""
    radius, softening = ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1.0, 0.2), (1.5, 0.1))[severity - 1]
    kernel = _disk_kernel(radius, softening).to(pixels.device)
    channels, half = pixels.shape[1], kernel.shape[-1] // 2
    padded = F.pad(pixels, (half, half, half, half), mode="reflect")
    return F.conv2d(padded, kernel.expand(channels, 1, -1, -1), groups=channels)


def contrast(pixels: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Washed-out contrast: every pixel pulled towards the image's mean."""
    factor = (0.75, 0.5, 0.4, 0.3, 0.15)[severity - 1]
    mean = pixels.mean(dim=(1, 2, 3), keepdim=True)
    return (pixels - mean) * factor + mean


def jpeg(pixels: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Lossy JPEG compression at a low quality: blocks and ringing."""
    quality = (80, 65, 58, 50, 40)[severity - 1]
    decoded = [_jpeg_round_trip(image, quality) for image in _to_uint8(pixels).permute(0, 2, 3, 1).cpu().numpy()]
    return torch.from_numpy(np.stack(decoded)).permute(0, 3, 1, 2).to(pixels.device).float() / 255.0


def _jpeg_round_trip(image: np.ndarray, quality: int) -> np.ndarray:
    """One H×W×3 uint8 image saved as a JPEG of `quality` in memory (Pillow, as the paper did) and read back."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def pixelate(pixels: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """A low-resolution copy blown up again: each block of pixels becomes one colour."""
    factor = (0.95, 0.9, 0.85, 0.75, 0.65)[severity - 1]
    height, width = pixels.shape[-2:]
    small = F.interpolate(pixels, size=(max(1, int(height * factor)), max(1, int(width * factor))), mode="area")
    return F.interpolate(small, size=(height, width), mode="nearest")


CORRUPTIONS: dict[str, Callable[[torch.Tensor, int, torch.Generator], torch.Tensor]] = {
    "gaussian_noise": gaussian_noise,
    "defocus_blur": defocus_blur,
    "contrast": contrast,
    "jpeg": jpeg,
    "pixelate": pixelate,
}


def check_corruptions(names: list[str] | tuple[str, ...], severity: int) -> tuple[tuple[str, ...], int]:
    """The chosen corruptions and severity, or a `UsageError` naming the known ones and the range."""
    unknown = [name for name in names if name not in CORRUPTIONS]
    if unknown:
        raise UsageError(
            f"data.corruptions names {', '.join(map(repr, unknown))}, which this suite does not have.",
            f"choose among {', '.join(CORRUPTIONS)} (data.corruptions=[] turns the suite off).",
        )
    if isinstance(severity, bool) or not isinstance(severity, int) or not 1 <= severity <= SEVERITIES:
        raise UsageError(
            f"data.corruption_severity={severity!r} is not a severity.",
            f"use a whole number from 1 (mild) to {SEVERITIES} (harsh), e.g. data.corruption_severity=3.",
        )
    return tuple(names), severity


def corrupt(images: torch.Tensor, name: str, severity: int, seed: int = 0) -> torch.Tensor:
    """`images` (uint8 N×3×H×W) under the corruption `name` at `severity`, as uint8 again (rounded, clipped),
    a thousand at a time; the same seed gives the same images."""
    function = CORRUPTIONS[name]
    generator = torch.Generator().manual_seed(seed + list(CORRUPTIONS).index(name))
    chunks = [_to_uint8(function(chunk.float() / 255.0, severity, generator)) for chunk in images.split(CHUNK)]
    return torch.cat(chunks) if chunks else images.clone()


def _to_uint8(pixels: torch.Tensor) -> torch.Tensor:
    return (pixels.clamp(0, 1) * 255).round().to(torch.uint8)


def _disk_kernel(radius: float, softening: float) -> torch.Tensor:
    """A normalised disk of `radius` pixels, convolved with a 3×3 Gaussian of deviation `softening`."""
    reach = max(1, math.ceil(radius))
    steps = torch.arange(-reach, reach + 1, dtype=torch.float32)
    rows, columns = torch.meshgrid(steps, steps, indexing="ij")
    disk = (rows**2 + columns**2 <= radius**2).float()
    gaussian_1d = torch.exp(-(torch.arange(-1, 2, dtype=torch.float32) ** 2) / (2 * softening**2))
    gaussian = torch.outer(gaussian_1d, gaussian_1d)
    kernel = F.conv2d(disk[None, None], gaussian[None, None].flip(-1, -2), padding=2)[0, 0]
    return (kernel / kernel.sum())[None, None]
