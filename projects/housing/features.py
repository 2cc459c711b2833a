"""The preprocessing every housing model shares: one `ColumnTransformer`, fitted on the train part only.

Branches (after Géron, 3rd edition, chapter 2): per-household ratios, logs of the heavy-tailed counts,
similarity to k-means centres of the districts' coordinates, rotated coordinates (axis-aligned trees
split diagonals like the coast in fewer steps), one-hot `ocean_proximity`, everything imputed and scaled.
Optionally (`neighbours`), the district's surroundings: what the nearest training districts are worth and earn.
The imputers take the train part's medians: a district to predict may leave any cell empty, coordinates too.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.metrics.pairwise import rbf_kernel
from sklearn.model_selection import KFold
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

RATIOS = {  # name: (numerator, denominator)
    "bedrooms_per_room": ("total_bedrooms", "total_rooms"),
    "rooms_per_household": ("total_rooms", "households"),
    "people_per_household": ("population", "households"),
}
HEAVY_TAILED = ("total_rooms", "total_bedrooms", "population", "households", "median_income")
COORDINATES = ["latitude", "longitude"]
NEIGHBOURHOOD_INPUTS = ["latitude", "longitude", "median_income", "housing_median_age", "total_rooms", "households"]
NEAR = 1e-3  # degrees (about 100 m): the distance below which a neighbour's weight stops growing


class ClusterSimilarity(TransformerMixin, BaseEstimator):
    """Gaussian-kernel similarity of each district to `n_clusters` k-means centres of the training districts.

    Lets any model learn "near San Francisco" or "near Los Angeles" as a smooth feature.
    """

    def __init__(self, n_clusters: int = 10, gamma: float = 1.0, random_state: int | None = 42) -> None:
        self.n_clusters = n_clusters
        self.gamma = gamma
        self.random_state = random_state

    def fit(
        self, X: np.ndarray, y: np.ndarray | None = None, sample_weight: np.ndarray | None = None
    ) -> ClusterSimilarity:
        # Its own median imputer (not a pipeline step): `geo__n_clusters` stays the searched parameter's name.
        coordinates = np.asarray(X, dtype=float)
        self.imputer_ = SimpleImputer(strategy="median").fit(coordinates)
        self.kmeans_ = KMeans(self.n_clusters, n_init=10, random_state=self.random_state)
        self.kmeans_.fit(self.imputer_.transform(coordinates), sample_weight=sample_weight)
        self.n_features_in_ = np.shape(X)[1]
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Similarities of each district; an empty coordinate (predict) is the training median, as elsewhere."""
        coordinates = np.asarray(X, dtype=float)
        imputer = getattr(self, "imputer_", None)  # absent in models saved before coordinates were imputed
        if imputer is not None:
            coordinates = imputer.transform(coordinates)
        return rbf_kernel(coordinates, self.kmeans_.cluster_centers_, gamma=self.gamma)

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return np.array([f"cluster_{index}_similarity" for index in range(self.n_clusters)], dtype=object)


class RotatedCoordinates(TransformerMixin, BaseEstimator):
    """Latitude and longitude, plus their projections on `rotations` axes between 0° and 90°."""

    def __init__(self, rotations: int = 0) -> None:
        self.rotations = rotations

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> RotatedCoordinates:
        self.n_features_in_ = np.shape(X)[1]
        return self

    def _angles(self) -> np.ndarray:
        return np.linspace(0, np.pi / 2, self.rotations + 2)[1:-1]

    def transform(self, X: np.ndarray) -> np.ndarray:
        coordinates = np.asarray(X, dtype=float)
        angles = self._angles()
        rotated = coordinates[:, [0]] * np.cos(angles) + coordinates[:, [1]] * np.sin(angles)
        return np.hstack([coordinates, rotated])

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        names = [*COORDINATES, *(f"rotated_{np.degrees(angle):.0f}deg" for angle in self._angles())]
        return np.array(names, dtype=object)


class Neighbourhood(TransformerMixin, BaseEstimator):
    """A district's surroundings, from the training districts nearest to it (inputs: `NEIGHBOURHOOD_INPUTS`).

    - `neighbour_value_<k>`: the inverse-distance-weighted mean log value of the k nearest, for k in
      `neighbours // 4` and `neighbours`: what the street is worth, which the district's own census
      counts only approximate;
    - `area_income`, `area_age`, `area_rooms`: the mean log income, age and log rooms per household of the
      `neighbours` nearest (the area's means, not the district's own);
    - `area_spread`: the log distance to the `neighbours`-th nearest (a dense city or open country);
    - with `premium`, `neighbour_premium_<k>`: the same weighted mean of log value minus log income (what the street
      pays for a dollar of income), and `implied_value_<k>`: the district's own log income plus it. A tree splits
      on a sum like that in one step where it would need many to learn it from income and value apart.

    The values are target encoding, so they are cross-fitted as scikit-learn's `TargetEncoder` is: on the rows
    it is fitted on (`fit_transform`), a district's value features come from the other `folds` only, and its
    area features leave the district itself out, so no model learns from a feature that holds its own answer.
    New districts (`transform`) see every training district. Positions are degrees, longitude scaled by the
    cosine of the latitude; an empty cell is the training median, as in the other branches.
    """

    def __init__(
        self, neighbours: int = 20, folds: int = 5, random_state: int | None = 0, premium: bool = False
    ) -> None:
        self.neighbours = neighbours
        self.folds = folds
        self.random_state = random_state
        self.premium = premium

    def _value_counts(self) -> list[int]:
        return sorted({max(1, self.neighbours // 4), self.neighbours})

    def _described(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each district's position (2 columns) and its own log income, age and log rooms per household."""
        filled = self.imputer_.transform(np.asarray(X, dtype=float))
        latitude, longitude, income, age, rooms, households = filled.T
        position = np.column_stack([latitude, longitude * np.cos(np.radians(latitude))])
        area = np.column_stack(
            [np.log(np.maximum(income, 1e-3)), age, np.log(np.maximum(rooms, 1.0) / np.maximum(households, 1.0))]
        )
        return position, area

    def fit(self, X: np.ndarray, y: np.ndarray) -> Neighbourhood:
        if self.neighbours < 1:
            raise ValueError(f"neighbours must be at least 1, not {self.neighbours}")
        self.imputer_ = SimpleImputer(strategy="median").fit(np.asarray(X, dtype=float))
        self.positions_, self.areas_ = self._described(X)
        self.log_values_ = np.log(np.maximum(np.asarray(y, dtype=float), 1.0))
        self.n_features_in_ = np.shape(X)[1]
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Features of new districts, from every training district."""
        position, area = self._described(X)
        count = min(self.neighbours, len(self.positions_))
        distances, indices = _nearest(self.positions_, position, count)
        values = self._valued(distances, indices, self.log_values_, self.areas_[:, 0], area[:, 0])
        return np.column_stack([values, self._area(distances, indices)])

    def fit_transform(self, X: np.ndarray, y: np.ndarray | None = None, **fit_params: object) -> np.ndarray:
        """Features of the training districts themselves: values cross-fitted, each district left out of its area."""
        if y is None:
            raise ValueError("Neighbourhood is fitted on the districts' values: pass y")
        self.fit(X, y)
        count = min(self.neighbours, len(self.positions_) - 1)
        distances, indices = _nearest(self.positions_, self.positions_, count + 1)
        itself = indices == np.arange(len(indices))[:, None]
        itself[~itself.any(axis=1), -1] = True  # a twin at the same spot came first: drop the farthest instead
        distances = distances[~itself].reshape(len(indices), count)
        indices = indices[~itself].reshape(len(indices), count)
        values = np.empty((len(indices), len(self._value_names())))
        folds = KFold(min(self.folds, len(indices)), shuffle=True, random_state=self.random_state)
        log_incomes = self.areas_[:, 0]
        for fitted, held_out in folds.split(self.positions_):
            near = min(self.neighbours, len(fitted))
            fold_distances, fold_indices = _nearest(self.positions_[fitted], self.positions_[held_out], near)
            values[held_out] = self._valued(
                fold_distances, fold_indices, self.log_values_[fitted], log_incomes[fitted], log_incomes[held_out]
            )
        return np.column_stack([values, self._area(distances, indices)])

    def _valued(
        self,
        distances: np.ndarray,
        indices: np.ndarray,
        log_values: np.ndarray,
        log_incomes: np.ndarray,
        own_log_incomes: np.ndarray,
    ) -> np.ndarray:
        """The value features of districts from their neighbours (indices into `log_values` and `log_incomes`)."""
        values = self._values(distances, indices, log_values)
        if not self._with_premium:
            return values
        premiums = self._values(distances, indices, log_values - log_incomes)
        return np.column_stack([values, premiums, premiums + own_log_incomes[:, None]])

    @property
    def _with_premium(self) -> bool:
        return getattr(self, "premium", False)  # absent in models saved before the option

    def _value_names(self) -> list[str]:
        counts = self._value_counts()
        names = [f"neighbour_value_{count}" for count in counts]
        if self._with_premium:
            names += [f"neighbour_premium_{count}" for count in counts]
            names += [f"implied_value_{count}" for count in counts]
        return names

    def _values(self, distances: np.ndarray, indices: np.ndarray, log_values: np.ndarray) -> np.ndarray:
        weights = 1.0 / (distances + NEAR)
        columns = []
        for count in self._value_counts():
            near = slice(0, count)
            columns.append((log_values[indices[:, near]] * weights[:, near]).sum(1) / weights[:, near].sum(1))
        return np.column_stack(columns)

    def _area(self, distances: np.ndarray, indices: np.ndarray) -> np.ndarray:
        return np.column_stack([self.areas_[indices].mean(axis=1), np.log(distances[:, -1] + NEAR)])

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        names = [*self._value_names(), "area_income", "area_age", "area_rooms", "area_spread"]
        return np.array(names, dtype=object)


def _nearest(points: np.ndarray, queries: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Distances and indices of the `count` nearest `points` to each query, nearest first (exact, brute force:
    nothing but the training arrays is kept, so a saved model holds plain data)."""
    return NearestNeighbors(n_neighbors=count, algorithm="brute").fit(points).kneighbors(queries)


def _ratio(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = X[:, [0]] / X[:, [1]]
    return np.where(np.isfinite(ratio), ratio, np.nan)  # a zero denominator is a gap, imputed next


def _ratio_name(name: str, transformer: object, input_features: object) -> list[str]:
    return [name]


def _ratio_pipeline(name: str) -> Pipeline:
    return make_pipeline(
        SimpleImputer(strategy="median"),
        FunctionTransformer(_ratio, feature_names_out=partial(_ratio_name, name)),
        SimpleImputer(strategy="median"),
        StandardScaler(),
    )


def categorical_columns(frame: pd.DataFrame) -> list[str]:
    """`ocean_proximity` when the data has it (scikit-learn's copy of the census does not)."""
    return [name for name in ("ocean_proximity",) if name in frame.columns]


def make_preprocessor(
    n_clusters: int = 10, gamma: float = 1.0, rotations: int = 0, neighbours: int = 0, premium: bool = False
) -> ColumnTransformer:
    """The shared `ColumnTransformer`; `n_clusters` 0 drops the cluster features, `rotations` adds rotated axes,
    `neighbours` > 0 adds the `Neighbourhood` features from that many nearest training districts (`premium`: with
    their value per dollar of income)."""
    branches: list[tuple[str, object, object]] = [
        (name, _ratio_pipeline(name), list(columns)) for name, columns in RATIOS.items()
    ]
    branches += [
        (
            "log",
            make_pipeline(
                SimpleImputer(strategy="median"),
                FunctionTransformer(np.log1p, feature_names_out="one-to-one"),
                StandardScaler(),
            ),
            list(HEAVY_TAILED),
        ),
        (
            "coordinates",
            make_pipeline(SimpleImputer(strategy="median"), RotatedCoordinates(rotations), StandardScaler()),
            COORDINATES,
        ),
        ("age", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), ["housing_median_age"]),
        (
            "category",
            make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")),
            categorical_columns,
        ),
    ]
    if n_clusters:
        branches.append(("geo", ClusterSimilarity(n_clusters, gamma), COORDINATES))
    if neighbours:
        scaled = make_pipeline(Neighbourhood(neighbours, premium=premium), StandardScaler())
        branches.append(("neighbourhood", scaled, NEIGHBOURHOOD_INPUTS))
    return ColumnTransformer(branches, remainder="drop", sparse_threshold=0.0, verbose_feature_names_out=False)
