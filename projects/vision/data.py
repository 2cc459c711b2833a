"""Colour images for classification: CIFAR-10, a folder of the user's own, or made-up ones for tests.

Every source gives uint8 N×3×H×W tensors (channels first, 0-255) and int64 labels, split into train, val
(carved from train with a fixed seed) and test (the official test set, never used for choices). The loaders
only slice batches: normalisation and augmentation are the model's, done on whole batches on its device.
With `resident=auto` and a GPU, a loader moves its tensors to the GPU once and slices every batch there, so
no step waits on a host-to-device copy (`resident=cpu` keeps them in host memory, for CPU training).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import DataLoader

from projects.vision.archives import (
    CIFAR10_CLASSES,
    CIFAR10_JPEG_ZIP,
    CIFAR10_PYTHON_TARBALL,
    SIDE,
    Splits,
    check_splits,
    class_folders,
    decoded_path,
    load_decoded,
    read_class_folders,
    read_image_zip,
    read_python_tarball,
    save_decoded,
)
from projects.vision.corruptions import check_corruptions
from shared import checks
from shared.data import DataFile, ProjectData, fetch_files, holdout_indices, sha256_of, tensor_loader
from shared.errors import DataError, UsageError

log = logging.getLogger(__name__)

RESIDENT = ("auto", "cpu")
JPEG_DATASET, PYTHON_DATASET = "cifar10-jpg", "cifar10"  # their folders in the mirror and the cache
FOLDER_TEST_SEED = 0  # a folder's held-out test set stays the same whatever data.split_seed picks for val
SHOWN_SKIPPED = 10  # unreadable files named in the warning; the rest are counted


class VisionImages(ProjectData):
    """Images in train/val/test splits, served as uint8 tensors. Subclasses say where they come from (`load`)."""

    class_names: tuple[str, ...] = CIFAR10_CLASSES
    image_size: int = SIDE
    dataset = "images"

    def __init__(
        self,
        mirror_dir: str | None = None,
        cache_dir: str = "~/.cache/ml-portfolio",
        val_size: int | float = 5000,
        split_seed: int = 0,
        batch_size: int = 128,
        eval_batch_size: int = 1000,
        num_workers: int = 0,
        resident: str = "auto",
        train_limit: int | None = None,
        corruptions: list[str] | tuple[str, ...] = (),
        corruption_severity: int = 3,
    ) -> None:
        super().__init__(mirror_dir, cache_dir)
        # The test images under common corruptions (projects/vision/corruptions.py), scored beside the clean ones.
        self.corruptions, self.corruption_severity = check_corruptions(list(corruptions), corruption_severity)
        # Train on only this many of the training images (after val is carved out), for quick trials and tests;
        # val and test stay whole, so their figures mean the same.
        self.train_limit = None if train_limit is None else checks.whole(train_limit, "data.train_limit", example=5000)
        self.val_size = checks.share_or_count(val_size, "data.val_size", 0.1)
        self.split_seed = checks.seed(split_seed, "data.split_seed")
        self.batch_size = checks.whole(batch_size, "data.batch_size", example=128)
        self.eval_batch_size = checks.whole(eval_batch_size, "data.eval_batch_size", example=1000)
        self.num_workers = checks.whole(num_workers, "data.num_workers", minimum=0, example=0)
        if resident not in RESIDENT:
            raise UsageError(
                f"data.resident={resident!r} is not one of {', '.join(RESIDENT)}.",
                "set data.resident=auto (the loaders' tensors on the GPU when there is one) or data.resident=cpu.",
            )
        self.resident = resident
        self._images: dict[str, torch.Tensor] = {}
        self._labels: dict[str, np.ndarray] = {}
        self._on_device: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def load(self) -> Splits:
        """`train` and `test` as (uint8 N×3×S×S images, int64 labels)."""
        raise NotImplementedError

    def prepare(self) -> None:
        splits = self.load()
        check_splits(splits, self.dataset, len(self.class_names), self.image_size)
        images, labels = splits["train"]
        kept, held_out = holdout_indices(len(labels), self.val_size, self.split_seed)
        kept = (
            kept
            if self.train_limit is None
            else np.sort(kept[np.random.default_rng(self.split_seed).permutation(len(kept))[: self.train_limit]])
        )
        parts = {"train": (images[kept], labels[kept]), "val": (images[held_out], labels[held_out])}
        parts["test"] = splits["test"]
        self._images = {split: torch.from_numpy(np.ascontiguousarray(pair[0])) for split, pair in parts.items()}
        self._labels = {split: pair[1].astype(np.int64, copy=False) for split, pair in parts.items()}
        self._on_device = {}

    def inputs(self, split: str) -> torch.Tensor:
        return self._images[split]

    def targets(self, split: str) -> np.ndarray:
        return self._labels[split]

    def resident_device(self) -> torch.device | None:
        """Where the loaders keep their tensors: the current GPU with `resident=auto` when there is one (under
        DDP, each process's own), else None: host memory."""
        if self.resident == "auto" and torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return None

    def loader(self, inputs: torch.Tensor, targets: np.ndarray | None = None, train: bool = False) -> DataLoader:
        """Batches sliced from the uint8 tensors as they are (shuffled for training, the last one kept whole)."""
        tensors = [inputs] if targets is None else [inputs, torch.as_tensor(np.asarray(targets), dtype=torch.long)]
        device = self.resident_device()
        if device is not None:
            tensors = [self._moved(inputs, device), *(tensor.to(device) for tensor in tensors[1:])]
        return tensor_loader(
            *tensors,
            batch_size=self.batch_size if train else self.eval_batch_size,
            shuffle=train,
            drop_last=False,
            num_workers=0 if device is not None else self.num_workers,  # CUDA tensors cannot go to workers
        )

    def _moved(self, tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
        """`tensor` on `device`, copied once however many loaders are made over it (the original is kept as the
        key's owner, so its id cannot be reused)."""
        key = id(tensor)
        if key not in self._on_device or self._on_device[key][1].device != device:
            self._on_device[key] = (tensor, tensor.to(device))
        return self._on_device[key][1]

    def describe(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "images": f"{self.image_size}×{self.image_size} RGB, {len(self.class_names)} classes",
            **super().describe(),
        }


class Cifar10(VisionImages):
    """CIFAR-10 (Krizhevsky, Nair & Hinton 2009): 50,000 training and 10,000 test 32×32 colour images.

    `source=auto` reads the mirror's JPEG copy (`<mirror>/cifar10-jpg/cifar10-jpg.zip`) when it is there, else
    the canonical `cifar-10-python.tar.gz` (`<mirror>/cifar10/`, the cache, or a download); `jpg` and `python`
    insist on one. Either is decoded once into `<cache>/cifar10/decoded-<sha256[:16]>.npz`.
    """

    dataset = "CIFAR-10 (Krizhevsky, Nair & Hinton 2009)"
    jpeg_zip: ClassVar[DataFile] = CIFAR10_JPEG_ZIP
    python_tarball: ClassVar[DataFile] = CIFAR10_PYTHON_TARBALL
    SOURCES = ("auto", "jpg", "python")

    def __init__(self, source: str = "auto", **options: Any) -> None:
        if source not in self.SOURCES:
            raise UsageError(
                f"data.source={source!r} is not one of {', '.join(self.SOURCES)}.",
                "use data.source=auto (the JPEG zip when found, else the tarball), jpg or python.",
            )
        super().__init__(**options)
        self.source = source
        self.source_file: str | None = None  # the file the images were read from, once prepared

    def _present(self, dataset: str, file: DataFile) -> bool:
        """Whether `file` is in the mirror or the cache (as `fetch_files` looks for it), checked or not."""
        places = [Path(self.cache_dir).expanduser() / dataset]
        places += [Path(self.mirror_dir).expanduser() / dataset] if self.mirror_dir else []
        return any((place / file.name).is_file() for place in places)

    def locate(self) -> tuple[DataFile, Path]:
        """The file to decode, verified by its checksum. When neither is there, the error is `fetch_files`' own
        for the tarball (the mirror, or a download), with the JPEG zip named as the third way."""
        zip_file, tarball = self.jpeg_zip, self.python_tarball
        if self.source == "jpg" or (self.source == "auto" and self._present(JPEG_DATASET, zip_file)):
            return zip_file, fetch_files(JPEG_DATASET, [zip_file], self.mirror_dir, self.cache_dir)[zip_file.name]
        was_there = self._present(PYTHON_DATASET, tarball)
        try:
            return tarball, fetch_files(PYTHON_DATASET, [tarball], self.mirror_dir, self.cache_dir)[tarball.name]
        except DataError as error:
            if self.source == "python" or was_there:  # a corrupt file, not a missing one: its own message
                raise
            places = [f"{self.mirror_dir}/{JPEG_DATASET}"] if self.mirror_dir else []
            places.append(f"{self.cache_dir}/{JPEG_DATASET}")
            raise DataError(
                f"{error.problem} Nor is the mirror's JPEG copy {zip_file.name} in {' or '.join(places)}.",
                f"{error.fix} Or put the JPEG copy in <mirror>/{JPEG_DATASET}/{zip_file.name}.",
            ) from None

    def decode(self, file: DataFile, path: Path) -> Splits:
        """Read the images out of the archive (seconds): the zip's JPEGs, or the tarball's pickled batches."""
        return read_image_zip(path, self.class_names) if file is self.jpeg_zip else read_python_tarball(path)

    def load(self) -> Splits:
        file, path = self.locate()
        digest = file.sha256[0] if len(file.sha256) == 1 else sha256_of(path)  # the one it was checked against
        cached = decoded_path(self.cache_dir, PYTHON_DATASET, digest)
        splits = load_decoded(cached, len(self.class_names))
        if splits is None:
            started = time.perf_counter()
            splits = self.decode(file, path)
            check_splits(splits, str(path), len(self.class_names))
            log.info("decoded %s in %.1f s; kept as %s", path.name, time.perf_counter() - started, cached)
            save_decoded(cached, splits)
        self.source_file = file.name
        return splits

    def describe(self) -> dict[str, Any]:
        kind = (
            "the mirror's JPEG re-encoding of the original images (pixels differ slightly)"
            if self.source_file == self.jpeg_zip.name
            else "the canonical Python batches"
        )
        return {**super().describe(), "source": f"{self.source_file}: {kind}"}


class ImageFolder(VisionImages):
    """A user's own images: `<path>/train/<class>/<image>` and optionally `<path>/test/<class>/<image>`.

    Any size and mode Pillow reads (RGBA, grey, palette, 16-bit), converted to RGB, centre-cropped to a square
    and resized to `image_size`×`image_size`, as `predict` converts its images. Classes are the sorted folder
    names under `train/`. Without `test/`, `test_size` of the training images is held out as the test set,
    always the same ones; val comes from the rest. Unreadable files are skipped and listed in one warning.
    """

    def __init__(
        self,
        path: str | None = None,
        image_size: int = 32,
        test_size: int | float = 0.2,
        val_size: int | float = 0.1,
        **options: Any,
    ) -> None:
        super().__init__(val_size=val_size, **options)
        self.path = path
        self.image_size = checks.whole(image_size, "data.image_size", minimum=8, example=32)
        self.test_size = checks.share_or_count(test_size, "data.test_size", 0.2, "test")
        self._class_names: tuple[str, ...] | None = None
        self.skipped: list[str] = []  # "<file> (<why>)" for every image that could not be read
        self.test_from = ""

    @property
    def dataset(self) -> str:  # type: ignore[override]
        return f"image folder {self.path}"

    @property
    def class_names(self) -> tuple[str, ...]:  # type: ignore[override]
        """The sorted class folders under `train/` (read from disk the first time they are asked for)."""
        if self._class_names is None:
            self._class_names = class_folders(self._root() / "train")
        return self._class_names

    def _root(self) -> Path:
        layout = "a folder holding train/<class>/<image> (and optionally test/<class>/<image>)"
        if not self.path:
            raise DataError("data=folder needs a folder of images.", f"add data.path=<folder>: {layout}.")
        root = Path(self.path).expanduser()
        if not root.is_dir():
            raise DataError(f"image folder {root} does not exist or is not a folder.", f"point data.path= at {layout}.")
        if not (root / "train").is_dir():
            inside = sorted(entry.name for entry in root.iterdir())[:8]
            raise DataError(f"{root} has no train/ folder (it holds {inside}).", f"point data.path= at {layout}.")
        return root

    def load(self) -> Splits:
        root, names = self._root(), self.class_names
        train = read_class_folders(root / "train", names, self.image_size)
        if (root / "test").is_dir():
            found = set(class_folders(root / "test", minimum=1))
            if found != set(names):
                missing, extra = sorted(set(names) - found), sorted(found - set(names))
                parts = [f"missing {', '.join(missing)}"] if missing else []
                parts += [f"not in train/: {', '.join(extra)}"] if extra else []
                raise DataError(
                    f"{root / 'test'} has other classes than train/ ({'; '.join(parts)}).",
                    "give test/ the same class folders as train/, or remove test/ to hold out data.test_size of train.",
                )
            test = read_class_folders(root / "test", names, self.image_size)
            self.test_from = "test/"
        else:
            kept, held_out = holdout_indices(len(train.labels), self.test_size, FOLDER_TEST_SEED)
            test = train._replace(images=train.images[held_out], labels=train.labels[held_out], skipped=[], ignored=[])
            train = train._replace(images=train.images[kept], labels=train.labels[kept])
            self.test_from = f"{self.test_size} of train/ (fixed seed)"
        self.skipped = train.skipped + test.skipped
        ignored = sorted(set(train.ignored + test.ignored))
        if self.skipped or ignored:
            more = len(self.skipped) - SHOWN_SKIPPED
            log.warning(
                "%s: skipped %d unreadable image(s)%s%s%s",
                root,
                len(self.skipped),
                ": " + "; ".join(self.skipped[:SHOWN_SKIPPED]) if self.skipped else "",
                f"; and {more} more" if more > 0 else "",
                f"; ignored the files that are not images ({', '.join(ignored)})" if ignored else "",
            )
        return {"train": (train.images, train.labels), "test": (test.images, test.labels)}

    def describe(self) -> dict[str, Any]:
        facts = {**super().describe(), "classes": ", ".join(self.class_names), "test split": self.test_from}
        return {**facts, "unreadable files skipped": len(self.skipped)}


# --- made-up images ------------------------------------------------------------------------------------------
COLOURS = {"red": (220, 30, 30), "blue": (30, 60, 230)}
PATTERNS = ("horizontal", "vertical", "diagonal", "checks", "disc")
SYNTHETIC_CLASSES = tuple(f"{colour}-{pattern}" for colour in COLOURS for pattern in PATTERNS)


def synthetic_image(label: int, generator: np.random.Generator, side: int = SIDE) -> np.ndarray:
    """Class `label`'s made-up 3×side×side image: a pattern (stripes one of three ways, checks, or a disc) at
    a random phase or place, in one of two colours, on grey noise. A small CNN learns all ten in seconds."""
    colour, pattern = divmod(label, len(PATTERNS))
    rows, columns = np.mgrid[0:side, 0:side]
    phase = int(generator.integers(0, 8))
    masks = {
        "horizontal": (rows + phase) // 4 % 2 == 0,
        "vertical": (columns + phase) // 4 % 2 == 0,
        "diagonal": (rows + columns + phase) // 4 % 2 == 0,
        "checks": ((rows + phase) // 4 + (columns + phase) // 4) % 2 == 0,
    }
    if PATTERNS[pattern] == "disc":
        radius = int(generator.integers(6, 10))
        centre = generator.integers(radius, side - radius, 2)
        mask = (rows - centre[0]) ** 2 + (columns - centre[1]) ** 2 <= radius**2
    else:
        mask = masks[PATTERNS[pattern]]
    image = generator.integers(40, 140, (3, side, side)).astype(np.int16)
    tint = np.array(list(COLOURS.values())[colour], np.int16)[:, None] + generator.integers(-25, 26, (3, 1))
    image[:, mask] = tint
    return np.clip(image, 0, 255).astype(np.uint8)


class SyntheticImages(VisionImages):
    """Tiny made-up colour images, ten classes (two colours × five patterns), for smoke tests and CI."""

    class_names = SYNTHETIC_CLASSES
    dataset = "synthetic images (for tests)"

    def __init__(self, train_size: int = 600, test_size: int = 200, seed: int = 0, **options: Any) -> None:
        options.setdefault("val_size", 0.2)
        super().__init__(**options)
        self.train_size = checks.whole(train_size, "data.train_size", minimum=10, example=600)
        self.test_size = checks.whole(test_size, "data.test_size", example=200)
        self.seed = checks.seed(seed, "data.seed")

    def load(self) -> Splits:
        generator = np.random.default_rng(self.seed)

        def draw(count: int) -> tuple[np.ndarray, np.ndarray]:
            labels = generator.integers(0, len(self.class_names), count).astype(np.int64)
            return np.stack([synthetic_image(int(label), generator) for label in labels]), labels

        train = draw(self.train_size)
        return {"train": train, "test": draw(self.test_size)}
