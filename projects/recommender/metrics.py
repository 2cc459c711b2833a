"""Rating and top-N metrics, vectorised over users.

Top-N follows Microsoft recommenders' definitions (binary relevance): precision@k = hits / k,
recall@k = hits / relevant, NDCG@k with the ideal ranking of min(k, relevant) hits, and MAP@k the
mean over users of sum(precision@i at each hit i <= k) / min(k, relevant).
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics.functional import mean_absolute_error, mean_squared_error

from shared.metrics import MAX, MIN, NEITHER, Goal

K = 10
TAIL_SHARE = 0.8  # the long tail: items outside the most popular ones that gather 80% of interactions

# Which way each reported metric is better (`RecommenderProject.metrics`).
GOALS: dict[str, Goal] = {
    "rmse": MIN,
    "mae": MIN,
    **{f"{name}@{K}": MAX for name in ("precision", "recall", "ndcg", "map")},
    "coverage": MAX,
    "long_tail_share": MAX,
    # Neither: a lower mean popularity means less popularity bias, but the most accurate rankers recommend
    # popular items, so it describes a ranking rather than scores it.
    "mean_popularity": NEITHER,
}


def rating_metrics(targets: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    """RMSE and MAE of predicted ratings."""
    preds, target = torch.as_tensor(predictions, dtype=torch.float64), torch.as_tensor(targets, dtype=torch.float64)
    return {
        "rmse": float(mean_squared_error(preds, target, squared=False)),
        "mae": float(mean_absolute_error(preds, target)),
    }


def top_k(scores: np.ndarray, excluded: np.ndarray, k: int = K) -> np.ndarray:
    """Indices of the k best-scored items per row, best first, never an excluded one."""
    masked = np.where(excluded, -np.inf, scores.astype(np.float64))
    k = min(k, masked.shape[1])
    best = np.argpartition(-masked, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(masked, best, axis=1), axis=1, kind="stable")
    return np.take_along_axis(best, order, axis=1)


def per_user_ranking(relevant: np.ndarray, recommended: np.ndarray, k: int = K) -> dict[str, np.ndarray]:
    """Precision, recall, NDCG and AP at k for each user (row) with at least one relevant item."""
    hits = np.take_along_axis(relevant, recommended, axis=1).astype(np.float64)
    n_relevant = relevant.sum(axis=1).astype(np.float64)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discounts)[np.minimum(n_relevant, k).astype(int) - 1]
    precision_at = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    return {
        "precision": hits.sum(axis=1) / k,
        "recall": hits.sum(axis=1) / n_relevant,
        "ndcg": (hits * discounts[: hits.shape[1]]).sum(axis=1) / ideal,
        "map": (precision_at * hits).sum(axis=1) / np.minimum(n_relevant, k),
    }


def ranking_metrics(relevant: np.ndarray, excluded: np.ndarray, scores: np.ndarray, k: int = K) -> dict[str, float]:
    """Top-k metrics of item `scores` (users × items) against the `relevant` items, never recommending an
    `excluded` one (what the user is known to have), with catalogue coverage and the popularity of what
    was recommended. Users without a relevant item are left out."""
    keep = relevant.any(axis=1)
    relevant, excluded, scores = relevant[keep], excluded[keep], scores[keep]
    recommended = top_k(scores, excluded, k)
    users = per_user_ranking(relevant, recommended, k)
    popularity = excluded.sum(axis=0)  # known interactions per item among these users
    shown = recommended.ravel()
    return {
        **{f"{name}@{k}": float(values.mean()) for name, values in users.items()},
        "coverage": len(np.unique(shown)) / relevant.shape[1],
        "long_tail_share": float(np.isin(shown, long_tail(popularity)).mean()),
        "mean_popularity": float(popularity[shown].mean()),
    }


def long_tail(popularity: np.ndarray, share: float = TAIL_SHARE) -> np.ndarray:
    """Items outside the head: the head is the most popular items that together gather `share` of interactions."""
    order = np.argsort(-popularity, kind="stable")
    cumulative = np.cumsum(popularity[order]) / max(popularity.sum(), 1)
    head = int(np.searchsorted(cumulative, share)) + 1
    return order[head:]
