"""Data-file resolution and the data interface every project implements.

A dataset file is looked for, in order, in the offline mirror (`PORTFOLIO_DATA_DIR`, laid out
as `<mirror>/<dataset>/<file>`), in the cache, inside its archive (when it is a member of a zip or
tar file, itself found the same way), and finally downloaded from its canonical sources into the
cache. Every file is checked against its known SHA-256 sums wherever it was found; a member without
sums of its own is vouched for by its archive's. The mirror is read-only: nothing is written there.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tarfile
import urllib.error
import urllib.request
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, open_dict
from torch.utils.data import DataLoader, Dataset, SequentialSampler
from tqdm.auto import tqdm

from shared.errors import DataError, UsageError
from shared.io import atomic_path

log = logging.getLogger(__name__)

OFFLINE_ENV = "PORTFOLIO_OFFLINE"
MIRROR_ENV = "PORTFOLIO_DATA_DIR"


def offline() -> bool:
    """Whether downloads are forbidden (`PORTFOLIO_OFFLINE` set to anything but 0): the tests and CI set it."""
    return os.environ.get(OFFLINE_ENV, "") not in ("", "0")


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset: its name, the SHA-256 sums it may have, and where to get it.

    A file that is a member of a zip or tar archive names that archive (`archive`, itself a `DataFile`)
    and its path inside it (`member`, default: `name`). It is taken from the mirror or cache when it is
    there on its own, else read out of the archive. A member with no sums of its own must come from an
    archive that has some, so something always vouches for its bytes; an archive may go without sums when
    every member it is read for has its own.
    """

    name: str
    sha256: tuple[str, ...] = ()
    urls: tuple[str, ...] = ()
    archive: DataFile | None = None
    member: str | None = None

    def __post_init__(self) -> None:
        if not self.sha256 and self.archive is not None and not self.archive.sha256:
            raise ValueError(f"{self.name}: a member without a sha256 needs an archive with one")

    @property
    def path_in_archive(self) -> str:
        return self.member or self.name


def sha256_of(path: Path) -> str:
    """SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verify(path: Path, file: DataFile, where: str, shown: str | Path | None = None) -> None:
    """Check `path` against `file`'s sums; the error names `shown` (what the user knows it as) or `path`."""
    if not file.sha256:
        return  # a member vouched for by its archive's checksum
    actual = sha256_of(path)
    if actual not in file.sha256:
        raise DataError(
            f"{shown or path} ({where}) is corrupt or not the expected file: sha256 {actual}, "
            f"expected {' or '.join(file.sha256)}.",
            f"replace it with the original {file.name}"
            + (f" from {file.urls[0]}" if file.urls else "")
            + (", or delete it to download it again." if where == "cache" else "."),
        )


def _download(file: DataFile, target: Path) -> bool:
    """Download `file` into `target` from the first source that answers. False if none did."""
    for url in file.urls:
        try:
            with urllib.request.urlopen(url, timeout=30) as response, atomic_path(target) as temporary:
                total = int(response.headers.get("Content-Length") or 0) or None
                with (
                    temporary.open("wb") as out,
                    tqdm(total=total, unit="B", unit_scale=True, desc=f"download {file.name}") as bar,
                ):
                    for chunk in iter(lambda response=response: response.read(1 << 16), b""):
                        out.write(chunk)
                        bar.update(len(chunk))
                _verify(temporary, file, f"downloaded from {url}")
            return True
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            log.warning("could not download %s from %s: %s", file.name, url, error)
        except DataError as error:
            log.warning("%s", error)
    return False


def _extract(archive_path: Path, file: DataFile, target: Path) -> None:
    """Copy `file`'s member out of a zip or tar archive into `target` (atomically), then check it."""
    member = file.path_in_archive
    try:
        with atomic_path(target) as temporary:
            if zipfile.is_zipfile(archive_path):
                with zipfile.ZipFile(archive_path) as archive, archive.open(member) as source:
                    temporary.write_bytes(source.read())
            else:
                with tarfile.open(archive_path) as archive:
                    source = archive.extractfile(member)
                    if source is None:
                        raise KeyError(member)
                    temporary.write_bytes(source.read())
            _verify(temporary, file, f"extracted from {archive_path}", shown=f"member {member}")
    except (KeyError, zipfile.BadZipFile, tarfile.TarError, OSError) as error:
        raise DataError(
            f"{archive_path} has no readable member {member} ({type(error).__name__}: {error}).",
            f"replace it with the original {archive_path.name}, or delete it from the cache to download it again.",
        ) from error


def _locate(file: DataFile, mirror: Path | None, cache: Path) -> Path:
    """Where `file` is, verified: mirror, cache, its archive, or a download. Raises `_Missing` if nowhere."""
    unchecked_member = not file.sha256 and file.archive is not None  # only its archive vouches for it
    if mirror is not None and (mirror / file.name).is_file() and not unchecked_member:
        _verify(mirror / file.name, file, "mirror")
        return mirror / file.name
    # A member without sums of its own is read out of its checked archive again, never taken loose.
    if (cache / file.name).is_file() and not unchecked_member:
        _verify(cache / file.name, file, "cache")
        return cache / file.name
    if file.archive is not None:
        try:
            archive = _locate(file.archive, mirror, cache)
        except _Missing:
            archive = None
        if archive is not None:
            _extract(archive, file, cache / file.name)
            return cache / file.name
    if not offline() and file.urls and _download(file, cache / file.name):
        return cache / file.name
    raise _Missing(file)


class _Missing(Exception):
    def __init__(self, file: DataFile) -> None:
        super().__init__(file.name)
        self.file = file


def fetch_files(
    dataset: str,
    files: Sequence[DataFile],
    mirror_dir: str | Path | None,
    cache_dir: str | Path,
) -> dict[str, Path]:
    """Return a verified local path for each file of `dataset`, reading archives and downloading what is missing.

    Raises `DataError` naming every missing file and both ways to supply it when a file is
    in neither place and cannot be downloaded (no network, or `PORTFOLIO_OFFLINE=1`).
    """
    cache = Path(cache_dir).expanduser() / dataset
    mirror = Path(mirror_dir).expanduser() / dataset if mirror_dir else None
    found: dict[str, Path] = {}
    missing: list[DataFile] = []
    for file in files:
        try:
            found[file.name] = _locate(file, mirror, cache)
        except _Missing:
            missing.append(file)
    if missing:
        names = ", ".join(file.name for file in missing)
        where = f"the mirror {mirror} or " if mirror else ""
        source = next((f.urls[0] for f in (missing[0], missing[0].archive) if f is not None and f.urls), None)
        archive = f" (or its archive {missing[0].archive.name})" if missing[0].archive is not None else ""
        raise DataError(
            f"dataset '{dataset}': {names} not found in {where}the cache {cache}"
            + (" and downloads are off (PORTFOLIO_OFFLINE)." if offline() else " and could not be downloaded."),
            f"either put the files{archive} in a mirror folder as <mirror>/{dataset}/<file> and set "
            f"{MIRROR_ENV}=<mirror> (or paths.mirror_dir=<mirror>), or run once with network access "
            f"so they download into the cache ({source or 'no public source'}).",
        )
    return found


def holdout_indices(count: int, holdout: int | float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split `range(count)` into (kept, held-out) index arrays, reproducibly for a given seed.

    `holdout` is a count, or a fraction when below 1. Both parts must be non-empty: the error says which is not.
    """
    size = round(holdout * count) if holdout < 1 else int(holdout)
    if holdout <= 0:
        raise DataError(
            f"a held-out size of {holdout} holds out no examples: no validation split is not supported by this data.",
            "use a positive size: a fraction below 1 (0.1) or a count of examples (100).",
        )
    if not 0 < size < count:
        smallest = max(2, int(0.5 / holdout)) if holdout < 1 else int(holdout) + 1
        needed = next(n for n in range(smallest, 1 << 62) if 0 < (round(holdout * n) if holdout < 1 else holdout) < n)
        raise DataError(
            f"cannot hold out {holdout} of {count} examples: both parts need at least one.",
            f"holding out {holdout} needs at least {needed} examples: give more data"
            + (", or hold out fewer." if size >= count and count > 1 else "."),
        )
    order = np.random.default_rng(seed).permutation(count)
    return np.sort(order[size:]), np.sort(order[:size])


class IndexedBatches(Dataset):
    """A dataset that makes whole batches from their indices (`make_batch(indices)`), instead of one row at a time:
    on a CPU, collating rows one by one costs more than training a small network on them. Batches may be
    tuples of tensors or dicts of named tensors, with per-batch extras (a random negative item) made on demand."""

    def __init__(self, length: int, make_batch: Callable[[torch.Tensor], Any]) -> None:
        self.length, self.make_batch = length, make_batch

    def __len__(self) -> int:
        return self.length

    def __getitems__(self, indices: list[int]) -> Any:
        return self.make_batch(torch.as_tensor(indices))


def _as_made(batch: Any) -> Any:
    """The DataLoader's collate step for `IndexedBatches`: the batch is whole already."""
    return batch


def batch_loader(
    length: int,
    make_batch: Callable[[torch.Tensor], Any],
    batch_size: int,
    shuffle: bool = False,
    drop_last: bool = False,
    num_workers: int = 0,
) -> DataLoader:
    """A DataLoader whose batches `make_batch` builds from a tensor of indices (see `IndexedBatches`).

    A standard DataLoader, so Lightning can still swap in a DistributedSampler under DDP.
    """
    return DataLoader(
        IndexedBatches(length, make_batch),
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        collate_fn=_as_made,
        num_workers=num_workers,
    )


def inference_batches(loader: Any) -> Iterator[Any]:
    """The batches of an inference `loader` (in order, unshuffled), as iterating it would give them.

    A `batch_loader` one is read straight from its dataset: a DataLoader's iterator (its sampler, fetcher and
    profiler hooks) is built on every pass, and on a served MNIST digit it cost about a tenth of the whole answer
    (README, "Deploying a model"). Any other loader (shuffled, dropping its last batch, with workers) is iterated.
    """
    dataset = loader.dataset if isinstance(loader, DataLoader) else None
    if (
        isinstance(dataset, IndexedBatches)
        and isinstance(loader.sampler, SequentialSampler)
        and loader.num_workers == 0
        and not loader.drop_last
        and loader.batch_size
    ):
        for start in range(0, len(dataset), loader.batch_size):
            yield dataset.make_batch(torch.arange(start, min(start + loader.batch_size, len(dataset))))
        return
    yield from loader


def tensor_loader(
    *tensors: torch.Tensor,
    batch_size: int,
    shuffle: bool = False,
    drop_last: bool = False,
    collate_fn: Callable[[list[torch.Tensor]], Any] | None = None,
    num_workers: int = 0,
) -> DataLoader:
    """A DataLoader over in-memory tensors, batched by slicing; `collate_fn` gets the list of batch tensors."""

    def make_batch(indices: torch.Tensor) -> Any:
        batch = [tensor[indices] for tensor in tensors]
        return collate_fn(batch) if collate_fn else batch

    return batch_loader(len(tensors[0]), make_batch, batch_size, shuffle, drop_last, num_workers)


class ProjectData(ABC):
    """A project's data as the core sees it: named splits, each a pair of inputs and targets.

    `inputs` are whatever the project's models consume (a tensor, a DataFrame, a list of
    strings); `targets` are a NumPy array. Lightning models also need `loader`. Loading and
    validation happen in `prepare`, which the core calls once before anything else.
    """

    # `train` is fitted on; every other split is evaluated after training. Data without a `val`
    # split (model selection by cross-validation on train) lists ("train", "test").
    splits: tuple[str, ...] = ("train", "val", "test")

    def __init__(self, mirror_dir: str | None = None, cache_dir: str = "~/.cache/ml-portfolio") -> None:
        self.mirror_dir = mirror_dir
        self.cache_dir = cache_dir

    @abstractmethod
    def prepare(self) -> None:
        """Find, verify, load and split the data."""

    @abstractmethod
    def inputs(self, split: str) -> Any:
        """The model inputs of `split`."""

    @abstractmethod
    def targets(self, split: str) -> np.ndarray:
        """The targets of `split`."""

    def loader(self, inputs: Any, targets: np.ndarray | None = None, train: bool = False) -> Any:
        """A torch DataLoader over `inputs` (and `targets`), for Lightning models."""
        raise NotImplementedError(f"{type(self).__name__} has no loader: it serves scikit-learn models only")

    def add_train_rows(self, path: Path) -> int:
        """Append the labelled rows of `path` (in the project's own input format, with the target) to the train split,
        after `prepare`; returns how many. `train data.extra=FILE` calls it: refitting on old plus new data."""
        raise UsageError(
            f"{type(self).__name__} takes no extra training rows (data.extra={path}).",
            "drop data.extra=, or train on a data source that has the new rows.",
        )

    def describe(self) -> dict[str, Any]:
        """Facts for the model card: the source and the size of each split."""
        return {f"{split} examples": len(self.targets(split)) for split in self.splits}


class ImageSplits(ProjectData):
    """Data whose splits are images kept as uint8 pixels, with the map from [0, 1] pixels to its models' inputs.

    What another project may read of this data through a loaded run (`load_run(...).data`), without importing the
    project that owns it: the GAN learns its judge's images, and feeds its samples to the judge as the judge's
    own images were fed."""

    class_names: tuple[str, ...]
    dataset_id: str  # which dataset this is, recorded in metrics.json (`data.dataset id`)

    @abstractmethod
    def images(self, split: str) -> np.ndarray:
        """The uint8 images of a prepared split, N×H×W (grey) or N×H×W×C, as read."""

    @abstractmethod
    def model_inputs(self, pixels: torch.Tensor) -> torch.Tensor:
        """N×C×H×W float images in [0, 1] as the models of this data take them (normalised)."""


EXTRA_ROWS_KEY = "extra"  # `data.extra=FILE`: the core's key in a data config, never passed to the data's constructor


def data_options(node: DictConfig) -> DictConfig:
    """A data config without the core's own keys (`extra`), as the data class's constructor takes it."""
    if EXTRA_ROWS_KEY not in node:
        return node
    trimmed = node.copy()
    with open_dict(trimmed):
        del trimmed[EXTRA_ROWS_KEY]
    return trimmed
