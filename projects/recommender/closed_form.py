"""The closed-form recommenders: scikit-learn estimators (`fit(pairs, ratings)`, `predict(pairs or users)`) that
need no training loop: the global mean and biases, popularity, and the item-item EASE model (Steck 2019).
`models.py` lists them beside the gradient-trained ones; the configs name them from there.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator

from projects.recommender.capabilities import ComparesItems, Recommends
from projects.recommender.data import RANKING


def cosine_to(vectors: np.ndarray, item: int) -> np.ndarray:
    """The cosine of every row of `vectors` with row `item`."""
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return unit @ unit[item]


class Recommender(BaseEstimator, Recommends):
    """Fitted on (user, item) index pairs and their ratings; `predict` rates pairs or scores every item."""

    def fit(self, pairs: np.ndarray, ratings: np.ndarray) -> Recommender:
        raise NotImplementedError

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        """(n, 2) pairs -> n ratings clipped to the scale; (n,) users -> (n, n_items) scores."""
        inputs = np.asarray(inputs)
        if inputs.ndim == 2:
            return np.clip(self.rate(inputs[:, 0], inputs[:, 1]), *self.rating_scale).astype(np.float32)
        return self.score_all(inputs).astype(np.float32)

    def rate(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def score_all(self, users: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _interactions(self, pairs: np.ndarray) -> sparse.csr_matrix:
        values = np.ones(len(pairs), np.float32)
        matrix = sparse.csr_matrix((values, (pairs[:, 0], pairs[:, 1])), shape=(self.n_users, self.n_items))
        matrix.data[:] = 1.0  # repeated pairs count once
        return matrix


def fit_biases(
    pairs: np.ndarray, ratings: np.ndarray, shape: tuple[int, int], reg_user: float, reg_item: float, sweeps: int
) -> tuple[float, np.ndarray, np.ndarray]:
    """Global mean and regularised user and item biases by alternating least squares (Koren's baseline
    predictors): each bias is the shrunk mean residual of its ratings, so rarely rated items stay near 0."""
    mean = float(ratings.mean())
    user_bias, item_bias = np.zeros(shape[0]), np.zeros(shape[1])
    users, items = pairs[:, 0], pairs[:, 1]
    user_count = np.bincount(users, minlength=shape[0])
    item_count = np.bincount(items, minlength=shape[1])
    for _ in range(sweeps):
        if reg_item >= 0:
            residual = ratings - mean - user_bias[users]
            item_bias = np.bincount(items, residual, shape[1]) / (reg_item + item_count)
        if reg_user >= 0:
            residual = ratings - mean - item_bias[items]
            user_bias = np.bincount(users, residual, shape[0]) / (reg_user + user_count)
    return mean, user_bias, item_bias


class BiasBaseline(Recommender):
    """r(u, i) = μ + b_u + b_i. With both biases off (reg < 0) it is the global mean. Ranks by item bias."""

    def __init__(
        self,
        n_users: int = 0,
        n_items: int = 0,
        rating_scale: tuple[float, float] = (1.0, 5.0),
        reg_user: float = 5.0,
        reg_item: float = 10.0,
        sweeps: int = 10,
    ) -> None:
        self.n_users, self.n_items, self.rating_scale = n_users, n_items, rating_scale
        self.reg_user, self.reg_item, self.sweeps = reg_user, reg_item, sweeps

    def fit(self, pairs: np.ndarray, ratings: np.ndarray) -> BiasBaseline:
        self.mean_, self.user_bias_, self.item_bias_ = fit_biases(
            pairs, ratings, (self.n_users, self.n_items), self.reg_user, self.reg_item, self.sweeps
        )
        return self

    def rate(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self.mean_ + self.user_bias_[users] + self.item_bias_[items]

    def score_all(self, users: np.ndarray) -> np.ndarray:
        return np.tile(self.item_bias_, (len(users), 1))


class Popularity(Recommender):
    """Recommends the most interacted-with items to everyone: the ranking baseline and the cold-start fallback."""

    protocols = (RANKING,)

    def __init__(self, n_users: int = 0, n_items: int = 0, rating_scale: tuple[float, float] = (1.0, 5.0)) -> None:
        self.n_users, self.n_items, self.rating_scale = n_users, n_items, rating_scale

    def fit(self, pairs: np.ndarray, ratings: np.ndarray) -> Popularity:
        self.counts_ = np.bincount(pairs[:, 1], minlength=self.n_items).astype(np.float64)
        return self

    def score_all(self, users: np.ndarray) -> np.ndarray:
        return np.tile(self.counts_, (len(users), 1))


class ItemItem(Recommender, ComparesItems):
    """EASE (Steck, 2019): the item-item weight matrix B that best rebuilds each user's history from the
    other items, in closed form B = I - P / diag(P) with P = (XᵀX + λI)⁻¹ and a zero diagonal. A user's
    scores are their history times B; `similar` reads B (items that predict each other)."""

    protocols = (RANKING,)

    def __init__(
        self,
        n_users: int = 0,
        n_items: int = 0,
        rating_scale: tuple[float, float] = (1.0, 5.0),
        l2: float = 300.0,
    ) -> None:
        self.n_users, self.n_items, self.rating_scale, self.l2 = n_users, n_items, rating_scale, l2

    def fit(self, pairs: np.ndarray, ratings: np.ndarray) -> ItemItem:
        self.history_ = self._interactions(pairs)
        gram = (self.history_.T @ self.history_).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += self.l2
        inverse = np.linalg.inv(gram)
        self.weights_ = (-inverse / np.diag(inverse)).astype(np.float32)
        self.weights_[np.diag_indices_from(self.weights_)] = 0.0
        return self

    def score_all(self, users: np.ndarray) -> np.ndarray:
        return np.asarray(self.history_[users] @ self.weights_)

    def item_similarity(self, item: int) -> np.ndarray:
        """EASE's weights between `item` and the others, symmetrised (each predicting the other)."""
        return (self.weights_[item] + self.weights_[:, item]) / 2
