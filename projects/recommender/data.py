"""Interaction data: MovieLens or any ratings file, validated, indexed and split by one of two protocols.

* `rating`: predict held-out ratings. MovieLens 100k uses its official folds `u1`..`u5` (`fold=k`), so
  RMSE and MAE compare with scikit-surprise and the literature; other data get a seeded 80/20 split.
* `ranking`: every interaction counts as relevant (ratings are ignored, so implicit data works); each
  user's interactions are split 75/25 at random (Microsoft recommenders' stratified split) and the model
  ranks the items the user has no known interaction with.

In both, a validation split is carved from the training part (a small random share, per user for
ranking) for checkpoint selection; the test part is only read by the final evaluation. Where the
interactions come from (MovieLens, a ratings file, synthetic taste groups) is `sources.py`.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import sparse
from torch.utils.data import DataLoader

from shared import checks
from shared.data import ProjectData, batch_loader
from shared.errors import DataError, UsageError

log = logging.getLogger(__name__)

RATING, RANKING = "rating", "ranking"
PROTOCOLS = (RATING, RANKING)
MAX_UNSCALED_RATING = 1000.0  # beyond 1-5, 1-10, 0-100 and every other scale in use: a file error, not a rating


@dataclass
class SourceInteractions:
    """What a source (`projects.recommender.sources`) hands over: interactions (`user`, `item`, optional
    `rating`, `timestamp`), optional titles indexed by raw item id, and optionally which rows form an
    official test split."""

    frame: pd.DataFrame
    titles: pd.Series | None = None
    official_test: np.ndarray | None = None  # boolean mask over `frame`
    rating_scale: tuple[float, float] | None = None


def _plausible(ratings: pd.Series, source: str) -> None:
    """Ratings with no scale configured: refused when non-finite or beyond any rating scale in use (1e30 is a
    broken export, not a rating), since the observed range would otherwise become the scale and train on it."""
    implausible = ~np.isfinite(ratings) | (ratings.abs() > MAX_UNSCALED_RATING)
    if implausible.any():
        row = int(np.flatnonzero(implausible.to_numpy())[0])
        raise DataError(
            f"{implausible.sum()} ratings in {source} are not plausible ratings (e.g. {ratings.iloc[row]:g} at row "
            f"{row}; without data.rating_scale, ratings must be finite and within ±{MAX_UNSCALED_RATING:g}).",
            "fix those rows, or set data.rating_scale=[low,high] to the file's real scale.",
        )


def check_scale(scale: Any) -> tuple[float, float] | None:
    """`data.rating_scale` as (low, high): two finite numbers, low below high; None when not set."""
    if scale is None:
        return None
    values = [scale] if isinstance(scale, str | int | float) else list(scale)  # a list, a tuple, a ListConfig
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v)]
    if len(values) != 2 or len(numbers) != 2 or not numbers[0] < numbers[1]:
        raise UsageError(
            f"data.rating_scale={scale} is not a [low, high] pair of finite numbers with low < high.",
            "set it to the file's scale, e.g. data.rating_scale=[1,5], or null to take the observed range.",
        )
    return float(numbers[0]), float(numbers[1])


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
        self.protocol, self.duplicates = protocol, duplicates
        self.val_fraction = checks.fraction(val_fraction, "data.val_fraction", 0.05, zero=True)
        self.test_fraction = checks.fraction(test_fraction, "data.test_fraction", 0.25)
        self.split_seed = checks.seed(split_seed, "data.split_seed")
        self.batch_size = checks.whole(batch_size, "data.batch_size", example=1024)
        self.eval_batch_size = checks.whole(eval_batch_size, "data.eval_batch_size", example=512)
        self.titles: pd.Series | None = None
        self.rating_scale: tuple[float, float] = (1.0, 5.0)
        self._pairs: dict[str, np.ndarray] = {}
        self._ratings: dict[str, np.ndarray] = {}

    # --- loading ----------------------------------------------------------------------------------
    @abstractmethod
    def load(self) -> SourceInteractions:
        """The interactions of this source (each source in `sources.py` reads its own files)."""

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
        self.user_activity = np.asarray(self._history.sum(axis=1)).ravel()  # training interactions per user
        self._history_dense = torch.from_numpy(self._history.toarray().astype(np.float32))

    def _validate(self, loaded: SourceInteractions) -> pd.DataFrame:
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
            if loaded.rating_scale is None:
                _plausible(values, self.describe_source())
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
        """Rating (and the ranking protocol's train split): the ratings of `inputs`. Ranking: the relevance
        matrix, True where a user of `inputs` interacted with an item in `split` (users × items)."""
        if self.protocol == RATING or split == "train":
            return self._ratings[split]
        return self._matrix(split)[self.inputs(split)].toarray() > 0

    def excluded(self, split: str) -> np.ndarray:
        """Ranking: the items each user of `inputs(split)` is already known to have (train, and val when
        scoring test), which may not be recommended; True where excluded (users × items)."""
        if self.protocol != RANKING or split == "train":
            raise ValueError(f"excluded items exist for the held-out splits of the ranking protocol, not {split}")
        known = self._history if split == "val" else self._known
        return known[self.inputs(split)].toarray() > 0

    def history(self, users: np.ndarray) -> np.ndarray:
        """The train items of each user, as 0/1 rows (what recommendations must exclude and build on)."""
        return self._history_dense[torch.as_tensor(users)].numpy()

    def loader(self, inputs: np.ndarray, targets: np.ndarray | None = None, train: bool = False) -> DataLoader:
        """Batches of named tensors. Users (1-D inputs, to rank for): `user`, `history`, and `relevant` rows
        when targets are given. (user, item) pairs: `user`, `item`, `rating`, plus a random `negative` item and
        the `history` when training a ranker."""
        inputs_tensor = torch.as_tensor(inputs)
        target_tensor = None if targets is None else torch.as_tensor(targets)
        history = self._history_dense

        def make(index: torch.Tensor) -> dict[str, torch.Tensor]:
            if inputs_tensor.dim() == 1:  # users to rank for
                users = inputs_tensor[index]
                batch = {"user": users, "history": history[users]}
                if target_tensor is not None:
                    batch["relevant"] = target_tensor[index].float()
                return batch
            users, items = inputs_tensor[index, 0], inputs_tensor[index, 1]
            batch = {"user": users, "item": items}
            if target_tensor is not None:
                batch["rating"] = target_tensor[index].float()
            if train and self.protocol == RANKING:  # a random item per positive, for pairwise losses
                batch["negative"] = torch.randint(0, self.n_items, (len(index),))
                batch["history"] = history[users]
            return batch

        batch_size = self.batch_size if train else self.eval_batch_size
        return batch_loader(len(inputs_tensor), make, batch_size, shuffle=train)

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
