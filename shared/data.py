"""Data-file resolution and the data interface every project implements.

A dataset file is looked for, in order, in the offline mirror (`PORTFOLIO_DATA_DIR`, laid out
as `<mirror>/<dataset>/<file>`), in the cache, and finally downloaded from its canonical
sources into the cache. Every file is checked against its known SHA-256 sums wherever it was
found. The mirror is treated as read-only: nothing is ever written there.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from shared.errors import DataError
from shared.io import atomic_path

log = logging.getLogger(__name__)

OFFLINE_ENV = "PORTFOLIO_OFFLINE"
MIRROR_ENV = "PORTFOLIO_DATA_DIR"


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset: its name, the SHA-256 sums it may have, and where to download it."""

    name: str
    sha256: tuple[str, ...]
    urls: tuple[str, ...] = ()


def sha256_of(path: Path) -> str:
    """SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verify(path: Path, file: DataFile, where: str) -> None:
    actual = sha256_of(path)
    if actual not in file.sha256:
        raise DataError(
            f"{path} ({where}) is corrupt or not the expected file: sha256 {actual}, "
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


def fetch_files(
    dataset: str,
    files: Sequence[DataFile],
    mirror_dir: str | Path | None,
    cache_dir: str | Path,
) -> dict[str, Path]:
    """Return a verified local path for each file of `dataset`, downloading what is missing.

    Raises `DataError` naming every missing file and both ways to supply it when a file is
    in neither place and cannot be downloaded (no network, or `PORTFOLIO_OFFLINE=1`).
    """
    cache = Path(cache_dir).expanduser() / dataset
    mirror = Path(mirror_dir).expanduser() / dataset if mirror_dir else None
    offline = os.environ.get(OFFLINE_ENV, "") not in ("", "0")
    found: dict[str, Path] = {}
    missing: list[DataFile] = []
    for file in files:
        if mirror is not None and (mirror / file.name).is_file():
            _verify(mirror / file.name, file, "mirror")
            found[file.name] = mirror / file.name
        elif (cache / file.name).is_file():
            _verify(cache / file.name, file, "cache")
            found[file.name] = cache / file.name
        elif not offline and file.urls and _download(file, cache / file.name):
            found[file.name] = cache / file.name
        else:
            missing.append(file)
    if missing:
        names = ", ".join(file.name for file in missing)
        where = f"the mirror {mirror} or " if mirror else ""
        raise DataError(
            f"dataset '{dataset}': {names} not found in {where}the cache {cache}"
            + (" and downloads are off (PORTFOLIO_OFFLINE)." if offline else " and could not be downloaded."),
            f"either put the files in a mirror folder as <mirror>/{dataset}/<file> and set "
            f"{MIRROR_ENV}=<mirror> (or paths.mirror_dir=<mirror>), or run once with network access "
            f"so they download into the cache ({missing[0].urls[0] if missing[0].urls else 'no public source'}).",
        )
    return found


def holdout_indices(count: int, holdout: int | float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split `range(count)` into (kept, held-out) index arrays, reproducibly for a given seed.

    `holdout` is a count, or a fraction when below 1.
    """
    size = round(holdout * count) if holdout < 1 else int(holdout)
    if not 0 < size < count:
        raise DataError(f"cannot hold out {holdout} of {count} examples.", "choose a smaller validation size.")
    order = np.random.default_rng(seed).permutation(count)
    return np.sort(order[size:]), np.sort(order[:size])


class SlicedTensors(TensorDataset):
    """A TensorDataset that hands the DataLoader whole batches by slicing, not one row at a time: on a CPU,
    collating rows one by one costs more than training a small network on them."""

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, ...]:
        return tuple(tensor[indices] for tensor in self.tensors)


def tensor_loader(
    *tensors: torch.Tensor,
    batch_size: int,
    shuffle: bool = False,
    drop_last: bool = False,
    collate_fn: Any = None,
    num_workers: int = 0,
) -> DataLoader:
    """A DataLoader over in-memory tensors, batched by slicing. `collate_fn` gets the tuple of batch tensors.

    A standard DataLoader, so Lightning can still swap in a DistributedSampler under DDP.
    """
    return DataLoader(
        SlicedTensors(*tensors),
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        collate_fn=collate_fn or list,
        num_workers=num_workers,
    )


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

    def describe(self) -> dict[str, Any]:
        """Facts for the model card: the source and the size of each split."""
        return {f"{split} examples": len(self.targets(split)) for split in self.splits}
