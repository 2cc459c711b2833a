"""`predict`, three ways, with a finished run's model:

    predict user=196 k=10           top-k titles for a user, never what they have seen
    predict item=50 similar=10      the movies most like a movie (by the model's item vectors)
    predict input=pairs.csv output=scores.csv    a rating (or score) per (user, item) row

An unknown user gets the cold-start fallback (the most popular items) with a warning; an unknown item id
is an error naming it. Ids are the dataset's own (MovieLens' user and movie ids), not internal indices.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from projects.recommender.data import ITEM_COLUMNS, RANKING, USER_COLUMNS, Interactions
from projects.recommender.metrics import top_k
from projects.recommender.models import item_similarity
from shared.config import load_run_config
from shared.errors import DataError, UsageError
from shared.evaluate import fitter_of_run
from shared.fitters import Fitter
from shared.predict import PARTIAL_FAILURE_EXIT_CODE, write_rows
from shared.project import Project
from shared.runs import resolve_run

log = logging.getLogger(__name__)


class Predictor:
    """A run's model and data, and the questions `predict` asks them."""

    def __init__(self, project: Project, cfg: DictConfig) -> None:
        self.cfg = cfg
        self.run_dir = resolve_run(cfg.get("run"), cfg.paths.runs_dir, project.name)
        train_cfg = load_run_config(self.run_dir)
        self.fitter: Fitter = fitter_of_run(self.run_dir)
        self.model = self.fitter.load(train_cfg.model, self.run_dir)
        self.data: Interactions = project.build_data(train_cfg, cfg.paths)  # type: ignore[assignment]
        self.data.prepare()
        self.ranks = self.data.protocol == RANKING

    def item(self, raw: Any) -> int:
        index = self.data.item_index.get(str(raw))
        if index is None:
            raise UsageError(
                f"unknown item id {raw}: not in {self.data.describe_source()}.",
                f"use an id of the data's item column (e.g. {self.data.item_ids[0]}).",
            )
        return index

    def recommend(self, raw_user: Any, k: int) -> list[dict[str, Any]]:
        user = self.data.user_index.get(str(raw_user))
        if user is None:
            log.warning(
                "user %s is unknown (no interactions in the data): recommending the most popular items", raw_user
            )
            scores, seen = self.data.item_popularity.astype(np.float64)[None], np.zeros((1, self.data.n_items), bool)
        else:
            users = np.array([user])
            scores = self.fitter.predict(self.model, self.data, users, self.cfg)
            seen = self.data.history(users) > 0
        best = top_k(scores, seen, k)[0]
        return [
            {
                "rank": rank,
                "item": self.data.item_ids[item],
                "title": self.data.title(item),
                "score": round(float(scores[0, item]), 4),
            }
            for rank, item in enumerate(best, start=1)
        ]

    def similar(self, raw_item: Any, k: int) -> list[dict[str, Any]]:
        item = self.item(raw_item)
        similarity = item_similarity(self.model, item)
        if similarity is None:
            raise UsageError(
                f"the model of {self.run_dir.name} ({type(self.model).__name__}) has no item similarity.",
                "use a run of model=item_item, mf, autorec, bpr or two_tower.",
            )
        excluded = np.zeros((1, len(similarity)), bool)
        excluded[0, item] = True
        best = top_k(similarity[None], excluded, k)[0]
        return [
            {
                "rank": rank,
                "item": self.data.item_ids[other],
                "title": self.data.title(other),
                "similarity": round(float(similarity[other]), 4),
            }
            for rank, other in enumerate(best, start=1)
        ]

    def score_pairs(self, path: Path) -> list[dict[str, Any]]:
        """A row per (user, item) of the file: its predicted rating (or ranking score), or why it has none."""
        if not path.is_file():
            raise UsageError(f"input {path} does not exist.", "pass input=<csv with user and item columns>.")
        frame = pd.read_csv(path, sep=None, engine="python", dtype=str)
        user_column = next((name for name in USER_COLUMNS if name in frame), None)
        item_column = next((name for name in ITEM_COLUMNS if name in frame), None)
        if user_column is None or item_column is None:
            raise DataError(
                f"{path} needs a user and an item column (it has {', '.join(frame.columns)}).",
                f"name them e.g. {USER_COLUMNS[1]},{ITEM_COLUMNS[1]}.",
            )
        rows, known_users, items, positions = [], [], [], []
        fallback = self.data.item_popularity / max(self.data.item_popularity.max(), 1)
        for position, (raw_user, raw_item) in enumerate(zip(frame[user_column], frame[item_column], strict=True)):
            row: dict[str, Any] = {"user": raw_user, "item": raw_item, "score": "", "cold_start": False, "error": ""}
            item, user = self.data.item_index.get(str(raw_item)), self.data.user_index.get(str(raw_user))
            if item is None:
                row["error"] = f"unknown item id {raw_item}"
            elif user is None:  # cold start: the item's popularity (ranking) or the item's mean rating
                row.update(
                    score=round(float(self._cold_rating(item) if not self.ranks else fallback[item]), 4),
                    cold_start=True,
                )
            else:
                known_users.append(user)
                items.append(item)
                positions.append(position)
            rows.append(row)
        if positions:
            for position, value in zip(positions, self._scores(np.array(known_users), np.array(items)), strict=True):
                rows[position]["score"] = round(float(value), 4)
        return rows

    def _scores(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        if not self.ranks:
            return self.fitter.predict(self.model, self.data, np.column_stack([users, items]), self.cfg)
        unique, where = np.unique(users, return_inverse=True)
        scores = self.fitter.predict(self.model, self.data, unique, self.cfg)
        return scores[where, items]

    def _cold_rating(self, item: int) -> float:
        pairs = self.data.inputs("train")
        ratings = self.data.targets("train")
        mine = ratings[pairs[:, 1] == item]
        prior = 10.0  # shrink rarely rated items towards the global mean
        return float((mine.sum() + prior * ratings.mean()) / (len(mine) + prior))


def predict_command(project: Project, cfg: DictConfig) -> int:
    """Dispatch on which of user=, item=, input= was given."""
    modes = [name for name in ("user", "item", "input") if cfg.get(name) is not None]
    if len(modes) != 1:
        raise UsageError(
            "predict needs exactly one of user=ID, item=ID or input=PAIRS.csv.",
            "e.g. predict user=196 k=10, predict item=50 similar=10, or predict input=pairs.csv output=scores.csv",
        )
    predictor = Predictor(project, cfg)
    mode = modes[0]
    if mode == "input":
        output = Path(str(cfg.output)).expanduser()
        if output.suffix.lower() not in (".csv", ".jsonl"):
            raise UsageError(f"output {output} must end in .csv or .jsonl.", "for example output=scores.csv")
        rows = predictor.score_pairs(Path(str(cfg.input)).expanduser())
        write_rows(output, rows)
        failed = sum(bool(row["error"]) for row in rows)
        print(f"{len(rows) - failed} of {len(rows)} pairs scored with run {predictor.run_dir.name} -> {output}")
        return PARTIAL_FAILURE_EXIT_CODE if failed else 0
    if mode == "user":
        rows = predictor.recommend(cfg.user, int(cfg.k))
        title = f"top {cfg.k} for user {cfg.user} ({predictor.run_dir.name})"
    else:
        rows = predictor.similar(cfg.item, int(cfg.similar))
        title = f"{cfg.similar} most similar to {predictor.data.title(predictor.item(cfg.item))}"
    print(title)
    for row in rows:
        value = row.get("score", row.get("similarity"))
        print(f"  {row['rank']:>3}. {row['title']}  [{row['item']}]  {value:.4f}")
    if cfg.get("output"):
        write_rows(Path(str(cfg.output)).expanduser(), [{**row, "error": ""} for row in rows])
    return 0
