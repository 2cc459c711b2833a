"""The recommender as the core sees it: models built for the data's catalogue, the protocol's metrics and
plots, and `predict` records (a user's top items, similar items, or scored pairs)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from projects.recommender import evaluate, predict
from projects.recommender.capabilities import Recommends
from projects.recommender.data import PROTOCOLS, RANKING, Interactions
from projects.recommender.metrics import GOALS, K, ranking_metrics, rating_metrics
from shared.api_schema import RecordSchema
from shared.data import ProjectData
from shared.errors import UsageError
from shared.metrics import Metrics
from shared.monitor.features import Features
from shared.predict import parse_item
from shared.project import Evaluation, PredictItem, Project
from shared.runs import Run


def _interactions(data: ProjectData) -> Interactions:
    if not isinstance(data, Interactions):
        raise TypeError(f"the recommender's data is an Interactions source, not {type(data).__name__}")
    return data


class RecommenderProject(Project):
    name = "recommender"
    summary = (
        "Movie recommendations on MovieLens (or any ratings file): rating prediction (RMSE, MAE) and "
        "top-10 ranking of unseen items (precision, recall, NDCG, MAP, coverage)."
    )
    intended_use = (
        "A 'because you watched' row and rating estimates for a catalogue whose users have some history. "
        "Benchmarks against published MovieLens numbers under the same protocols."
    )
    limitations = (
        "Learns only from who rated what: a user or item without history gets the popularity fallback. "
        "MovieLens 100k is 943 users of 1997-98, mostly American students: tastes and the catalogue are "
        "dated. Offline metrics reward recommending what users later rated, not what they would enjoy; "
        "every model favours popular items (see the popularity-bias plot)."
    )
    # Led by RMSE under the rating protocol, by NDCG@10 under ranking (`metrics_for`).
    metrics = Metrics("rmse", GOALS)
    predict_usage = "user=ID [k=10] | item=ID [similar=10] | input=pairs.csv output=scores.csv"

    def metrics_for(self, data: ProjectData) -> Metrics:
        return self.metrics.with_headline(f"ndcg@{K}" if _interactions(data).protocol == RANKING else "rmse")

    # --- models ---------------------------------------------------------------------------------------
    def model_options(self, data: ProjectData) -> dict[str, Any]:
        interactions = _interactions(data)
        return {
            "n_users": interactions.n_users,
            "n_items": interactions.n_items,
            "rating_scale": list(interactions.rating_scale),
        }

    def build_model(self, cfg: DictConfig, data: ProjectData) -> Any:
        """The core's model, refused under a protocol it does not serve (a ranker has no ratings to give), or
        without validation interactions (its checkpoint is chosen on them: none would make val metrics NaN)."""
        interactions = _interactions(data)
        if not len(interactions.targets("val")):
            fraction = interactions.val_fraction
            raise UsageError(
                f"no validation interactions: data.val_fraction={fraction:g} of "
                f"{len(interactions.inputs('train'))} training interactions holds out none, and training "
                "chooses its checkpoint on them.",
                f"give more interactions (data.val_fraction={fraction:g} holds out one in {math.ceil(1 / fraction)}), "
                "or a larger data.val_fraction."
                if fraction > 0
                else "use a positive data.val_fraction (e.g. 0.05).",
            )
        model = super().build_model(cfg, data)
        protocols = model.protocols if isinstance(model, Recommends) else PROTOCOLS
        protocol = _interactions(data).protocol
        if protocol not in protocols:
            raise UsageError(
                f"{type(model).__name__} does not work under protocol={protocol}: it supports {', '.join(protocols)}.",
                "use protocol=ranking for popularity, bpr, two_tower and item_item; protocol=rating for "
                "global_mean, bias, mf and autorec.",
            )
        return model

    # --- evaluation -----------------------------------------------------------------------------------
    def score(self, data: ProjectData, split: str, outputs: np.ndarray) -> dict[str, float]:
        """RMSE and MAE of the ratings, or the top-k metrics of the item scores, by the data's protocol."""
        interactions = _interactions(data)
        if interactions.protocol == RANKING:
            return ranking_metrics(interactions.targets(split), interactions.excluded(split), outputs)
        return rating_metrics(interactions.targets(split), outputs)

    def report(self, evaluation: Evaluation, plots_dir: Path, data: ProjectData, model: Any) -> list[Path]:
        interactions = _interactions(data)
        if interactions.protocol == RANKING:
            return evaluate.ranking_report(evaluation, plots_dir, interactions)
        return evaluate.rating_report(evaluation, plots_dir)

    # --- prediction -----------------------------------------------------------------------------------
    def command_line_record(self, cfg: DictConfig) -> dict[str, Any] | None:
        return predict.command_line_record(cfg)

    def read_file(self, path: Path, run: Run, cfg: DictConfig) -> list[PredictItem]:
        return predict.read_pairs(
            path, lambda name, payload: parse_item(self, name, payload, run, cfg), cfg.get("encoding")
        )

    def request_schema(self, run: Run) -> RecordSchema:
        return predict.query_schema(_interactions(run.prepared_data))

    def parse_record(self, payload: Any, run: Run, cfg: DictConfig) -> predict.Query:
        return predict.parse_query(payload, _interactions(run.prepared_data), run.model, cfg)

    def predict_rows(self, run: Run, values: list[Any], cfg: DictConfig) -> list[list[dict[str, Any]]]:
        return predict.answer(run, _interactions(run.prepared_data), values)

    # --- monitoring -----------------------------------------------------------------------------------
    def monitored_inputs(self, run: Run, values: list[Any]) -> np.ndarray:
        """Queries as (user, item) index pairs, -1 where the query has no known user or no item."""
        return predict.query_pairs(values)

    def reference_split(self, data: ProjectData) -> str:
        """The training interactions: (user, item) pairs under both protocols (ranking's held-out splits are users),
        and what is measured of them (history, popularity) is counted, not learned by the model."""
        return "train"

    def monitored_outputs(self, run: Run, inputs: np.ndarray) -> predict.PairScores:
        """The score `predict` answers for each monitored pair, the cold-start score for a user it does not know."""
        return predict.pair_scores(run, _interactions(run.prepared_data), inputs)

    def monitored_predictions(self, data: ProjectData, outputs: predict.PairScores | np.ndarray) -> Features:
        """The answered scores (`score`): of new pairs, or of the test split's pairs (the test ratings' predictions;
        under ranking, the scores of each test user's held-out items, as a request for each test pair would get)."""
        interactions = _interactions(data)
        if isinstance(outputs, predict.PairScores):
            scores = outputs.values
        elif interactions.protocol == RANKING:
            users, items = np.nonzero(interactions.targets("test"))
            scores = outputs[users, items]
        else:
            scores = outputs
        return Features(numbers={"score": scores})

    def monitored_features(self, model: Any, data: ProjectData, inputs: np.ndarray) -> Features:
        """Who asks and about what: whether the user has a training history (`user`: known or new), how long it is,
        and how popular the item is (training interactions). A file of new users shows in all of them."""
        interactions = _interactions(data)
        users, items = np.asarray(inputs)[:, 0], np.asarray(inputs)[:, 1]
        history = np.where(users >= 0, interactions.user_activity[np.clip(users, 0, None)], 0.0)
        popularity = np.where(items >= 0, interactions.item_popularity[np.clip(items, 0, None)], np.nan)
        return Features(
            numbers={"user_history": history, "item_popularity": popularity},
            categories={"user": np.where(history > 0, "known", "new")},
        )
