"""Out-of-domain copies of MNIST digits: what digits from other sources look like before `predict` converts them.

Each degradation maps N×28×28 images in [0, 1] to degraded N×28×28 images in [0, 1], deterministically for a
given seed (every set draws from its own generator, so one set's result does not depend on the others).
`scripts/robustness.py` scores a run on each; the training augmentation (`projects.mnist.augment`) is the
on-the-fly, random counterpart, and is tuned on the validation split, never on these test copies.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image
from scipy import ndimage

from projects.mnist.data import IMAGE_SIZE

Degradation = Callable[[np.ndarray, np.random.Generator], np.ndarray]
CENTRE = (IMAGE_SIZE - 1) / 2


def low_resolution(images: np.ndarray, rng: np.random.Generator, size: int = 8) -> np.ndarray:
    """Down-sampled to `size`×`size` (area average) and back up (bilinear): a thumbnail or a far-away photo."""
    out = np.empty_like(images, dtype=np.float32)
    for index, image in enumerate(images):
        small = Image.fromarray(image.astype(np.float32), mode="F").resize((size, size), Image.Resampling.BOX)
        out[index] = np.asarray(small.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR))
    return np.clip(out, 0.0, 1.0)


def blur(images: np.ndarray, rng: np.random.Generator, sigma: float = 1.5) -> np.ndarray:
    """Gaussian blur: an out-of-focus camera."""
    return np.clip(ndimage.gaussian_filter(images.astype(np.float32), (0, sigma, sigma)), 0.0, 1.0)


def grey_background(images: np.ndarray, rng: np.random.Generator, low: float = 0.3, high: float = 0.6) -> np.ndarray:
    """Values squeezed into [low, high]: a light digit on grey paper, or a washed-out scan."""
    return (low + (high - low) * images).astype(np.float32)


def faint(images: np.ndarray, rng: np.random.Generator, gain: float = 0.3) -> np.ndarray:
    """Values times `gain`: a faint pencil digit on black."""
    return (gain * images).astype(np.float32)


def thick(images: np.ndarray, rng: np.random.Generator, size: int = 3) -> np.ndarray:
    """Grey dilation with a `size`×`size` square: a marker instead of a pen."""
    return ndimage.grey_dilation(images.astype(np.float32), size=(1, size, size))


def thin(images: np.ndarray, rng: np.random.Generator, size: int = 2) -> np.ndarray:
    """Grey erosion with a `size`×`size` square: a fine pen."""
    return ndimage.grey_erosion(images.astype(np.float32), size=(1, size, size))


def offset(images: np.ndarray, rng: np.random.Generator, low: float = 4.0, high: float = 6.0) -> np.ndarray:
    """Each digit moved `low`..`high` pixels in a random direction (whole pixels, black fills in): not centred."""
    out = np.zeros_like(images, dtype=np.float32)
    radius, angle = rng.uniform(low, high, len(images)), rng.uniform(0, 2 * np.pi, len(images))
    rows, columns = np.rint(radius * np.sin(angle)).astype(int), np.rint(radius * np.cos(angle)).astype(int)
    for index, (dy, dx) in enumerate(zip(rows, columns, strict=True)):
        source = images[index, max(0, -dy) : IMAGE_SIZE - max(0, dy), max(0, -dx) : IMAGE_SIZE - max(0, dx)]
        out[index, max(0, dy) : max(0, dy) + source.shape[0], max(0, dx) : max(0, dx) + source.shape[1]] = source
    return out


def rescale(images: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Each image zoomed by its scale about the frame's centre (bilinear; black outside the original)."""
    out = np.empty_like(images, dtype=np.float32)
    for index, (image, scale) in enumerate(zip(images, scales, strict=True)):
        shift = CENTRE - CENTRE / scale
        out[index] = ndimage.affine_transform(image.astype(np.float32), np.full(2, 1 / scale), offset=shift, order=1)
    return np.clip(out, 0.0, 1.0)


def shrunk(images: np.ndarray, rng: np.random.Generator, low: float = 0.5, high: float = 0.7) -> np.ndarray:
    """The digit 0.5-0.7 times its size, in the middle of the frame: a small digit on a big page."""
    return rescale(images, rng.uniform(low, high, len(images)))


def enlarged(images: np.ndarray, rng: np.random.Generator, low: float = 1.25, high: float = 1.4) -> np.ndarray:
    """The digit 1.25-1.4 times its size, so that it fills the 28×28 frame: a tight crop."""
    return rescale(images, rng.uniform(low, high, len(images)))


DEGRADATIONS: dict[str, Degradation] = {
    "low_res_8x8": low_resolution,
    "blur": blur,
    "grey_background": grey_background,
    "faint": faint,
    "thick": thick,
    "thin": thin,
    "offset": offset,
    "shrunk": shrunk,
    "enlarged": enlarged,
}


def degrade(images: np.ndarray, name: str, seed: int = 0) -> np.ndarray:
    """The degraded copy `name` of N×28×28 images (uint8, or floats in [0, 1]), as floats in [0, 1]."""
    if name not in DEGRADATIONS:
        raise KeyError(f"no degradation '{name}'; known: {', '.join(DEGRADATIONS)}")
    floats = images.astype(np.float32) / (255.0 if images.dtype == np.uint8 else 1.0)
    rng = np.random.default_rng([seed, list(DEGRADATIONS).index(name)])
    return DEGRADATIONS[name](floats, rng)
