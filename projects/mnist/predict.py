"""Reading `predict` inputs the way MNIST expects them: 28×28 grey, light digit on dark, centred.

Accepted inputs: a PNG/JPEG file, a folder of them, or a `.npy` array of N×28×28 (or N×H×W)
images. Images of other sizes or in colour are converted as the MNIST authors prepared theirs:
grey, the digit's bounding box scaled to fit 20×20, then centred by its centre of mass in 28×28.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from projects.mnist.data import IMAGE_SIZE, normalise
from shared.errors import DataError, UsageError
from shared.project import PredictItem

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
DIGIT_BOX = 20


def to_mnist(grey: np.ndarray) -> np.ndarray:
    """A grey image (H×W, values in [0, 1]) to a 28×28 MNIST-style digit in [0, 1]."""
    if grey.ndim != 2 or min(grey.shape) == 0:
        raise ValueError(f"expected a 2-D image, got shape {grey.shape}")
    if np.median(grey) > 0.5:  # dark digit on light paper: invert to MNIST's light on dark
        grey = 1.0 - grey
    if grey.shape == (IMAGE_SIZE, IMAGE_SIZE):
        return grey.astype(np.float32)
    ink = grey > max(0.1, 0.2 * float(grey.max()))
    if not ink.any():
        return np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.float32)
    rows, columns = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    digit = grey[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1]
    scale = DIGIT_BOX / max(digit.shape)
    height, width = max(1, round(digit.shape[0] * scale)), max(1, round(digit.shape[1] * scale))
    resized = (
        np.asarray(
            Image.fromarray((digit * 255).astype(np.uint8)).resize((width, height), Image.Resampling.LANCZOS),
            dtype=np.float32,
        )
        / 255.0
    )
    canvas = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.float32)
    total = resized.sum()
    centre_row = (resized.sum(axis=1) @ np.arange(height)) / total if total else height / 2
    centre_column = (resized.sum(axis=0) @ np.arange(width)) / total if total else width / 2
    top = int(np.clip(round(IMAGE_SIZE / 2 - centre_row), 0, IMAGE_SIZE - height))
    left = int(np.clip(round(IMAGE_SIZE / 2 - centre_column), 0, IMAGE_SIZE - width))
    canvas[top : top + height, left : left + width] = resized
    return canvas


def read_image(path: Path) -> np.ndarray:
    """An image file as a 28×28 MNIST-style array."""
    with Image.open(path) as image:
        grey = np.asarray(ImageOps.grayscale(image), dtype=np.float32) / 255.0
    return to_mnist(grey)


def read_inputs(source: str) -> list[PredictItem]:
    """Items for an image file, a folder of images, or a `.npy` array."""
    path = Path(source).expanduser()
    if not path.exists():
        raise UsageError(f"input {path} does not exist.", "pass input=<image file, folder of images, or .npy array>.")
    if path.is_dir():
        files = sorted(file for file in path.iterdir() if file.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise UsageError(
                f"{path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}).", "point input= at images."
            )
        return [_image_item(file, file.name) for file in files]
    if path.suffix.lower() == ".npy":
        return _array_items(path)
    return [_image_item(path, path.name)]


def _image_item(path: Path, name: str) -> PredictItem:
    try:
        return PredictItem(name, read_image(path))
    except (OSError, UnidentifiedImageError, ValueError) as error:
        return PredictItem(name, error=f"{type(error).__name__}: {error}")


def _array_items(path: Path) -> list[PredictItem]:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise DataError(f"{path} is not a readable .npy array ({error}).", "save it with numpy.save.") from error
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or not np.issubdtype(array.dtype, np.number):
        raise DataError(f"{path} holds a {array.dtype} array of shape {array.shape}.", "save N×28×28 grey images.")
    scale = 255.0 if array.max(initial=0) > 1.0 else 1.0
    items = []
    for index, image in enumerate(array):
        try:
            items.append(PredictItem(str(index), to_mnist(image.astype(np.float32) / scale)))
        except ValueError as error:
            items.append(PredictItem(str(index), error=str(error)))
    return items


def stack_inputs(values: list[np.ndarray]) -> torch.Tensor:
    """28×28 arrays in [0, 1] to the normalised N×1×28×28 tensor the models take."""
    return normalise(np.stack(values))


def prediction_columns(probabilities: np.ndarray) -> list[dict[str, Any]]:
    """The predicted digit and its probability."""
    best = probabilities.argmax(axis=1)
    return [
        {"digit": int(digit), "probability": round(float(row[digit]), 6)}
        for digit, row in zip(best, probabilities, strict=True)
    ]
