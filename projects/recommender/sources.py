"""Where interactions come from: MovieLens 100k and 1M (GroupLens' files, checked by SHA-256), any ratings
file, and synthetic taste groups. Each source is an `Interactions` whose `load` hands over a
`SourceInteractions`; validation, indexing and the splits are the base class's (`data.py`).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from projects.recommender.data import RATING, Interactions, SourceInteractions, check_scale
from shared import checks
from shared.data import DataFile, fetch_files
from shared.errors import DataError, UsageError
from shared.textfiles import check_encoding, read_text, refuse_other_delimiter

# Column spellings recognised without configuration, most specific first (also for `predict input=`).
USER_COLUMNS = ("userId", "user_id", "user", "userid", "UserID")
ITEM_COLUMNS = ("movieId", "item_id", "item", "itemId", "movie_id", "itemid", "MovieID")
RATING_COLUMNS = ("rating", "Rating", "score")
TIME_COLUMNS = ("timestamp", "Timestamp", "time")
TITLE_COLUMNS = ("title", "Title", "name")

# MovieLens 100k: the mirror holds the loose files; elsewhere they are read out of GroupLens' zip. The zip has
# no known checksum, which is allowed because every file read from it has its own.
ML100K_ZIP = DataFile("ml-100k.zip", urls=("https://files.grouplens.org/datasets/movielens/ml-100k.zip",))
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
# MovieLens 1M has no mirror here: GroupLens' zip itself is the checked file (md5 c4d9eecfca2ab87c1945afe126590906),
# and its members are vouched for by it.
ML1M_ZIP = DataFile(
    "ml-1m.zip",
    sha256=("a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",),
    urls=("https://files.grouplens.org/datasets/movielens/ml-1m.zip",),
)


def ml100k_file(name: str) -> DataFile:
    """A file of MovieLens 100k: loose in the mirror or cache, else the member `ml-100k/<name>` of the zip.

    It carries GroupLens' URL, so a missing or corrupt file's message names where the original is (its own
    checksum refuses the zip itself, were that URL ever downloaded in its place)."""
    return DataFile(
        name, sha256=(ML100K_SHA256[name],), urls=ML100K_ZIP.urls, archive=ML100K_ZIP, member=f"ml-100k/{name}"
    )


def ml1m_members(archive: DataFile) -> tuple[DataFile, DataFile]:
    """The ratings and the movies of MovieLens 1M, as members of `archive` (GroupLens' `ml-1m.zip`)."""
    return (
        DataFile("ratings.dat", archive=archive, member="ml-1m/ratings.dat"),
        DataFile("movies.dat", archive=archive, member="ml-1m/movies.dat"),
    )


def _read_ml100k(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", names=["user", "item", "rating", "timestamp"], dtype=np.int64)


def _read_dat(path: Path, columns: list[str]) -> pd.DataFrame:
    """A GroupLens `.dat` file: `::`-separated fields, Latin-1, no header."""
    text = path.read_bytes().decode("latin-1")
    try:
        return pd.read_csv(io.StringIO(text.replace("::", "\t")), sep="\t", names=columns, quoting=3, dtype=str)
    except (pd.errors.ParserError, ValueError) as error:
        raise DataError(f"{path} is not a GroupLens .dat file ({error}).", "replace it with the original.") from error


class MovieLens100k(Interactions):
    """MovieLens 100k (GroupLens, 1998): 100,000 ratings 1..5 of 1,682 movies by 943 users."""

    def __init__(self, fold: int = 1, **options: Any) -> None:
        super().__init__(**options)
        if fold not in range(1, 6):
            raise DataError(f"data.fold={fold}: MovieLens 100k has the folds 1..5.", "choose data.fold=1..5.")
        self.fold = fold

    def load(self) -> SourceInteractions:
        names = [f"u{self.fold}.base", f"u{self.fold}.test", "u.item"]
        files = fetch_files("movielens-100k", [ml100k_file(name) for name in names], self.mirror_dir, self.cache_dir)
        base, test = _read_ml100k(files[names[0]]), _read_ml100k(files[names[1]])
        items = pd.read_csv(files["u.item"], sep="|", header=None, encoding="latin-1")
        titles = pd.Series(items[1].to_numpy(), index=items[0].to_numpy(), name="title")
        frame = pd.concat([base, test], ignore_index=True)
        official = np.arange(len(frame)) >= len(base)
        return SourceInteractions(frame, titles, official if self.protocol == RATING else None, (1.0, 5.0))

    def describe_source(self) -> str:
        return f"MovieLens 100k (fold u{self.fold})" if self.protocol == RATING else "MovieLens 100k"


class MovieLens1M(Interactions):
    """MovieLens 1M (GroupLens, 2003): 1,000,209 ratings 1..5 of 3,706 movies by 6,040 users.

    No official folds: the rating protocol takes a seeded 80/20 split. `ratings.dat` and `movies.dat` are read
    out of the checked zip (`<mirror>/movielens-1m/ml-1m.zip`, the cache, or GroupLens)."""

    members: ClassVar[tuple[DataFile, DataFile]] = ml1m_members(ML1M_ZIP)

    def load(self) -> SourceInteractions:
        ratings_file, movies_file = self.members
        files = fetch_files("movielens-1m", self.members, self.mirror_dir, self.cache_dir)
        frame = _read_dat(files[ratings_file.name], ["user", "item", "rating", "timestamp"])
        movies = _read_dat(files[movies_file.name], ["item", "title", "genres"])
        try:
            frame, item_ids = frame.astype(np.int64), movies["item"].astype(np.int64)
        except ValueError as error:
            raise DataError(
                f"{files[ratings_file.name]} or {files[movies_file.name]} holds a non-numeric id ({error}).",
                "replace ml-1m.zip with GroupLens' original.",
            ) from error
        titles = pd.Series(movies["title"].to_numpy(), index=item_ids.to_numpy(), name="title")
        return SourceInteractions(frame, titles, None, (1.0, 5.0))

    def describe_source(self) -> str:
        return "MovieLens 1M"


def _column(
    frame: pd.DataFrame, configured: str | None, spellings: tuple[str, ...], what: str, required: bool, path: Path
) -> str | None:
    """The column of `frame` holding `what`: the configured name, else the first common spelling present."""
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
        encoding: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.path, self.items_path = path, items_path
        self.encoding = check_encoding(encoding, "data.encoding")
        self.columns = {
            "user": user_column,
            "item": item_column,
            "rating": rating_column,
            "timestamp": timestamp_column,
            "title": title_column,
        }
        self.configured_scale = check_scale(rating_scale)

    def _read(self, path: Path) -> pd.DataFrame:
        if not path.is_file():
            raise DataError(f"{path} does not exist.", "pass data.path=<your interactions .csv>.")
        text = read_text(path, self.encoding, option="data.encoding")  # by its byte-order mark, else UTF-8
        try:
            frame = pd.read_csv(io.StringIO(text), sep=None, engine="python")
        except (pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error, ValueError) as error:
            raise DataError(
                f"{path} is not a readable CSV/TSV file ({error}).", "save it as a CSV (or TSV) with a header."
            ) from error
        refuse_other_delimiter(path, [str(column) for column in frame.columns])
        return frame

    def load(self) -> SourceInteractions:
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
        return SourceInteractions(frame, titles, None, self.configured_scale)

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
        n_users = checks.whole(n_users, "data.n_users", minimum=2, example=200)
        n_items = checks.whole(n_items, "data.n_items", minimum=2, example=100)
        self.groups = checks.whole(groups, "data.groups", example=4)
        self.per_user = checks.whole(per_user, "data.per_user", minimum=2, example=24)
        if self.per_user > n_items:
            raise UsageError(
                f"data.per_user={per_user} is more items than the catalogue's {n_items}.",
                f"set data.per_user to at most data.n_items (e.g. data.per_user={min(24, n_items)}).",
            )
        self.sizes, self.seed = (n_users, n_items), checks.seed(seed, "data.seed")

    def load(self) -> SourceInteractions:
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
        return SourceInteractions(frame, titles, None, (1.0, 5.0))

    def describe_source(self) -> str:
        return "synthetic taste groups"
