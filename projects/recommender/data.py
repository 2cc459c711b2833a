"""Interaction data: MovieLens or any ratings file, validated, indexed and split by one of two protocols.

* `rating`: predict held-out ratings. MovieLens 100k uses its official folds `u1`..`u5` (`fold=k`), so
  RMSE and MAE compare with scikit-surprise and the literature; other data get a seeded 80/20 split.
* `ranking`: every interaction counts as relevant (ratings are ignored, so implicit data works); each
  user's interactions are split 75/25 at random (Microsoft recommenders' stratified split) and the model
  ranks the items the user has no known interaction with.

In both, a validation split is carved from the training part (a small random share, per user for
ranking) for checkpoint selection; the test part is only read by the final evaluation.
"""

from __future__ import annotations

import logging
import os
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import sparse
from torch.utils.data import DataLoader, Dataset

from shared.data import OFFLINE_ENV, DataFile, ProjectData, fetch_files
from shared.errors import DataError
from shared.io import atomic_path

log = logging.getLogger(__name__)

RATING, RANKING = "rating", "ranking"
PROTOCOLS = (RATING, RANKING)
# Column spellings recognised without configuration, most specific first.
USER_COLUMNS = ("userId", "user_id", "user", "userid", "UserID")
ITEM_COLUMNS = ("movieId", "item_id", "item", "itemId", "movie_id", "itemid", "MovieID")
RATING_COLUMNS = ("rating", "Rating", "score")
TIME_COLUMNS = ("timestamp", "Timestamp", "time")
TITLE_COLUMNS = ("title", "Title", "name")

ML100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
# MovieLens 1M has no mirror here: GroupLens' zip itself is the checked file (md5 c4d9eecfca2ab87c1945afe126590906).
ML1M_ZIP = DataFile(
    "ml-1m.zip",
    sha256=("a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",),
    urls=("https://files.grouplens.org/datasets/movielens/ml-1m.zip",),
)
ML100K_SHA256 = {
    "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
    "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
    **{
        f"u{fold}.{part}": digest
        for fold, part, digest in (
            (1, "base", "ce253ec86c448b44fb3ba9a30d12dcfc2e9210cbde71efada3730c22e9ac212a"),
            (1, "test", "18c6014a4b2c7324f250a63f8904a7b16b2b19f911129e346141507b0cbac950"),
            (2, "base", "6c06f0b5df4b256da1a994f3ac66edc8da4d3f09bc9282df6b14d893366d703e"),
            (2, "test", "4de658d1e04ed9104629509a2e2528fce833ac8e048280183f1df167632038c3"),
            (3, "base", "afdc155c291c6edc41c0407e39d7462eb98d341e064f0b0a12175b80b3c4af5d"),
            (3, "test", "0f548b51c78327de4c156461d3e430b7e5579fe2b5681586a59416e48fd35f6d"),
            (4, "base", "219f0f4d40dfe9c5141d425f53fa91ee23ed275f14e280bbf1b50117afb064ca"),
            (4, "test", "7c02ad0a1e7ab1083c8b9d4b627203a051dd7b5eab46d99fa44de33470de8db9"),
            (5, "base", "a9574e59ce961eec2121627760b6e9b0974ce1637b3fe69ac32cb14a4bfab485"),
            (5, "test", "351cc52e0d15b6c721466276fc24671d40936899e3d01fadeaf312915b8c5634"),
        )
    },
}


@dataclass
class Loaded:
    """What a source hands over: interactions (`user`, `item`, optional `rating`, `timestamp`), optional
    titles indexed by raw item id, and optionally which rows form an official test split."""

    frame: pd.DataFrame
    titles: pd.Series | None = None
    official_test: np.ndarray | None = None  # boolean mask over `frame`
    rating_scale: tuple[float, float] | None = None


class Batches(Dataset):
    """Named tensors served whole batches at a time (by slicing), with per-batch extras computed on demand."""

    def __init__(self, length: int, make: Any) -> None:
        self.length, self.make = length, make

    def __len__(self) -> int:
        return self.length

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        return self.make(torch.as_tensor(indices))


def _as_batch(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return batch


class Interactions(ProjectData):
    """Users, items and their interactions in train/val/test splits under the `rating` or `ranking` protocol."""

    def __init__(
        self,
        mirror_dir: str | None = None,
        cache_dir: str = "~/.cache/ml-portfolio",
        protocol: str = RATING,
        val_fraction: float = 0.05,
        test_fraction: float = 0.25,
        split_seed: int = 0,
        duplicates: str = "last",
        batch_size: int = 1024,
        eval_batch_size: int = 512,
    ) -> None:
        super().__init__(mirror_dir, cache_dir)
        if protocol not in PROTOCOLS:
            raise DataError(f"unknown protocol '{protocol}'.", f"choose one of {', '.join(PROTOCOLS)}.")
        if duplicates not in ("last", "error"):
            raise DataError(f"data.duplicates={duplicates} is not 'last' or 'error'.", "use last or error.")
        self.protocol, self.val_fraction, self.test_fraction = protocol, val_fraction, test_fraction
        self.split_seed, self.duplicates = split_seed, duplicates
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.titles: pd.Series | None = None
        self.rating_scale: tuple[float, float] = (1.0, 5.0)
        self._pairs: dict[str, np.ndarray] = {}
        self._ratings: dict[str, np.ndarray] = {}

    # --- loading ----------------------------------------------------------------------------------
    def load(self) -> Loaded:
        """The interactions of this source."""
        raise NotImplementedError

    def prepare(self) -> None:
        loaded = self.load()
        frame = self._validate(loaded)
        self.user_ids = np.asarray(pd.unique(frame["user"]))
        known_items = (
            frame["item"] if loaded.titles is None else pd.concat([frame["item"], loaded.titles.index.to_series()])
        )
        self.item_ids = np.asarray(pd.unique(known_items))
        self.user_index = {str(raw): index for index, raw in enumerate(self.user_ids)}
        self.item_index = {str(raw): index for index, raw in enumerate(self.item_ids)}
        self.titles = loaded.titles
        pairs = np.column_stack(
            [
                pd.Index(self.user_ids).get_indexer(frame["user"]),
                pd.Index(self.item_ids).get_indexer(frame["item"]),
            ]
        ).astype(np.int64)
        ratings = frame["rating"].to_numpy(np.float32) if "rating" in frame else np.ones(len(frame), np.float32)
        split = self._split(pairs, loaded.official_test)
        for name in self.splits:
            self._pairs[name], self._ratings[name] = pairs[split == name], ratings[split == name]
        self._history = self._matrix("train")
        self._known = self._history + self._matrix("val")
        self.item_popularity = np.asarray(self._history.sum(axis=0)).ravel()
        self._history_dense = torch.from_numpy(self._history.toarray().astype(np.float32))

    def _validate(self, loaded: Loaded) -> pd.DataFrame:
        frame = loaded.frame
        if frame.empty:
            raise DataError(f"{self.describe_source()} holds no interactions.", "point data at a non-empty file.")
        for column in ("user", "item"):
            if frame[column].isna().any():
                rows = np.flatnonzero(frame[column].isna().to_numpy())[:5]
                raise DataError(
                    f"{frame[column].isna().sum()} interactions have no {column} (rows {list(rows)}).",
                    f"fill in or drop those rows of {self.describe_source()}.",
                )
        if "rating" in frame:
            values = pd.to_numeric(frame["rating"], errors="coerce")
            if values.isna().any():
                rows = np.flatnonzero(values.isna().to_numpy())[:5]
                raise DataError(
                    f"{values.isna().sum()} ratings are missing or not numbers (rows {list(rows)}).",
                    "fix those rows, or drop the rating column for implicit (ranking-only) data.",
                )
            frame = frame.assign(rating=values.astype(np.float32))
            low, high = loaded.rating_scale or (float(values.min()), float(values.max()))
            outside = (values < low) | (values > high)
            if outside.any():
                raise DataError(
                    f"{outside.sum()} ratings fall outside the scale {low:g}..{high:g} "
                    f"(e.g. {values[outside].iloc[0]:g} at row {np.flatnonzero(outside.to_numpy())[0]}).",
                    "fix those rows, or set data.rating_scale=[low,high] to the file's real scale.",
                )
            self.rating_scale = (float(low), float(high))
        elif self.protocol == RATING:
            raise DataError(
                f"{self.describe_source()} has no rating column: implicit data cannot be rated.",
                "use protocol=ranking (popularity, bpr, two_tower, item_item), or name the "
                "column with data.rating_column=...",
            )
        duplicated = frame.duplicated(["user", "item"], keep="last")
        if duplicated.any():
            if self.duplicates == "error":
                first = frame[duplicated].iloc[0]
                raise DataError(
                    f"{duplicated.sum()} (user, item) pairs occur more than once "
                    f"(e.g. user {first['user']}, item {first['item']}).",
                    "deduplicate the file, or set data.duplicates=last to keep each pair's latest row.",
                )
            order = frame.sort_values("timestamp", kind="stable") if "timestamp" in frame else frame
            frame = order.drop_duplicates(["user", "item"], keep="last").sort_index()
            log.warning("kept the latest of each repeated (user, item) pair: %d rows dropped", duplicated.sum())
        return frame.reset_index(drop=True)

    # --- splitting --------------------------------------------------------------------------------
    def _split(self, pairs: np.ndarray, official_test: np.ndarray | None) -> np.ndarray:
        """'train', 'val' or 'test' per interaction."""
        rng = np.random.default_rng(self.split_seed)
        split = np.full(len(pairs), "train", dtype=object)
        if self.protocol == RATING:
            if official_test is not None:
                split[official_test] = "test"
            else:
                split[rng.random(len(pairs)) < 0.2] = "test"
            train = np.flatnonzero(split == "train")
            split[rng.choice(train, round(self.val_fraction * len(train)), replace=False)] = "val"
            return split
        # ranking: per user, a random test_fraction to test, then val_fraction of the rest to val;
        # every user keeps at least one training interaction, so no user is lost.
        order = rng.permutation(len(pairs))
        users = pairs[order, 0]
        order = order[np.argsort(users, kind="stable")]
        counts = np.bincount(pairs[:, 0])
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rank = np.arange(len(pairs)) - np.repeat(starts, counts)  # position within its user's shuffled list
        size = np.repeat(counts, counts)
        n_train = np.floor(size * (1 - self.test_fraction) + 0.5).clip(min=1)
        n_val = np.floor(n_train * self.val_fraction).clip(max=n_train - 1)
        labels = np.where(rank < n_train - n_val, "train", np.where(rank < n_train, "val", "test"))
        split[order] = labels
        return split

    def _matrix(self, split: str) -> sparse.csr_matrix:
        pairs = self._pairs[split]
        values = np.ones(len(pairs), np.float32)
        return sparse.csr_matrix((values, (pairs[:, 0], pairs[:, 1])), shape=(self.n_users, self.n_items))

    # --- the core's interface -----------------------------------------------------------------------
    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def inputs(self, split: str) -> np.ndarray:
        """Rating: (user, item) index pairs. Ranking: the users with at least one interaction in `split`."""
        if self.protocol == RATING or split == "train":
            return self._pairs[split]
        return np.unique(self._pairs[split][:, 0])

    def targets(self, split: str) -> np.ndarray:
        """Rating: the ratings. Ranking: per user of `inputs`, +1 for relevant items, -1 for items already
        known (train, and val when scoring test) that may not be recommended, 0 for the candidates."""
        if self.protocol == RATING or split == "train":
            return self._ratings[split]
        users = self.inputs(split)
        known = (self._history if split == "val" else self._known)[users].toarray() > 0
        relevant = self._matrix(split)[users].toarray() > 0
        return relevant.astype(np.int8) - known.astype(np.int8)

    def history(self, users: np.ndarray) -> np.ndarray:
        """The train items of each user, as 0/1 rows (what recommendations must exclude and build on)."""
        return self._history_dense[torch.as_tensor(users)].numpy()

    def loader(self, inputs: np.ndarray, targets: np.ndarray | None = None, train: bool = False) -> DataLoader:
        inputs_tensor = torch.as_tensor(inputs)
        target_tensor = None if targets is None else torch.as_tensor(targets)
        history = self._history_dense

        def make(index: torch.Tensor) -> dict[str, torch.Tensor]:
            if inputs_tensor.dim() == 1:  # users to rank for
                users = inputs_tensor[index]
                batch = {"user": users, "history": history[users]}
                if target_tensor is not None:
                    batch["relevant"] = (target_tensor[index] > 0).float()
                return batch
            users, items = inputs_tensor[index, 0], inputs_tensor[index, 1]
            batch = {"user": users, "item": items}
            if target_tensor is not None:
                batch["rating"] = target_tensor[index].float()
            if train and self.protocol == RANKING:  # a random item per positive, for pairwise losses
                batch["negative"] = torch.randint(0, self.n_items, (len(index),))
                batch["history"] = history[users]
            return batch

        return DataLoader(
            Batches(len(inputs_tensor), make),
            batch_size=self.batch_size if train else self.eval_batch_size,
            shuffle=train,
            collate_fn=_as_batch,
        )

    def describe_source(self) -> str:
        return type(self).__name__

    def describe(self) -> dict[str, Any]:
        return {
            "dataset": self.describe_source(),
            "protocol": self.protocol,
            "users": self.n_users,
            "items": self.n_items,
            **{f"{split} interactions": len(self._pairs[split]) for split in self.splits},
        }

    def title(self, item: int) -> str:
        """A readable name of an item index: its title when known, else its raw id."""
        raw = self.item_ids[item]
        if self.titles is not None and raw in self.titles.index:
            return str(self.titles[raw])
        return f"item {raw}"


# --- sources -----------------------------------------------------------------------------------------
def _fetch_movielens_100k(names: list[str], mirror_dir: str | None, cache_dir: str) -> dict[str, Path]:
    """The files of ml-100k: from the mirror or cache, else GroupLens' zip downloaded and unpacked into the
    cache. Every file is checked against its SHA-256 wherever it came from."""
    files = [DataFile(name, sha256=(ML100K_SHA256[name],)) for name in names]
    try:
        return fetch_files("movielens-100k", files, mirror_dir, cache_dir)
    except DataError:
        if os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
            raise
    cache = Path(cache_dir).expanduser() / "movielens-100k"
    try:
        with atomic_path(cache / "ml-100k.zip") as archive:
            urllib.request.urlretrieve(ML100K_URL, archive)
            with zipfile.ZipFile(archive) as unpacked:
                for name in names:
                    (cache / name).write_bytes(unpacked.read(f"ml-100k/{name}"))
    except (urllib.error.URLError, OSError, zipfile.BadZipFile, KeyError) as error:
        log.warning("could not download %s: %s", ML100K_URL, error)
    return fetch_files("movielens-100k", files, mirror_dir, cache_dir)


def _read_ml100k(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", names=["user", "item", "rating", "timestamp"], dtype=np.int64)


class MovieLens100k(Interactions):
    """MovieLens 100k (GroupLens, 1998): 100,000 ratings 1..5 of 1,682 movies by 943 users."""

    def __init__(self, fold: int = 1, **options: Any) -> None:
        super().__init__(**options)
        if fold not in range(1, 6):
            raise DataError(f"data.fold={fold}: MovieLens 100k has the folds 1..5.", "choose data.fold=1..5.")
        self.fold = fold

    def load(self) -> Loaded:
        names = [f"u{self.fold}.base", f"u{self.fold}.test", "u.item"]
        files = _fetch_movielens_100k(names, self.mirror_dir, self.cache_dir)
        base, test = _read_ml100k(files[names[0]]), _read_ml100k(files[names[1]])
        items = pd.read_csv(files["u.item"], sep="|", header=None, encoding="latin-1")
        titles = pd.Series(items[1].to_numpy(), index=items[0].to_numpy(), name="title")
        frame = pd.concat([base, test], ignore_index=True)
        official = np.arange(len(frame)) >= len(base)
        return Loaded(frame, titles, official if self.protocol == RATING else None, (1.0, 5.0))

    def describe_source(self) -> str:
        return f"MovieLens 100k (fold u{self.fold})" if self.protocol == RATING else "MovieLens 100k"


class MovieLens1M(Interactions):
    """MovieLens 1M (GroupLens, 2003): 1,000,209 ratings 1..5 of 3,706 movies by 6,040 users.

    No official folds: the rating protocol takes a seeded 80/20 split. Read straight from the checked zip
    (`<mirror>/movielens-1m/ml-1m.zip`, the cache, or GroupLens)."""

    def load(self) -> Loaded:
        archive_path = fetch_files("movielens-1m", [ML1M_ZIP], self.mirror_dir, self.cache_dir)[ML1M_ZIP.name]
        try:
            with zipfile.ZipFile(archive_path) as archive:
                ratings = archive.read("ml-1m/ratings.dat").decode("latin-1")
                movies = archive.read("ml-1m/movies.dat").decode("latin-1")
        except (zipfile.BadZipFile, KeyError) as error:
            raise DataError(f"{archive_path} is not GroupLens' ml-1m.zip ({error}).", "replace it.") from error
        frame = pd.DataFrame(
            [line.split("::") for line in ratings.splitlines() if line],
            columns=["user", "item", "rating", "timestamp"],
        ).astype(np.int64)
        rows = [line.split("::") for line in movies.splitlines() if line]
        titles = pd.Series([row[1] for row in rows], index=[int(row[0]) for row in rows], name="title")
        return Loaded(frame, titles, None, (1.0, 5.0))

    def describe_source(self) -> str:
        return "MovieLens 1M"


def _column(
    frame: pd.DataFrame, configured: str | None, spellings: tuple[str, ...], what: str, required: bool, path: Path
) -> str | None:
    if configured:
        if configured not in frame.columns:
            raise DataError(
                f"{path} has no column '{configured}' (columns: {', '.join(map(str, frame.columns))}).",
                f"set data.{what}_column to one of them.",
            )
        return configured
    found = next((name for name in spellings if name in frame.columns), None)
    if found is None and required:
        raise DataError(
            f"{path} has no {what} column (looked for {', '.join(spellings)}; "
            f"it has {', '.join(map(str, frame.columns))}).",
            f"name it with data.{what}_column=...",
        )
    return found


class RatingsCsv(Interactions):
    """Any interactions file (CSV or TSV): user, item, optional rating and timestamp columns, found by their
    common spellings unless named; titles from a second file (`items_path`) when given."""

    def __init__(
        self,
        path: str | None = None,
        items_path: str | None = None,
        user_column: str | None = None,
        item_column: str | None = None,
        rating_column: str | None = None,
        timestamp_column: str | None = None,
        title_column: str | None = None,
        rating_scale: tuple[float, float] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.path, self.items_path = path, items_path
        self.columns = {
            "user": user_column,
            "item": item_column,
            "rating": rating_column,
            "timestamp": timestamp_column,
            "title": title_column,
        }
        self.configured_scale = tuple(rating_scale) if rating_scale else None

    def _read(self, path: Path) -> pd.DataFrame:
        if not path.is_file():
            raise DataError(f"{path} does not exist.", "pass data.path=<your interactions .csv>.")
        try:
            return pd.read_csv(path, sep=None, engine="python")
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as error:
            raise DataError(
                f"{path} is not a readable CSV/TSV file ({error}).", "save it as CSV with a header."
            ) from error

    def load(self) -> Loaded:
        if not self.path:
            raise DataError("data=ratings_csv needs a file.", "pass data.path=<interactions .csv>.")
        path = Path(self.path).expanduser()
        raw = self._read(path)
        names = {
            "user": _column(raw, self.columns["user"], USER_COLUMNS, "user", True, path),
            "item": _column(raw, self.columns["item"], ITEM_COLUMNS, "item", True, path),
            "rating": _column(raw, self.columns["rating"], RATING_COLUMNS, "rating", False, path),
            "timestamp": _column(raw, self.columns["timestamp"], TIME_COLUMNS, "timestamp", False, path),
        }
        frame = pd.DataFrame({key: raw[name] for key, name in names.items() if name})
        titles = None
        if self.items_path:
            items_file = Path(self.items_path).expanduser()
            items = self._read(items_file)
            item_column = _column(items, self.columns["item"], ITEM_COLUMNS, "item", True, items_file)
            title_column = _column(items, self.columns["title"], TITLE_COLUMNS, "title", True, items_file)
            titles = pd.Series(items[title_column].to_numpy(), index=items[item_column].to_numpy(), name="title")
        return Loaded(frame, titles, None, self.configured_scale)

    def describe_source(self) -> str:
        return str(self.path)


class SyntheticInteractions(Interactions):
    """Made-up users and items in `groups` taste groups: users interact mostly with (and rate highly) their own
    group's items, and every other user rates higher. A planted structure every model must recover; runs the
    pipeline offline in seconds."""

    def __init__(
        self, n_users: int = 200, n_items: int = 100, groups: int = 4, per_user: int = 24, seed: int = 0, **options: Any
    ) -> None:
        options.setdefault("val_fraction", 0.1)
        super().__init__(**options)
        self.sizes, self.groups, self.per_user, self.seed = (n_users, n_items), groups, per_user, seed

    def load(self) -> Loaded:
        rng = np.random.default_rng(self.seed)
        n_users, n_items = self.sizes
        user_group, item_group = np.arange(n_users) % self.groups, np.arange(n_items) % self.groups
        popularity = rng.uniform(0.5, 1.5, n_items)  # some items more popular inside their group
        rows = []
        for user in range(n_users):
            own = item_group == user_group[user]
            weights = popularity * np.where(own, 9.0, 1.0)
            items = rng.choice(n_items, self.per_user, replace=False, p=weights / weights.sum())
            ratings = np.where(own[items], rng.choice([4, 5], len(items)), rng.choice([1, 2], len(items)))
            ratings = np.minimum(ratings + (user % 2), 5)  # every other user rates one star more generously
            rows += [(user + 1, item + 1, rating) for item, rating in zip(items, ratings, strict=True)]
        frame = pd.DataFrame(rows, columns=["user", "item", "rating"])
        titles = pd.Series(
            [f"movie {i + 1} (group {g})" for i, g in enumerate(item_group)], index=np.arange(1, n_items + 1)
        )
        return Loaded(frame, titles, None, (1.0, 5.0))

    def describe_source(self) -> str:
        return "synthetic taste groups"
