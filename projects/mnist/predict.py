"""Reading `predict` records the way MNIST expects them: 28×28 grey, light digit on dark, centred.

A record is an image in any form `shared.images.decode_image` reads (a file, bytes, base64, pixels). Images
of other sizes or in colour are converted as the MNIST authors prepared theirs: grey, the digit's bounding
box scaled to fit 20×20, then centred by its centre of mass in 28×28.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from projects.mnist.data import IMAGE_SIZE
from shared.errors import RecordError
from shared.images import decode_image

DIGIT_BOX = 20


def to_mnist(grey: np.ndarray) -> np.ndarray:
    """A grey image (H×W, values in [0, 1]) to a 28×28 MNIST-style digit in [0, 1]."""
    if grey.ndim != 2 or min(grey.shape) == 0:
        raise RecordError(f"expected a 2-D image, got shape {grey.shape}")
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


def parse_digit(payload: Any) -> np.ndarray:
    """One record as a 28×28 digit: an image in any form `decode_image` reads, or `{"image": ...}`."""
    if isinstance(payload, dict):
        if "image" not in payload:
            raise RecordError("a digit record needs an 'image' field (base64 PNG/JPEG, or an H×W array of pixels)")
        payload = payload["image"]
    return to_mnist(decode_image(payload, "L"))


def prediction_columns(probabilities: np.ndarray) -> list[dict[str, Any]]:
    """The predicted digit and its probability."""
    best = probabilities.argmax(axis=1)
    return [
        {"digit": int(digit), "probability": round(float(row[digit]), 6)}
        for digit, row in zip(best, probabilities, strict=True)
    ]
