"""The recommender as the core sees it: models built for the data's catalogue, the protocol's metrics,
its plots, and a `predict` of its own (users, similar items, or scored pairs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig

from projects.recommender import evaluate, predict
from projects.recommender.data import RANKING, RATING, Interactions
from projects.recommender.metrics import ranking_metrics, rating_metrics
from projects.recommender.models import AutoRec, model_protocols
from shared.data import ProjectData
from shared.errors import UsageError
from shared.project import Command, Evaluation, Project


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

    def build_model(self, cfg: DictConfig, data: ProjectData) -> Any:
        assert isinstance(data, Interactions)
        options: dict[str, Any] = {
            "n_users": data.n_users,
            "n_items": data.n_items,
            "rating_scale": list(data.rating_scale),
        }
        if str(cfg.model._target_).endswith(("MatrixFactorization", "AutoRec")):
            options["global_mean"] = float(data.targets("train").mean())
        model = instantiate(cfg.model, **options, _convert_="all")
        if isinstance(model, AutoRec):  # its input at training and prediction time: the training ratings
            model.observe(data.inputs("train"), data.targets("train"))
        if data.protocol not in model_protocols(model):
            name = cfg.model._target_.rsplit(".", 1)[-1]
            raise UsageError(
                f"{name} does not work under protocol={data.protocol}: it supports {', '.join(model.protocols)}.",
                "use protocol=ranking for popularity, bpr, two_tower and item_item; protocol=rating for "
                "global_mean, bias, mf and autorec.",
            )
        return model

    def score(self, targets: np.ndarray, outputs: np.ndarray) -> dict[str, float]:
        return ranking_metrics(targets, outputs) if outputs.ndim == 2 else rating_metrics(targets, outputs)

    def report(self, evaluation: Evaluation, plots_dir: Path, data: ProjectData, model: Any) -> list[Path]:
        return evaluate.report(evaluation, plots_dir, data)

    def model_details(self, model: Any) -> dict[str, Any]:
        protocols = model_protocols(model)
        return {
            "protocols": ", ".join(protocols),
            "supports ratings": RATING in protocols,
            "supports ranking": RANKING in protocols,
        }

    def commands(self) -> dict[str, Command]:
        return {
            "predict": Command(
                "predict", "user=ID k=10 | item=ID similar=10 | input=pairs.csv output=FILE", predict.predict_command
            )
        }
