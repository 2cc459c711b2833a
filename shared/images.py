"""Reading images for `predict` (and the HTTP API): a file, a folder of files, a `.npy` array, raw bytes,
base64 text or a nested list, in any size and colour mode, to float arrays in [0, 1].

Each image becomes one record that the project's `parse_record` turns into a model input (MNIST centres
a digit, vision resizes to 32×32); an unreadable file is its own row's error, never the end of the run.
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from shared.errors import DataError, RecordError, UsageError
from shared.project import PredictItem

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})


def decode_image(payload: Any, mode: str) -> np.ndarray:
    """An image as floats in [0, 1]: H×W for `mode="L"` (grey), H×W×3 for `"RGB"`.

    `payload` is encoded image bytes, base64 text of them, a file path, a NumPy array or a nested list of pixels
    (values in [0, 1], or 0-255 when any exceeds 1). Anything else, or bytes that are no image, is a `RecordError`.
    """
    if isinstance(payload, Path):
        payload = _read_bytes(payload)
    if isinstance(payload, str):
        try:
            payload = base64.b64decode(payload.split(",", 1)[-1], validate=True)
        except (binascii.Error, ValueError) as error:
            raise RecordError(f"not base64 image data ({error})") from error
    if isinstance(payload, bytes | bytearray):
        try:
            with Image.open(io.BytesIO(payload)) as image:
                converted = ImageOps.grayscale(image) if mode == "L" else image.convert("RGB")
                return np.asarray(converted, dtype=np.float32) / 255.0
        except (UnidentifiedImageError, OSError, ValueError) as error:
            raise RecordError(f"not a readable image ({type(error).__name__}: {error})") from error
    return _pixels(payload, mode)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise RecordError(f"cannot read {path.name} ({error.strerror or error})") from error


def _pixels(payload: Any, mode: str) -> np.ndarray:
    """A NumPy array or nested list of pixels as floats in [0, 1], converted to `mode`."""
    try:
        array = np.asarray(payload, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise RecordError(f"pixels must be numbers in a rectangular H×W or H×W×3 array ({error})") from error
    if array.ndim == 3 and array.shape[-1] in (1, 3, 4):
        array = array[..., :3] if array.shape[-1] != 1 else array[..., 0]
    if array.ndim not in (2, 3) or min(array.shape[:2], default=0) == 0:
        raise RecordError(f"pixels of shape {array.shape}: expected H×W (grey) or H×W×3 (colour)")
    if not np.isfinite(array).all() or array.min() < 0:
        raise RecordError("pixels must be finite and not negative")
    if array.max(initial=0.0) > 1.0:
        array = array / 255.0
    array = np.clip(array, 0.0, 1.0)
    if mode == "L" and array.ndim == 3:
        return array @ np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601 luma, as PIL's "L"
    if mode == "RGB" and array.ndim == 2:
        return np.repeat(array[..., None], 3, axis=-1)
    return array


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An H×W or H×W×3 image in [0, 1] resized to `size` (height, width) with Lanczos filtering."""
    if image.shape[:2] == size:
        return image
    pil = Image.fromarray(np.round(image * 255).astype(np.uint8))
    return np.asarray(pil.resize((size[1], size[0]), Image.Resampling.LANCZOS), dtype=np.float32) / 255.0


def image_items(path: Path, parse: Callable[[str, Any], PredictItem]) -> list[PredictItem]:
    """One item per image of a file, a folder of image files, or a `.npy` array of N images (N×H×W or N×H×W×3).

    `parse(name, payload)` makes each item from its payload (the file's bytes, or one array of the stack): the
    project's `parse_record`, wrapped by `shared.predict.parse_item`.
    """
    if path.is_dir():
        files = sorted(file for file in path.iterdir() if file.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise UsageError(
                f"{path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}).", "point input= at images."
            )
        return [parse(file.name, file) for file in files]
    if path.suffix.lower() == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise DataError(f"{path} is not a readable .npy array ({error}).", "save it with numpy.save.") from error
        if array.ndim == 2:
            array = array[None]
        if array.ndim not in (3, 4) or not np.issubdtype(array.dtype, np.number):
            raise DataError(
                f"{path} holds a {array.dtype} array of shape {array.shape}.", "save N×H×W or N×H×W×3 images."
            )
        scale = 255.0 if array.max(initial=0) > 1.0 else 1.0  # one scale for the whole stack
        return [parse(str(index), image.astype(np.float32) / scale) for index, image in enumerate(array)]
    return [parse(path.name, path)]
