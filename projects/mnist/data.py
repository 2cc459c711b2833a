"""MNIST's data (and Fashion-MNIST's, in the same format): four IDX files, verified, parsed, split, and served
as tensors.

Images are kept as uint8 and normalised on demand; the validation split is carved from the
60,000 training images with a fixed seed, and the 10,000 test images are only read by the
final evaluation. Fashion-MNIST (Xiao, Rasul & Vollgraf 2017) was made as a drop-in replacement: the same
file names, sizes and layout, so it goes through the same reader and checksums, normalised with MNIST's
statistics (an affine map the networks' first layer absorbs).
"""

from __future__ import annotations

import gzip
import math
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from projects.mnist.augment import Augmentation
from shared import checks
from shared.data import DataFile, ImageSplits, fetch_files, holdout_indices, tensor_loader
from shared.errors import DataError
from shared.images import labelled_images

MEAN, STD = 0.1307, 0.3081  # pixel statistics of the MNIST training set, as the literature normalises
IMAGE_SIZE = 28
DIGIT_SIDE = 20  # MNIST fits each digit's bounding box to 20×20, then centres it by mass in 28×28
_SOURCES = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://yann.lecun.com/exdb/mnist/")

MNIST_FILES = (
    DataFile(
        "train-images-idx3-ubyte.gz",
        sha256=(
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",  # original distribution
            "db8f937d487057fb14a9f0fbe97f0bc8d311ab41b750d41e1ff37c43b9e55e19",  # lossless rebuild (mirror SOURCE.md)
        ),
        urls=tuple(source + "train-images-idx3-ubyte.gz" for source in _SOURCES),
    ),
    DataFile(
        "train-labels-idx1-ubyte.gz",
        sha256=("3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",),
        urls=tuple(source + "train-labels-idx1-ubyte.gz" for source in _SOURCES),
    ),
    DataFile(
        "t10k-images-idx3-ubyte.gz",
        sha256=("8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",),
        urls=tuple(source + "t10k-images-idx3-ubyte.gz" for source in _SOURCES),
    ),
    DataFile(
        "t10k-labels-idx1-ubyte.gz",
        sha256=("f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",),
        urls=tuple(source + "t10k-labels-idx1-ubyte.gz" for source in _SOURCES),
    ),
)


_FASHION_SOURCE = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FASHION_MNIST_FILES = tuple(  # sums as the mirror's SOURCE.md and zalandoresearch/fashion-mnist list them
    DataFile(name, sha256=(sha256,), urls=(_FASHION_SOURCE + name,))
    for name, sha256 in (
        ("train-images-idx3-ubyte.gz", "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7"),
        ("train-labels-idx1-ubyte.gz", "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056"),
        ("t10k-images-idx3-ubyte.gz", "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa"),
        ("t10k-labels-idx1-ubyte.gz", "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05"),
    )
)


def read_idx(path: Path) -> np.ndarray:
    """Parse a gzipped IDX file (LeCun's format: magic, dimensions, then unsigned bytes)."""
    try:
        with gzip.open(path, "rb") as stream:
            raw = stream.read()
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(
            f"{path} is not a readable gzip file ({error}).", "replace it with the original file."
        ) from error
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not an IDX file of unsigned bytes.", "replace it with the original file.")
    dimensions = raw[3]
    header = 4 + 4 * dimensions
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dimensions))
    if len(raw) != header + math.prod(shape):
        raise DataError(
            f"{path} is truncated or padded: its header promises {shape}, "
            f"{header + math.prod(shape)} bytes, but it holds {len(raw)}.",
            "replace it with the original file.",
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def normalise(images: np.ndarray) -> torch.Tensor:
    """uint8 (or [0, 1] float) N×28×28 images to the N×1×28×28 float tensor the models take."""
    # In place on one float32 copy: numpy's chain of temporaries cost seconds per split on a small machine.
    pixels = torch.from_numpy(images.astype(np.float32))  # astype copies: the caller's array is never touched
    if images.dtype == np.uint8:
        pixels.div_(255.0)
    return pixels.sub_(MEAN).div_(STD).unsqueeze(1)


def denormalise(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """Model inputs back to [0, 1] N×28×28 arrays, for plots."""
    array = images.numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    return np.clip(array.reshape(-1, IMAGE_SIZE, IMAGE_SIZE) * STD + MEAN, 0.0, 1.0)


def random_shift(images: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Move each image of a batch by up to `max_shift` pixels in x and y (background fills the gap)."""
    if max_shift <= 0:
        return images
    count, size = images.shape[0], images.shape[-1]
    background = (0.0 - MEAN) / STD
    padded = F.pad(images, (max_shift,) * 4, value=background)
    offsets = torch.randint(0, 2 * max_shift + 1, (2, count))
    steps = torch.arange(size)
    rows = (offsets[0, :, None] + steps)[:, :, None]
    columns = (offsets[1, :, None] + steps)[:, None, :]
    return padded[torch.arange(count)[:, None, None], 0, rows, columns].unsqueeze(1)


class DigitImages(ImageSplits):
    """28×28 grey digit images in train/val/test splits, served as normalised tensors."""

    class_names: ClassVar[tuple[str, ...]] = tuple(str(digit) for digit in range(10))
    # Which dataset this is, in `metrics.json` ("dataset id"): the GAN picks a judge trained on the same one.
    dataset_id: ClassVar[str]
    # Whether images are digits sized and centred the MNIST way: `predict` re-fits other digits to that form.
    centred_digits: ClassVar[bool] = True

    def __init__(
        self,
        mirror_dir: str | None = None,
        cache_dir: str = "~/.cache/ml-portfolio",
        val_size: int | float = 5000,
        split_seed: int = 0,
        batch_size: int = 128,
        eval_batch_size: int = 1000,
        max_shift: int = 2,
        augment: Mapping[str, Any] | None = None,
        num_workers: int = 0,
    ) -> None:
        super().__init__(mirror_dir, cache_dir)
        # 0: no val split, every training image is trained on (a tuned preset's retrain on the full train split)
        self.val_size = checks.share_or_count(val_size, "data.val_size", 0.1, optional=True)
        self.split_seed = checks.seed(split_seed, "data.split_seed")
        self.batch_size = checks.whole(batch_size, "data.batch_size", example=128)
        self.eval_batch_size = checks.whole(eval_batch_size, "data.eval_batch_size", example=1000)
        self.max_shift = checks.whole(max_shift, "data.max_shift", minimum=0, example=2)
        self.augment = Augmentation.from_config(augment)
        self.num_workers = checks.whole(num_workers, "data.num_workers", minimum=0, example=0)
        self._images: dict[str, np.ndarray] = {}
        self._labels: dict[str, np.ndarray] = {}
        self._tensors: dict[str, torch.Tensor] = {}

    def load(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Train images, train labels, test images, test labels."""
        raise NotImplementedError

    def prepare(self) -> None:
        train_images, train_labels, test_images, test_labels = self.load()
        for name, images, labels in (
            ("train", train_images, train_labels),
            ("test", test_images, test_labels),
        ):
            if images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE) or len(images) != len(labels):
                raise DataError(
                    f"{name} images have shape {images.shape} for {len(labels)} labels; "
                    f"expected N×{IMAGE_SIZE}×{IMAGE_SIZE} with one label each.",
                    "check the data files.",
                )
            if labels.size and (labels.min() < 0 or labels.max() >= len(self.class_names)):
                raise DataError(f"{name} labels fall outside 0..{len(self.class_names) - 1}.", "check the data files.")
        self._images, self._labels = {"test": test_images}, {"test": test_labels}
        if self.val_size:
            kept, held_out = holdout_indices(len(train_labels), self.val_size, self.split_seed)
            self._images["val"], self._labels["val"] = train_images[held_out], train_labels[held_out]
            train_images, train_labels = train_images[kept], train_labels[kept]
        self._images["train"], self._labels["train"] = train_images, train_labels
        self._tensors = {}

    @property
    def splits(self) -> tuple[str, ...]:  # type: ignore[override]
        """Without a val split (`val_size` 0) the model selection is the last epoch, and every image is trained on."""
        return ("train", "val", "test") if self.val_size else ("train", "test")

    def add_train_rows(self, path: Path) -> int:
        """`train data.extra=FOLDER`: labelled images in `<class>/<image>` folders (the class names: 0-9 for digits,
        Fashion-MNIST's names for clothes), converted as `predict` converts an image, added to the train split."""
        from projects.mnist.predict import parse_digit  # predict imports this module

        images, labels = labelled_images(path, self.class_names, lambda file: parse_digit(file, self.centred_digits))
        pixels = np.round(np.clip(images, 0.0, 1.0) * 255).astype(np.uint8)
        self._images["train"] = np.concatenate([self._images["train"], pixels])
        self._labels["train"] = np.concatenate([self._labels["train"], labels.astype(self._labels["train"].dtype)])
        self._tensors.pop("train", None)
        return len(labels)

    def inputs(self, split: str) -> torch.Tensor:
        if split not in self._tensors:
            self._tensors[split] = normalise(self._images[split])
        return self._tensors[split]

    def targets(self, split: str) -> np.ndarray:
        return self._labels[split].astype(np.int64)

    def images(self, split: str) -> np.ndarray:
        """The raw uint8 N×28×28 images of `split`, as read: what `scripts/robustness.py` degrades."""
        return self._images[split]

    def model_inputs(self, pixels: torch.Tensor) -> torch.Tensor:
        """N×1×28×28 images in [0, 1] normalised with MNIST's statistics, as `inputs` are."""
        return (pixels - MEAN) / STD

    def loader(self, inputs: torch.Tensor, targets: np.ndarray | None = None, train: bool = False) -> DataLoader:
        tensors = (inputs,) if targets is None else (inputs, torch.as_tensor(targets, dtype=torch.long))
        shift, augment = (self.max_shift, self.augment) if train else (0, None)

        def collate(batch: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
            images = batch[0]
            if augment is not None:
                images = ((augment(images * STD + MEAN) - MEAN) / STD).contiguous()
            return [random_shift(images, shift), *batch[1:]]

        return tensor_loader(
            *tensors,
            batch_size=self.batch_size if train else self.eval_batch_size,
            shuffle=train,
            drop_last=train and len(inputs) > self.batch_size,
            collate_fn=collate,
            num_workers=self.num_workers,
        )


class IdxImages(DigitImages):
    """A dataset of four IDX files (train images, train labels, test images, test labels), in that order."""

    folder: ClassVar[str]  # <mirror>/<folder>/ and <cache>/<folder>/
    files: ClassVar[tuple[DataFile, ...]]
    title: ClassVar[str]

    def load(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        found = fetch_files(self.folder, self.files, self.mirror_dir, self.cache_dir)
        arrays = [read_idx(found[file.name]) for file in self.files]
        return arrays[0], arrays[1], arrays[2], arrays[3]

    def describe(self) -> dict[str, object]:
        return {"dataset": self.title, "dataset id": self.dataset_id, **super().describe()}


class Mnist(IdxImages):
    """The real MNIST: 60,000 training and 10,000 test images (LeCun, Cortes & Burges)."""

    dataset_id = folder = "mnist"
    files = MNIST_FILES
    title = "MNIST (LeCun, Cortes & Burges), canonical IDX files"


class FashionMnist(IdxImages):
    """Fashion-MNIST: 60,000 training and 10,000 test images of clothing in 10 classes (Zalando Research)."""

    class_names = (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    )
    dataset_id = "fashion_mnist"
    folder = "fashion-mnist"
    files = FASHION_MNIST_FILES
    title = "Fashion-MNIST (Xiao, Rasul & Vollgraf 2017), canonical IDX files"
    centred_digits = False


def synthetic_digit(label: int) -> np.ndarray:
    """Class `label`'s made-up digit: a bar on the left at a height that encodes the class, its mirror image
    through the centre on the right, and two thin uprights 20 px tall: sized and centred as MNIST's digits are
    (by symmetry), so `predict`'s normalisation keeps it as it is."""
    image = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    start, end = (IMAGE_SIZE - DIGIT_SIDE) // 2, (IMAGE_SIZE + DIGIT_SIDE) // 2
    image[start:end, [start, end - 1]] = 255
    row = start + 2 * label
    image[row : row + 3, start + 2 : IMAGE_SIZE // 2] = 255
    return np.maximum(image, image[::-1, ::-1])


class SyntheticDigits(DigitImages):
    """Tiny made-up digits (each class a pair of bars at its own height, on faint noise) for smoke tests and
    offline trials."""

    dataset_id = "synthetic"

    def __init__(self, train_size: int = 600, test_size: int = 200, seed: int = 0, **options: object) -> None:
        options.setdefault("val_size", 0.2)
        super().__init__(**options)  # type: ignore[arg-type]
        self.train_size = checks.whole(train_size, "data.train_size", example=600)
        self.test_size = checks.whole(test_size, "data.test_size", example=200)
        self.seed = checks.seed(seed, "data.seed")

    def load(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        generator = np.random.default_rng(self.seed)
        digits = np.stack([synthetic_digit(label) for label in range(len(self.class_names))])

        def draw(count: int) -> tuple[np.ndarray, np.ndarray]:
            labels = generator.integers(0, 10, count)
            noise = generator.integers(0, 40, (count, IMAGE_SIZE, IMAGE_SIZE)).astype(np.uint8)
            return np.maximum(noise, digits[labels]), labels.astype(np.uint8)

        train_images, train_labels = draw(self.train_size)
        test_images, test_labels = draw(self.test_size)
        return train_images, train_labels, test_images, test_labels

    def describe(self) -> dict[str, object]:
        return {"dataset": "synthetic digits (for tests)", "dataset id": self.dataset_id, **super().describe()}
