"""The GAN's pictures: image mosaics (the per-epoch grid, the class-per-row grid, latent interpolations), written
as plain PNGs (one pixel per pixel, scaled up) so that a grid of a hundred digits stays sharp and small."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from shared.io import atomic_path

SCALE = 2  # each image pixel as a 2×2 block
GAP = 2  # pixels between tiles


def mosaic(images: np.ndarray, columns: int) -> np.ndarray:
    """N×H×W images in [0, 1] as one uint8 H'×W' picture, `columns` per row, with a grey gap between tiles."""
    count, height, width = images.shape
    rows = max(1, -(-count // columns))
    canvas = np.full((rows * (height + GAP) + GAP, columns * (width + GAP) + GAP), 96, np.uint8)
    for index, image in enumerate(images):
        top, left = GAP + (index // columns) * (height + GAP), GAP + (index % columns) * (width + GAP)
        canvas[top : top + height, left : left + width] = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    return canvas.repeat(SCALE, axis=0).repeat(SCALE, axis=1)


def save_png(pixels: np.ndarray, path: Path) -> Path:
    """A uint8 grey array as a PNG, atomically."""
    with atomic_path(path) as temporary:
        Image.fromarray(pixels).save(temporary, format="PNG")
    return path


def save_mosaic(images: np.ndarray, path: Path, columns: int) -> Path:
    """`mosaic` written to `path`."""
    return save_png(mosaic(images, columns), path)


def interpolation_latents(start: torch.Tensor, end: torch.Tensor, steps: int) -> torch.Tensor:
    """`steps` latents on the great circle from each row of `start` to the same row of `end` (slerp, which keeps
    the norm a Gaussian latent typically has; a straight line passes through unlikely short latents)."""
    fractions = torch.linspace(0, 1, steps)[None, :, None]
    start, end = start[:, None, :], end[:, None, :]
    cosine = (start * end).sum(-1, keepdim=True) / (start.norm(dim=-1, keepdim=True) * end.norm(dim=-1, keepdim=True))
    angle = torch.arccos(cosine.clamp(-1 + 1e-7, 1 - 1e-7))
    path = (torch.sin((1 - fractions) * angle) * start + torch.sin(fractions * angle) * end) / torch.sin(angle)
    return path.reshape(-1, start.shape[-1])
