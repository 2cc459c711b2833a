"""California housing data: Géron's `housing.csv` (or scikit-learn's copy), validated, then split as in the book.

The split follows *Hands-On Machine Learning* (2nd and 3rd editions) exactly, so test RMSEs compare
with the book's: stratified on five median-income bands, 20% test, `random_state=42`. The scikit-learn
models have no validation split: model selection uses k-fold cross-validation on the train part, as the
book does. The neural model (`model=mlp`) asks for one (`validation_size`), carved from the train part,
for early stopping; the test part is the same either way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader

from shared import checks
from shared.data import DataFile, ProjectData, fetch_files, offline, tensor_loader
from shared.errors import DataError

log = logging.getLogger(__name__)

TARGET = "median_house_value"
VALUE_CAP = 500_001.0  # the census capped district values here; no target lies above it
INCOME_BINS = (0.0, 1.5, 3.0, 4.5, 6.0, np.inf)  # the book's income categories, in $10,000s
OCEAN_PROXIMITY = ("<1H OCEAN", "INLAND", "ISLAND", "NEAR BAY", "NEAR OCEAN")

HOUSING_CSV = DataFile(
    "housing.csv",
    sha256=("2364609dc48bec7df3ba9dbb7041478e704ecddcee70ef1827ec3fc49d22c0cc",),
    urls=(
        "https://raw.githubusercontent.com/ageron/data/2ea73147454d2ff8c8a933913be4606f05b352ca/housing/housing.csv",
        "https://raw.githubusercontent.com/ageron/data/main/housing/housing.csv",
    ),
)


class Checked(NamedTuple):
    """One value as a model takes it (a float, a category, NaN for an empty cell), and what is wrong with it."""

    value: float | str
    problem: str = ""


@dataclass(frozen=True)
class Column:
    """What one column may hold: a numeric range, or a fixed set of categories; and whether it may be empty.

    `check` holds the rules for one value; the training file's validation (`problems`, whole columns) and
    `predict`'s records (one district at a time) both go through it, so the two can never disagree.
    """

    name: str
    low: float | None = None
    high: float | None = None
    categories: tuple[str, ...] = ()
    nullable: bool = False

    def check(self, value: Any) -> Checked:
        """`value` (a CSV cell, a JSON number or string, a pandas value) cleaned, or the reason it cannot be."""
        if _is_empty(value):
            return Checked(np.nan, "" if self.nullable else f"{self.name} is empty")
        if self.categories:
            if isinstance(value, str) and value in self.categories:
                return Checked(value)
            return Checked(np.nan, f"{self.name} {value!r} is not one of {', '.join(self.categories)}")
        number = _number(value)
        if number is None:
            return Checked(np.nan, f"{self.name} {value!r} is not a number")
        low = -np.inf if self.low is None else self.low
        high = np.inf if self.high is None else self.high
        if not low <= number <= high:
            return Checked(np.nan, f"{self.name} {number:g} is outside [{low:g}, {high:g}]")
        return Checked(number)

    def problems(self, values: pd.Series) -> pd.Series:
        """Per row, what is wrong with its value ('' when nothing)."""
        return values.map(lambda value: self.check(value).problem).astype(object)

    def cleaned(self, values: pd.Series) -> pd.Series:
        """The values as a model takes them: floats for a numeric column (NaN where empty), else the categories."""
        cleaned = values.map(lambda value: self.check(value).value)
        return cleaned.astype(object if self.categories else float)


def _is_empty(value: Any) -> bool:
    """An empty CSV cell, a blank string, a JSON null, or a missing value pandas read as NaN."""
    if isinstance(value, str):
        return not value.strip()
    return value is None or value is pd.NA or (isinstance(value, float | np.floating) and np.isnan(value))


def _number(value: Any) -> float | None:
    """`value` as a float (a number, or text that spells one), or None; a boolean or 'nan' is no number."""
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, int | float | np.integer | np.floating):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return None if np.isnan(number) else number


# Ranges wide enough for any real California district, narrow enough to catch a wrong file or swapped columns.
FEATURES = (
    Column("longitude", -125.0, -114.0),
    Column("latitude", 32.0, 42.5),
    Column("housing_median_age", 0.0, 200.0),
    Column("total_rooms", 0.0, 1e6),
    Column("total_bedrooms", 0.0, 1e6, nullable=True),
    Column("population", 0.0, 1e6),
    Column("households", 0.0, 1e6),
    Column("median_income", 0.0, 100.0),
    Column("ocean_proximity", categories=OCEAN_PROXIMITY),
)
TARGET_COLUMN = Column(TARGET, 0.0, VALUE_CAP)
NUMERIC = tuple(column.name for column in FEATURES if not column.categories)


def validate(frame: pd.DataFrame, columns: tuple[Column, ...], source: str) -> pd.DataFrame:
    """Check names, types, ranges and categories; return the frame with numeric columns as floats.

    Raises a `DataError` naming the first offending column, the problem, how many rows have it and
    the first such row (numbered as in a spreadsheet, header = line 1).
    """
    missing = [column.name for column in columns if column.name not in frame.columns]
    if missing:
        raise DataError(
            f"{source} lacks the column(s) {', '.join(missing)} (it has {', '.join(map(str, frame.columns))}).",
            f"use Géron's housing.csv, whose columns are {', '.join(column.name for column in columns)}.",
        )
    frame = frame.copy()
    for column in columns:
        problems = column.problems(frame[column.name])
        bad = problems[problems != ""]
        if len(bad):
            first = frame.index.get_loc(bad.index[0]) + 2
            raise DataError(
                f"{source}: column '{column.name}' has {len(bad)} bad value(s); first, on line {first}: {bad.iloc[0]}.",
                "check the file: it does not look like the California housing data.",
            )
        if not column.categories:
            frame[column.name] = column.cleaned(frame[column.name])
    return frame


def income_category(income: pd.Series) -> pd.Series:
    """The book's five income bands (1 = under $15k ... 5 = over $60k), the split's strata."""
    return pd.cut(income, bins=INCOME_BINS, labels=[1, 2, 3, 4, 5])


def split(frame: pd.DataFrame, test_size: float = 0.2, seed: int = 42) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The book's split: stratified on income bands, so both parts keep the income mix of the state."""
    train, test = train_test_split(
        frame, test_size=test_size, stratify=income_category(frame["median_income"]), random_state=seed
    )
    return train, test


class HousingData(ProjectData):
    """Districts as pandas frames: `inputs` are the feature columns, `targets` the median house values in dollars.

    `validation_size` > 0 moves that share of the train part (at random, `split_seed`) into a `val` split.
    """

    dataset = ""

    def __init__(
        self,
        mirror_dir: str | None = None,
        cache_dir: str = "~/.cache/ml-portfolio",
        test_size: float = 0.2,
        split_seed: int = 42,
        validation_size: float = 0.0,
        batch_size: int = 256,
    ) -> None:
        super().__init__(mirror_dir, cache_dir)
        self.test_size = checks.fraction(test_size, "data.test_size", 0.2)
        self.split_seed = checks.seed(split_seed, "data.split_seed")
        self.validation_size = checks.fraction(validation_size, "data.validation_size", 0.1, zero=True)
        self.batch_size = checks.whole(batch_size, "data.batch_size", example=256)
        self.frames: dict[str, pd.DataFrame] = {}

    @property
    def splits(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("train", "val", "test") if self.validation_size else ("train", "test")

    @property
    def features(self) -> tuple[Column, ...]:
        """The columns a model of this data takes (and `predict` expects)."""
        return FEATURES

    def load(self) -> tuple[pd.DataFrame, str]:
        """The raw frame and a name for it in messages."""
        raise NotImplementedError

    def prepare(self) -> None:
        frame, source = self.load()
        frame = validate(frame, (*self.features, TARGET_COLUMN), source)
        try:
            train, test = split(frame, self.test_size, self.split_seed)
            if self.validation_size:
                train, val = train_test_split(train, test_size=self.validation_size, random_state=self.split_seed)
                self.frames = {"train": train, "val": val, "test": test}
            else:
                self.frames = {"train": train, "test": test}
        except ValueError as error:  # too few districts for a split stratified on five income bands
            raise DataError(
                f"{source}: {len(frame)} districts cannot be split (test_size {self.test_size:g}, stratified on "
                f"income bands; validation_size {self.validation_size:g}): {error}",
                "give more districts (a few hundred at least), or a test_size that leaves each part some.",
            ) from error

    def add_train_rows(self, path: Path) -> int:
        """`train data.extra=FILE`: districts of a CSV with the training columns and `median_house_value`, checked by
        the same rules as the training file, appended to the train split (the test split stays the book's)."""
        columns = [column.name for column in (*self.features, TARGET_COLUMN)]
        frame = validate(read_csv(path), (*self.features, TARGET_COLUMN), str(path))[columns]
        self.frames["train"] = pd.concat([self.frames["train"], frame])
        return len(frame)

    def frame(self, split: str) -> pd.DataFrame:
        """Features and target of a split (for plots)."""
        return self.frames[split]

    def inputs(self, split: str) -> pd.DataFrame:
        return self.frames[split][[column.name for column in self.features]]

    def targets(self, split: str) -> np.ndarray:
        return self.frames[split][TARGET].to_numpy(dtype=float)

    def loader(self, inputs: np.ndarray, targets: np.ndarray | None = None, train: bool = False) -> DataLoader:
        """Batches of preprocessed features (the neural model's `ColumnTransformer` output) and values."""
        tensors = [torch.as_tensor(np.asarray(inputs, dtype=np.float32))]
        if targets is not None:
            tensors.append(torch.as_tensor(np.asarray(targets, dtype=np.float32)))
        return tensor_loader(*tensors, batch_size=self.batch_size if train else 4096, shuffle=train)

    def describe(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "split": "stratified on income bands, book's seed", **super().describe()}


class GeronHousing(HousingData):
    """Géron's `housing.csv`: 20,640 districts, 207 `total_bedrooms` removed on purpose, `ocean_proximity` added."""

    dataset = "California housing (Géron's housing.csv, 1990 census via StatLib)"

    def load(self) -> tuple[pd.DataFrame, str]:
        path = fetch_files("california-housing", [HOUSING_CSV], self.mirror_dir, self.cache_dir)[HOUSING_CSV.name]
        return read_csv(path), str(path)


class SklearnCalifornia(HousingData):
    """scikit-learn's `fetch_california_housing` (same census districts, per-household averages, no `ocean_proximity`).

    Its averages are turned back into Géron's totals (households = population / average occupancy), so the
    same pipeline serves both; `ocean_proximity` is simply absent, and the models skip it.
    """

    dataset = "California housing (scikit-learn fetch_california_housing, 1990 census via StatLib)"

    @property
    def features(self) -> tuple[Column, ...]:
        return tuple(column for column in FEATURES if column.name != "ocean_proximity")

    def load(self) -> tuple[pd.DataFrame, str]:
        from sklearn.datasets import fetch_california_housing

        home = Path(self.cache_dir).expanduser() / "sklearn-california"
        try:
            bunch = fetch_california_housing(data_home=str(home), as_frame=True, download_if_missing=not offline())
        except OSError as error:
            raise DataError(
                f"scikit-learn's California housing is not in {home} and cannot be downloaded ({error}).",
                "run once with network access (and PORTFOLIO_OFFLINE unset), or use data=housing with the mirror.",
            ) from error
        return from_sklearn(bunch.frame), f"fetch_california_housing ({home})"


def from_sklearn(frame: pd.DataFrame) -> pd.DataFrame:
    """scikit-learn's columns (averages per household, value in $100,000s) as Géron's (totals, dollars)."""
    households = (frame["Population"] / frame["AveOccup"]).round()
    return pd.DataFrame(
        {
            "longitude": frame["Longitude"],
            "latitude": frame["Latitude"],
            "housing_median_age": frame["HouseAge"],
            "total_rooms": (frame["AveRooms"] * households).round(),
            "total_bedrooms": (frame["AveBedrms"] * households).round(),
            "population": frame["Population"],
            "households": households,
            "median_income": frame["MedInc"],
            TARGET: (frame["MedHouseVal"] * 100_000).clip(upper=VALUE_CAP),
        }
    )


class SyntheticHousing(HousingData):
    """Made-up districts with a known value formula: the whole pipeline in seconds, offline (tests, trials)."""

    dataset = "synthetic districts (for tests)"

    def __init__(self, size: int = 600, seed: int = 0, **options: Any) -> None:
        super().__init__(**options)
        self.size = checks.whole(size, "data.size", minimum=50, example=600)
        self.seed = checks.seed(seed, "data.seed")

    def load(self) -> tuple[pd.DataFrame, str]:
        return synthetic_frame(self.size, self.seed), "synthetic districts"


def synthetic_frame(size: int, seed: int = 0) -> pd.DataFrame:
    """Districts whose value grows with income and near the coast, with the real file's quirks (gaps, cap)."""
    rng = np.random.default_rng(seed)
    households = rng.integers(50, 1500, size).astype(float)
    rooms = households * rng.uniform(3, 7, size)
    income = rng.lognormal(1.2, 0.5, size).clip(0.5, 15)
    longitude = rng.uniform(-124, -115, size)
    proximity = rng.choice(["<1H OCEAN", "INLAND", "NEAR OCEAN", "NEAR BAY"], size)
    value = 40_000 * income + 60_000 * (proximity != "INLAND") + rng.normal(0, 15_000, size)
    bedrooms = (rooms * rng.uniform(0.15, 0.25, size)).round()
    bedrooms[rng.random(size) < 0.02] = np.nan
    return pd.DataFrame(
        {
            "longitude": longitude.round(2),
            "latitude": rng.uniform(32.5, 42, size).round(2),
            "housing_median_age": rng.integers(1, 53, size).astype(float),
            "total_rooms": rooms.round(),
            "total_bedrooms": bedrooms,
            "population": (households * rng.uniform(2, 4, size)).round(),
            "households": households,
            "median_income": income.round(4),
            TARGET: value.clip(15_000, VALUE_CAP).round(),
            "ocean_proximity": proximity,
        }
    )


def read_csv(path: Path, **options: Any) -> pd.DataFrame:
    """A CSV as a frame (`options` go to `pandas.read_csv`), or a `DataError` saying it is not one."""
    try:
        return pd.read_csv(path, **options)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as error:
        raise DataError(f"{path} is not a readable CSV file ({error}).", "pass a comma-separated file.") from error
