"""Plots of a ranking evaluation: per-user NDCG, popularity bias, and a few users' recommendations beside
their history; of a rating evaluation: predicted against true ratings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from projects.recommender.data import Interactions
from projects.recommender.metrics import K, long_tail, per_user_ranking, top_k
from shared.io import write_text
from shared.project import Evaluation
from shared.reports import save_figure

USERS_SHOWN = 5


def rating_report(evaluation: Evaluation, plots_dir: Path) -> list[Path]:
    """The distribution of predictions for each true rating: a model that only predicts the mean shows flat boxes."""
    figure = Figure(figsize=(6, 4))
    axes = figure.add_subplot()
    levels = np.unique(evaluation.targets)
    axes.boxplot([evaluation.outputs[evaluation.targets == level] for level in levels], showfliers=False)
    axes.set_xticks(range(1, len(levels) + 1), [f"{level:g}" for level in levels])
    axes.set_xlabel("true rating")
    axes.set_ylabel("predicted rating")
    rmse = evaluation.metrics.get(f"{evaluation.split}/rmse", float("nan"))
    axes.set_title(f"{evaluation.split} predictions (RMSE {rmse:.3f})")
    axes.grid(alpha=0.3)
    return [save_figure(figure, plots_dir / "predicted_vs_true.png")]


def ranking_report(evaluation: Evaluation, plots_dir: Path, data: Interactions) -> list[Path]:
    """Per-user NDCG, popularity bias and example users, from the split's relevant and excluded items."""
    relevant, excluded = evaluation.targets, data.excluded(evaluation.split)
    recommended = top_k(evaluation.outputs, excluded)
    ndcg = per_user_ranking(relevant, recommended)["ndcg"]
    return [
        _ndcg_histogram(ndcg, plots_dir / "ndcg_per_user.png"),
        _popularity_bias(excluded, recommended, plots_dir / "popularity_bias.png"),
        _examples(evaluation.inputs, relevant, recommended, ndcg, data, plots_dir / "example_users.md"),
    ]


def _ndcg_histogram(ndcg: np.ndarray, path: Path) -> Path:
    figure = Figure(figsize=(6, 4))
    axes = figure.add_subplot()
    axes.hist(ndcg, bins=20, range=(0, 1), color="tab:blue", alpha=0.8)
    axes.axvline(ndcg.mean(), color="black", linestyle="--", label=f"mean {ndcg.mean():.3f}")
    axes.set_xlabel(f"NDCG@{K} of a user")
    axes.set_ylabel("users")
    axes.set_title(f"per-user NDCG@{K} ({(ndcg == 0).mean():.0%} of users get no hit)")
    axes.legend()
    return save_figure(figure, path)


def _popularity_bias(known: np.ndarray, recommended: np.ndarray, path: Path) -> Path:
    """How often each item is recommended against its popularity rank (its `known` interactions): a recommender
    without popularity bias follows the interactions curve; most stay in the head."""
    popularity = known.sum(axis=0)
    order = np.argsort(-popularity, kind="stable")
    rank_of = np.empty_like(order)
    rank_of[order] = np.arange(len(order))
    shown = np.bincount(rank_of[recommended.ravel()], minlength=len(order))
    tail = long_tail(popularity)
    figure = Figure(figsize=(7, 4))
    axes = figure.add_subplot()
    axes.plot(popularity[order] / popularity.sum(), label="share of interactions", color="grey")
    axes.plot(shown / shown.sum(), label="share of recommendations", color="tab:red", alpha=0.8)
    axes.axvline(len(order) - len(tail), color="black", linestyle=":", label="long tail starts")
    axes.set_yscale("symlog", linthresh=1e-4)
    axes.set_xlabel("items by popularity rank")
    tail_share = np.isin(recommended.ravel(), tail).mean()
    axes.set_title(f"popularity bias: {tail_share:.1%} of recommendations from the long tail")
    axes.legend()
    return save_figure(figure, path)


def _examples(
    users: np.ndarray, relevant: np.ndarray, recommended: np.ndarray, ndcg: np.ndarray, data: Interactions, path: Path
) -> Path:
    """A few users (from best to worst served) with their history and what they were recommended."""
    picks = np.argsort(-ndcg)[np.linspace(0, len(ndcg) - 1, USERS_SHOWN).astype(int)]
    lines = [f"# Example recommendations (top {K}; ✓ = in the user's held-out interactions)", ""]
    for row in picks:
        user = int(users[row])
        history = np.flatnonzero(data.history(np.array([user]))[0])[:10]
        lines += [
            f"## user {data.user_ids[user]} (NDCG@{K} {ndcg[row]:.2f})",
            "",
            "history: " + "; ".join(data.title(item) for item in history),
            "",
            "recommended:",
        ]
        lines += [
            f"{rank}. {data.title(item)}{' ✓' if relevant[row, item] else ''}"
            for rank, item in enumerate(recommended[row], start=1)
        ]
        lines.append("")
    return write_text(path, "\n".join(lines))
