"""Reading `predict` records the way MNIST expects them: 28×28 grey, light digit on dark, centred.

A record is an image in any form `shared.images.decode_image` reads (a file, bytes, base64, pixels). Every image
has its contrast stretched to the full [0, 1] range above its background (dark ink on light paper is inverted
first), so a faint digit or one on grey paper reads like MNIST's. Then, unless it is already a 28×28 digit
normalised the MNIST way (bounding box ~20 px, centre of mass at the middle), it is converted as the MNIST
authors prepared theirs: the digit's bounding box scaled to fit 20×20, then centred by its centre of mass in
28×28. Real MNIST digits pass through unchanged; a shifted, tiny or frame-filling one is re-fitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from projects.mnist.data import IMAGE_SIZE
from shared.errors import RecordError
from shared.images import decode_image

DIGIT_BOX = 20
INK = 0.2  # a pixel is ink above this share of the stretched range
# The bounding-box sides (ink > INK) and the centre-of-mass offset an MNIST-normalised digit has: all 70,000
# MNIST digits but three have a 17-20 px box, and all have their centre of mass within 0.5 px of (14, 14).
NORMALISED_SIDES = (17, 22)
CENTRE_TOLERANCE = 1.5
MIN_CONTRAST = 1 / 255  # a range below one grey level is a blank image


def _border(grey: np.ndarray) -> np.ndarray:
    """The pixels of the outer frame (2 px on a 28×28 image): where the background shows, even for a big digit."""
    width = max(1, min(grey.shape) // 14)
    if min(grey.shape) <= 2 * width:
        return grey.ravel()
    frame = np.ones(grey.shape, bool)
    frame[width:-width, width:-width] = False
    return grey[frame]


def stretch_contrast(grey: np.ndarray) -> np.ndarray:
    """Light ink on black, from 0 (the background) to 1 (the strongest ink): grey paper, faint or dark ink alike.

    The background is the median of the image's border; the ink is whichever extreme lies farther from it (so
    dark ink on light paper is inverted).
    """
    background, low, high = float(np.median(_border(grey))), float(grey.min()), float(grey.max())
    if high - background < background - low:  # dark ink on light paper: invert to MNIST's light on dark
        grey, background, high = 1.0 - grey, 1.0 - background, 1.0 - low
    if high - background < MIN_CONTRAST:
        return np.zeros_like(grey, dtype=np.float32)
    return np.clip((grey - background) / (high - background), 0.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class Ink:
    """Where a digit's ink lies: its bounding box (rows, columns) and its centre of mass (row, column)."""

    rows: slice
    columns: slice
    centre_row: float
    centre_column: float


def find_ink(digit: np.ndarray) -> Ink | None:
    """The digit's `Ink` (pixels above `INK` of its strongest); None on a blank image."""
    ink = digit > INK * float(digit.max(initial=0.0))
    if not ink.any():
        return None
    rows, columns = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    total = float(digit.sum())
    centre_row = float(digit.sum(axis=1) @ np.arange(digit.shape[0])) / total
    centre_column = float(digit.sum(axis=0) @ np.arange(digit.shape[1])) / total
    return Ink(slice(rows[0], rows[-1] + 1), slice(columns[0], columns[-1] + 1), centre_row, centre_column)


def looks_normalised(digit: np.ndarray) -> bool:
    """Whether a stretched 28×28 digit is sized and centred as MNIST's are (then re-fitting would only blur it)."""
    return _normalised(digit, find_ink(digit))


def _normalised(digit: np.ndarray, ink: Ink | None) -> bool:
    if digit.shape != (IMAGE_SIZE, IMAGE_SIZE) or ink is None:
        return False
    side = max(ink.rows.stop - ink.rows.start, ink.columns.stop - ink.columns.start)
    middle = IMAGE_SIZE / 2
    return (
        NORMALISED_SIDES[0] <= side <= NORMALISED_SIDES[1]
        and abs(ink.centre_row - middle) <= CENTRE_TOLERANCE
        and abs(ink.centre_column - middle) <= CENTRE_TOLERANCE
    )


def fit_digit(digit: np.ndarray, ink: Ink | None) -> np.ndarray:
    """MNIST's normalisation: the ink's bounding box (`find_ink(digit)`) scaled to fit 20×20, centred by mass in
    28×28."""
    if ink is None:
        return np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.float32)
    crop = digit[ink.rows, ink.columns]
    scale = DIGIT_BOX / max(crop.shape)
    height, width = max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale))
    pixels = Image.fromarray(np.round(crop * 255).astype(np.uint8))
    resized = np.asarray(pixels.resize((width, height), Image.Resampling.LANCZOS), dtype=np.float32) / 255.0
    canvas = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.float32)
    total = resized.sum()
    centre_row = (resized.sum(axis=1) @ np.arange(height)) / total if total else height / 2
    centre_column = (resized.sum(axis=0) @ np.arange(width)) / total if total else width / 2
    top = int(np.clip(round(IMAGE_SIZE / 2 - centre_row), 0, IMAGE_SIZE - height))
    left = int(np.clip(round(IMAGE_SIZE / 2 - centre_column), 0, IMAGE_SIZE - width))
    canvas[top : top + height, left : left + width] = resized
    return canvas


def to_mnist(grey: np.ndarray) -> np.ndarray:
    """A grey image (H×W, values in [0, 1]) to a 28×28 MNIST-style digit in [0, 1]."""
    if grey.ndim != 2 or min(grey.shape) == 0:
        raise RecordError(f"expected a 2-D image, got shape {grey.shape}")
    digit = stretch_contrast(np.asarray(grey, dtype=np.float32))
    ink = find_ink(digit)  # found once: served digits pay for the search once, not for the check and the re-fit
    return digit if _normalised(digit, ink) else fit_digit(digit, ink)


def to_frame(grey: np.ndarray) -> np.ndarray:
    """A grey image to 28×28 light-on-dark at full contrast, resized whole: for data whose objects fill the frame
    (Fashion-MNIST), where re-fitting to a 20×20 box as for a digit would shrink them."""
    if grey.ndim != 2 or min(grey.shape) == 0:
        raise RecordError(f"expected a 2-D image, got shape {grey.shape}")
    stretched = stretch_contrast(np.asarray(grey, dtype=np.float32))
    if stretched.shape == (IMAGE_SIZE, IMAGE_SIZE):
        return stretched
    pixels = Image.fromarray(np.round(stretched * 255).astype(np.uint8))
    resized = pixels.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS)
    return np.asarray(resized, dtype=np.float32) / 255.0


def parse_digit(payload: Any, centred_digits: bool = True) -> np.ndarray:
    """One record as a 28×28 image: an image in any form `decode_image` reads, or `{"image": ...}`; a digit is
    re-fitted the MNIST way (`to_mnist`), other data only resized (`to_frame`)."""
    if isinstance(payload, dict):
        if "image" not in payload:
            raise RecordError("a digit record needs an 'image' field (base64 PNG/JPEG, or an H×W array of pixels)")
        payload = payload["image"]
    grey = decode_image(payload, "L")
    return to_mnist(grey) if centred_digits else to_frame(grey)


def prediction_columns(probabilities: np.ndarray, class_names: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """The predicted digit and its probability; with `class_names` (Fashion-MNIST), the class's name instead."""
    best = probabilities.argmax(axis=1)
    if class_names is not None:
        return [
            {"label": class_names[index], "probability": round(float(row[index]), 6)}
            for index, row in zip(best, probabilities, strict=True)
        ]
    return [
        {"digit": int(digit), "probability": round(float(row[digit]), 6)}
        for digit, row in zip(best, probabilities, strict=True)
    ]
