"""The preprocessing every housing model shares: one `ColumnTransformer`, fitted on the train part only.

Branches (after Géron, 3rd edition, chapter 2): per-household ratios, logs of the heavy-tailed counts,
similarity to k-means centres of the districts' coordinates, rotated coordinates (axis-aligned trees
split diagonals like the coast in fewer steps), one-hot `ocean_proximity`, everything imputed and scaled.
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
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

RATIOS = {  # name: (numerator, denominator)
    "bedrooms_per_room": ("total_bedrooms", "total_rooms"),
    "rooms_per_household": ("total_rooms", "households"),
    "people_per_household": ("population", "households"),
}
HEAVY_TAILED = ("total_rooms", "total_bedrooms", "population", "households", "median_income")
COORDINATES = ["latitude", "longitude"]


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


def make_preprocessor(n_clusters: int = 10, gamma: float = 1.0, rotations: int = 0) -> ColumnTransformer:
    """The shared `ColumnTransformer`; `n_clusters` 0 drops the cluster features, `rotations` adds rotated axes."""
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
    return ColumnTransformer(branches, remainder="drop", sparse_threshold=0.0, verbose_feature_names_out=False)
