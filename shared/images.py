"""Reading images for `predict` (and the HTTP API): a file, a folder of files, a `.npy` array, raw bytes,
base64 text or a nested list, in any size and colour mode, to float arrays in [0, 1].

Each image becomes one record that the project's `parse_record` turns into a model input (MNIST centres
a digit, vision resizes to 32×32); an unreadable file is its own row's error, never the end of the run.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm.auto import tqdm

from shared.errors import DataError, RecordError, UsageError
from shared.project import PredictItem

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
# Pixels per image, checked from the header before anything is decoded: a 6000×6000 photo is 36 megapixels; a
# 20000×20000 one-bit PNG is a 50 KB file that would decode to 400 MB (a decompression bomb).
MAX_PIXELS = 40_000_000
# Modes whose values are wider than 8 bits: PIL's own conversion to "L" clips them, so they are scaled here.
WIDE_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})
# The scales pixels may come in; values above the last are no image's.
SCALES = (1.0, 255.0, 65535.0)


def decode_image(payload: Any, mode: str) -> np.ndarray:
    """An image as floats in [0, 1]: H×W for `mode="L"` (grey), H×W×3 for `"RGB"`.

    `payload` is encoded image bytes, base64 text of them, a file path, a NumPy array or a nested list of pixels
    (values in [0, 1], 0-255 when any exceeds 1, 0-65535 when any exceeds 255). Anything else, bytes that are no
    image, an image over `MAX_PIXELS` or pixels that are NaN, infinite or negative are a `RecordError`.
    """
    if isinstance(payload, Path):
        payload = _read_bytes(payload)
    if isinstance(payload, str):
        try:
            payload = base64.b64decode(payload.split(",", 1)[-1], validate=True)
        except (binascii.Error, ValueError) as error:
            raise RecordError(f"not base64 image data ({error})") from error
    if isinstance(payload, bytes | bytearray):
        return _decode_bytes(bytes(payload), mode)
    return _pixels(payload, mode)


def _decode_bytes(payload: bytes, mode: str) -> np.ndarray:
    """Encoded image bytes as floats in [0, 1]; any failure of the decoder is this image's error alone."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # MAX_PIXELS, lower, is checked below
            with Image.open(io.BytesIO(payload)) as image:
                width, height = image.size
                if width * height > MAX_PIXELS:
                    raise RecordError(_too_large(width, height))
                if image.mode in WIDE_MODES:  # 16-bit grey, 32-bit integer or float: scaled by their own range
                    wide = np.asarray(image, dtype=np.float64)
                    if image.mode.startswith("I;16") or (image.mode == "I" and image.format == "PNG"):
                        wide = wide / 65535.0
                    return _pixels(wide, mode)
                converted = ImageOps.grayscale(image) if mode == "L" else image.convert("RGB")
                return np.asarray(converted, dtype=np.float32) / 255.0
    except RecordError:
        raise
    except Image.DecompressionBombError as error:  # above PIL's own hard limit: it refuses to open the file
        size = _declared_size(payload)
        raise RecordError(_too_large(*size) if size else f"too large ({error})") from error
    except UnidentifiedImageError as error:
        raise RecordError(
            f"not a readable image: {len(payload):,} bytes in no format Pillow reads (PNG, JPEG, GIF, BMP, TIFF, WebP)"
        ) from error
    except Exception as error:  # a broken file can fail anywhere in a decoder (OSError, SyntaxError, struct.error)
        raise RecordError(f"not a readable image ({type(error).__name__}: {error})") from error


def _too_large(width: int, height: int) -> str:
    return (
        f"too large: {width}×{height} pixels, the limit is {MAX_PIXELS:,} ({MAX_PIXELS / 1e6:g} megapixels); "
        "resize it first"
    )


def _declared_size(payload: bytes) -> tuple[int, int] | None:
    """An image's width and height from its header alone (no decoding), by the first PIL plugin that reads it."""
    Image.init()
    for format_id in Image.ID:
        factory, accept = Image.OPEN[format_id]
        try:
            if accept is None or accept(payload[:16]):
                with factory(io.BytesIO(payload), "") as image:
                    return image.size
        except Exception:  # not this format: try the next
            continue
    return None


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise RecordError(f"cannot read {path.name} ({error.strerror or error})") from error


def _scale(maximum: float) -> float:
    """The range pixels up to `maximum` come in (1, 255 or 65535), or a `RecordError` when none holds them."""
    scale = next((scale for scale in SCALES if maximum <= scale), None)
    if scale is None:
        raise RecordError(f"pixel values up to {maximum:g}: expected 0-1, 0-255 or 0-65535")
    return scale


def _pixels(payload: Any, mode: str) -> np.ndarray:
    """A NumPy array or nested list of pixels as floats in [0, 1], converted to `mode`."""
    if not isinstance(payload, np.ndarray | list | tuple):  # a number, a mapping, null: no image at all
        raise RecordError(
            f"an image is base64 PNG/JPEG text or an H×W (or H×W×3) array of pixels, not {type(payload).__name__}"
        )
    try:
        array = np.asarray(payload, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise RecordError(f"pixels must be numbers in a rectangular H×W or H×W×3 array ({error})") from error
    if array.ndim == 3 and array.shape[-1] in (1, 3, 4):
        array = array[..., :3] if array.shape[-1] != 1 else array[..., 0]
    if array.ndim not in (2, 3) or min(array.shape[:2], default=0) == 0 or array.shape[2:] not in ((), (3,)):
        raise RecordError(f"pixels of shape {array.shape}: expected H×W (grey) or H×W×3 (colour)")
    if array.shape[0] * array.shape[1] > MAX_PIXELS:
        raise RecordError(_too_large(array.shape[1], array.shape[0]))
    broken = int(np.count_nonzero(~np.isfinite(array)))
    if broken:
        raise RecordError(f"{broken} pixel(s) are NaN or infinite: every pixel must be a finite number")
    if array.min() < 0:
        raise RecordError(f"pixels must not be negative (the lowest is {array.min():g})")
    array = (array / _scale(float(array.max(initial=0.0)))).astype(np.float32)
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
        return _npy_items(path, parse)
    return [parse(path.name, path)]


def _npy_items(path: Path, parse: Callable[[str, Any], PredictItem]) -> list[PredictItem]:
    """One item per image of a `.npy` stack, all on one scale (0-1, 0-255 or 0-65535, from the finite pixels);
    an image with NaN or infinite pixels is its own error, and does not change the others' scale."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)  # the header first: no huge read before the checks
    except (OSError, ValueError, EOFError) as error:
        raise DataError(f"{path} is not a readable .npy array ({error}).", "save it with numpy.save.") from error
    if array.ndim == 2:
        array = array[None]
    numeric = np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    if array.ndim not in (3, 4) or not numeric:
        raise DataError(f"{path} holds a {array.dtype} array of shape {array.shape}.", "save N×H×W or N×H×W×3 images.")
    if array.shape[1] * array.shape[2] > MAX_PIXELS:
        raise DataError(
            f"{path} holds images of {array.shape[2]}×{array.shape[1]} pixels, over the limit of {MAX_PIXELS:,}.",
            "resize them before predicting.",
        )
    if len(array) == 0:
        raise DataError(f"{path} holds no images (shape {array.shape}).", "save N×H×W or N×H×W×3 images, N ≥ 1.")
    maxima = [np.max(image, initial=0.0, where=np.isfinite(image)) for image in array]
    try:
        scale = _scale(float(max(maxima)))
    except RecordError as error:
        raise DataError(f"{path}: {error}.", "save the images' pixels as 0-1, 0-255 or 0-65535 values.") from error
    return [parse(str(index), np.asarray(image, dtype=np.float64) / scale) for index, image in enumerate(array)]


class LabelledFolder(NamedTuple):
    """The readable images of `<folder>/<class>/`, and what was left out."""

    images: np.ndarray  # the converted images, stacked
    labels: np.ndarray  # int64, indices into the class names
    skipped: list[str]  # "<folder>/<class>/<file> (<why>)" for each image file that would not convert
    ignored: list[str]  # the suffixes of files that are not images by their name


def read_labelled_folder(
    folder: Path, class_names: Sequence[str], convert: Callable[[Path], np.ndarray]
) -> LabelledFolder:
    """Every image file of `folder/<class>/` (for each of `class_names` that has a folder), converted by
    `convert`, with its class's index. A file that does not convert (a `RecordError`) is skipped and named, not
    fatal: one bad photo should not stop a run. The callers decide what too few images means."""
    files, ignored = [], []
    for label, name in enumerate(class_names):
        if not (folder / name).is_dir():
            continue
        for file in sorted((folder / name).iterdir()):
            if file.name.startswith(".") or not file.is_file():
                continue
            if file.suffix.lower() in IMAGE_SUFFIXES:
                files.append((file, label))
            else:
                ignored.append(file.suffix.lower() or file.name)
    images, labels, skipped = [], [], []
    for file, label in tqdm(files, desc=f"read {folder.name}/", unit="image", disable=len(files) < 1000):
        try:
            images.append(convert(file))
        except RecordError as error:
            skipped.append(f"{file.relative_to(folder.parent)} ({error})")
            continue
        labels.append(label)
    stacked = np.stack(images) if images else np.empty((0,), np.uint8)
    return LabelledFolder(stacked, np.asarray(labels, np.int64), skipped, ignored)


def labelled_images(
    folder: Path, class_names: tuple[str, ...], convert: Callable[[Path], np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """`train data.extra=FOLDER` for image data: every image of `folder/<class>/`, converted by `convert` (the
    project's own conversion, as `predict` converts an image), stacked, with its class's index in `class_names`.

    A file that does not convert is skipped and named in a warning, as in a training folder; a folder that is not a
    class, or no readable image at all, is a `UsageError` that names the classes."""
    layout = f"a folder of <class>/<image> with the classes {', '.join(class_names)}"
    if not folder.is_dir():
        raise UsageError(f"data.extra={folder} is not a folder.", f"pass {layout}.")
    classes = sorted(entry.name for entry in folder.iterdir() if entry.is_dir() and not entry.name.startswith("."))
    unknown = [name for name in classes if name not in class_names]
    if unknown or not classes:
        found = f"folders {', '.join(unknown)} are not classes" if unknown else "it holds no class folders"
        raise UsageError(f"data.extra={folder}: {found}.", f"pass {layout}.")
    read = read_labelled_folder(folder, class_names, convert)
    if read.skipped:
        log.warning("data.extra: skipped %d unreadable image(s): %s", len(read.skipped), "; ".join(read.skipped[:5]))
    if not len(read.labels):
        raise UsageError(
            f"data.extra={folder} holds no readable images ({len(read.skipped)} unreadable).",
            f"pass {layout} ({', '.join(sorted(IMAGE_SUFFIXES))}).",
        )
    return read.images, read.labels
