"""Recommenders. Every model answers two questions on index arrays:

* `rate`: the rating a user would give an item (the `rating` protocol);
* `score_all`: a score for every item, per user, to rank (the `ranking` protocol).

Closed-form models are scikit-learn estimators (`fit(pairs, ratings)`, `predict(pairs or users)`), in
`closed_form.py`: global mean and biases, popularity, and the item-item EASE model. Gradient-trained ones, here,
are Lightning modules fed by the data's loader: biased matrix factorization and item-based AutoRec (ratings), BPR
matrix factorization and a two-tower network (ranking). The project's `model_options` hands all of them the
catalogue's size and rating scale; what a model learns from the train split before training (a global mean,
AutoRec's input ratings) it declares with `FitsOnTrain`.

Capabilities (`capabilities.py`), declared by subclassing: every model `Recommends` (the protocols it serves);
`ComparesItems` models also say how alike two items are, for `predict item=ID similar=K`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from lightning import LightningModule
from torch import nn
from torchmetrics import MeanSquaredError

from projects.recommender.capabilities import ComparesItems, Recommends
from projects.recommender.closed_form import BiasBaseline, ItemItem, Popularity, cosine_to
from projects.recommender.data import RANKING, RATING
from projects.recommender.metrics import per_user_ranking, top_k
from shared.capabilities import ExportGraph, Exports, FitsOnTrain, PredictStep

__all__ = [  # every model a config names (projects.recommender.models.<name>), the closed-form ones included
    "BPR",
    "AutoRec",
    "BiasBaseline",
    "ItemItem",
    "MatrixFactorization",
    "Popularity",
    "TwoTower",
]


class Factorization(LightningModule, Recommends, ComparesItems, Exports):
    """What the Lightning recommenders share: user and item embeddings, Adam, prediction by batch kind
    (pairs -> ratings, users -> item scores), and validation by the protocol of the batch.

    Exported as `predict_step` for the kind of batch the run is evaluated on: (`user`, `item`) pairs to ratings
    under the rating protocol, `user` and `history` (0/1 rows) to every item's score under ranking. The graph
    takes that kind only; the other is served by the torch backend.
    """

    def __init__(self, n_users: int, n_items: int, dim: int, lr: float) -> None:
        super().__init__()
        self.n_users, self.n_items, self.lr = n_users, n_items, lr
        self.user_factors = nn.Embedding(n_users, dim)
        self.item_factors = nn.Embedding(n_items, dim)
        self.item_bias = nn.Embedding(n_items, 1)
        nn.init.normal_(self.user_factors.weight, std=0.1)
        nn.init.normal_(self.item_factors.weight, std=0.1)
        nn.init.zeros_(self.item_bias.weight)
        self.val_rmse = MeanSquaredError(squared=False)

    def rate(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} ranks items; it does not predict ratings")

    def score_all(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        return self.user_factors(users) @ self.item_factors.weight.T + self.item_bias.weight.T

    def predict_step(self, batch: dict[str, torch.Tensor], batch_index: int) -> torch.Tensor:
        if "item" in batch:
            return self.rate(batch["user"], batch["item"])
        return self.score_all(batch["user"], batch["history"])

    @staticmethod
    def export_keys(batch: dict[str, torch.Tensor]) -> tuple[str, ...]:
        """The tensors `predict_step` reads from a batch of this kind."""
        return ("user", "item") if "item" in batch else ("user", "history")

    def export_graph(self, batch: dict[str, torch.Tensor]) -> ExportGraph:
        keys = self.export_keys(batch)
        return ExportGraph(PredictStep(self, keys), keys)

    def export_inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {key: batch[key].cpu() for key in self.export_keys(batch)}

    def validation_step(self, batch: dict[str, torch.Tensor], batch_index: int) -> None:
        size = len(batch["user"])
        if "rating" in batch:
            self.val_rmse(self.rate(batch["user"], batch["item"]), batch["rating"])
            self.log("val/rmse", self.val_rmse, on_epoch=True, batch_size=size, prog_bar=True)
            return
        scores = self.score_all(batch["user"], batch["history"]).float().numpy(force=True)
        recommended = top_k(scores, batch["history"].numpy(force=True) > 0)
        users = per_user_ranking(batch["relevant"].numpy(force=True) > 0, recommended)
        self.log("val/ndcg@10", float(users["ndcg"].mean()), on_epoch=True, batch_size=size, prog_bar=True)

    def item_similarity(self, item: int) -> np.ndarray:
        """The cosine of the learned item vectors."""
        return cosine_to(self.item_factors.weight.detach().numpy(force=True), item)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)


class MatrixFactorization(Factorization, FitsOnTrain):
    """Biased matrix factorization (Koren, Bell & Volinsky, 2009): r(u, i) = μ + b_u + b_i + p_u·q_i, trained
    on squared error with an L2 penalty on the rows each batch touches (so frequent users and items are
    held back in proportion to their data, as in Funk's SGD)."""

    def __init__(
        self,
        n_users: int = 1,
        n_items: int = 1,
        rating_scale: tuple[float, float] = (1.0, 5.0),
        global_mean: float = 3.5,
        dim: int = 64,
        reg: float = 0.05,
        bias_reg: float = 0.005,
        lr: float = 0.005,
    ) -> None:
        super().__init__(n_users, n_items, dim, lr)
        self.save_hyperparameters()
        self.user_bias = nn.Embedding(n_users, 1)
        nn.init.zeros_(self.user_bias.weight)
        self.rating_scale, self.reg, self.bias_reg = tuple(rating_scale), reg, bias_reg
        self.global_mean = nn.Parameter(torch.tensor(float(global_mean)))

    def fit_on_train(self, inputs: np.ndarray, targets: np.ndarray) -> None:
        """Start μ at the mean training rating."""
        with torch.no_grad():
            self.global_mean.fill_(float(targets.mean()))

    def raw_rating(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        dot = (self.user_factors(users) * self.item_factors(items)).sum(dim=1)
        return self.global_mean + self.user_bias(users).squeeze(1) + self.item_bias(items).squeeze(1) + dot

    def rate(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.raw_rating(users, items).clamp(*self.rating_scale)

    def training_step(self, batch: dict[str, torch.Tensor], batch_index: int) -> torch.Tensor:
        users, items = batch["user"], batch["item"]
        error = F.mse_loss(self.raw_rating(users, items), batch["rating"])
        penalty = self.reg * (self.user_factors(users).square().sum(1) + self.item_factors(items).square().sum(1))
        bias_penalty = self.bias_reg * (self.user_bias(users).square() + self.item_bias(items).square()).squeeze(1)
        loss = error + (penalty + bias_penalty).mean()
        self.log("train/mse", error, on_step=False, on_epoch=True, prog_bar=True)
        return loss


class BPR(Factorization):
    """Bayesian personalised ranking (Rendle et al., 2009): matrix factorization trained so each user scores an
    item they interacted with above a random one, -log σ(x_ui - x_uj), with L2 on the touched rows."""

    protocols = (RANKING,)

    def __init__(
        self,
        n_users: int = 1,
        n_items: int = 1,
        rating_scale: tuple[float, float] = (1.0, 5.0),
        dim: int = 64,
        reg: float = 1e-4,
        lr: float = 0.005,
    ) -> None:
        super().__init__(n_users, n_items, dim, lr)
        self.save_hyperparameters()
        self.reg = reg

    def training_step(self, batch: dict[str, torch.Tensor], batch_index: int) -> torch.Tensor:
        user = self.user_factors(batch["user"])
        positive, negative = self.item_factors(batch["item"]), self.item_factors(batch["negative"])
        margin = (user * (positive - negative)).sum(1) + (
            self.item_bias(batch["item"]) - self.item_bias(batch["negative"])
        ).squeeze(1)
        loss = -F.logsigmoid(margin).mean()
        penalty = user.square().sum(1) + positive.square().sum(1) + negative.square().sum(1)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss + self.reg * penalty.mean()


class TwoTower(Factorization):
    """A two-tower network: the user tower is an MLP over the user's history (a multi-hot vector, with
    dropout), the item tower an item embedding; the score is their dot product plus an item bias. Trained
    with a full softmax over the catalogue to put each interacted item first (Covington et al., 2016;
    Liang et al., 2018); a new user needs no retraining, only a history."""

    protocols = (RANKING,)

    def __init__(
        self,
        n_users: int = 1,
        n_items: int = 1,
        rating_scale: tuple[float, float] = (1.0, 5.0),
        dim: int = 128,
        hidden: int = 256,
        dropout: float = 0.5,
        weight_decay: float = 1e-5,
        lr: float = 0.002,
    ) -> None:
        super().__init__(n_users, n_items, dim, lr)
        self.save_hyperparameters()
        self.weight_decay = weight_decay
        self.user_tower = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(n_items, hidden), nn.Tanh(), nn.Linear(hidden, dim)
        )

    def score_all(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        user = self.user_tower(F.normalize(history, dim=1))
        return user @ self.item_factors.weight.T + self.item_bias.weight.T

    def training_step(self, batch: dict[str, torch.Tensor], batch_index: int) -> torch.Tensor:
        loss = F.cross_entropy(self.score_all(batch["user"], batch["history"]), batch["item"])
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)


class AutoRec(LightningModule, Recommends, ComparesItems, FitsOnTrain):
    """Item-based AutoRec (Sedhain et al., 2015): each item is the vector of the ratings all users gave it;
    a one-hidden-layer autoencoder (sigmoid, then linear) rebuilds that vector, trained on the observed
    entries only with λ/2·‖W‖² on its weights. The rebuilt entry (item, user) is the predicted rating, so an
    item borrows strength from every user who rated it. The training ratings live in the model (`observe`,
    from `fit_on_train`), as its input at prediction time too; items without any fall back to the global mean."""

    protocols = (RATING,)

    def __init__(
        self,
        n_users: int = 1,
        n_items: int = 1,
        rating_scale: tuple[float, float] = (1.0, 5.0),
        global_mean: float = 3.5,
        hidden: int = 300,
        reg: float = 100.0,
        lr: float = 0.01,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.rating_scale, self.global_mean, self.reg, self.lr = tuple(rating_scale), global_mean, reg, lr
        self.encoder, self.decoder = nn.Linear(n_users, hidden), nn.Linear(hidden, n_users)
        self.register_buffer("ratings", torch.zeros(n_items, n_users))  # 0: not rated
        self.val_rmse = MeanSquaredError(squared=False)

    def fit_on_train(self, inputs: np.ndarray, targets: np.ndarray) -> None:
        """The training ratings as the items' input vectors, and their mean for items without any (kept in
        the hyperparameters too, which the checkpoint rebuilds the model from)."""
        self.observe(inputs, targets)
        self.global_mean = self.hparams["global_mean"] = float(targets.mean())

    def observe(self, pairs: np.ndarray, ratings: np.ndarray) -> None:
        """Store the training ratings: the items' input vectors."""
        users, items = torch.as_tensor(pairs[:, 0]), torch.as_tensor(pairs[:, 1])
        self.ratings.zero_()
        self.ratings[items, users] = torch.as_tensor(ratings, dtype=self.ratings.dtype)

    def raw_rating(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Rebuild every item's vector and read the asked entries: on a CPU one dense pass over the small
        (items x users) matrix is faster than gathering the batch's rows, or sparse products."""
        rebuilt = self.decoder(torch.sigmoid(self.encoder(self.ratings)))
        return rebuilt[items, users]

    def rate(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        known = self.ratings[items].any(dim=1)
        rating = torch.where(known, self.raw_rating(users, items), self.global_mean)
        return rating.clamp(*self.rating_scale)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """Every item's (unclamped) rating for each user: what `predict user=ID` ranks by."""
        rebuilt = self.decoder(torch.sigmoid(self.encoder(self.ratings)))[:, users].T
        return torch.where(self.ratings.any(dim=1)[None], rebuilt, self.global_mean)

    def predict_step(self, batch: dict[str, torch.Tensor], batch_index: int) -> torch.Tensor:
        if "item" in batch:
            return self.rate(batch["user"], batch["item"])
        return self.score_all(batch["user"])

    def training_step(self, batch: dict[str, torch.Tensor], batch_index: int) -> torch.Tensor:
        error = F.mse_loss(self.raw_rating(batch["user"], batch["item"]), batch["rating"])
        # λ/2·‖W‖² per observed rating, so a batch's share of the penalty matches its share of the ratings
        weights = self.encoder.weight.square().sum() + self.decoder.weight.square().sum()
        penalty = self.reg / 2 * weights / self.ratings.count_nonzero().clamp(min=1)
        self.log("train/mse", error, on_step=False, on_epoch=True, prog_bar=True)
        return error + penalty

    def validation_step(self, batch: dict[str, torch.Tensor], batch_index: int) -> None:
        self.val_rmse(self.rate(batch["user"], batch["item"]), batch["rating"])
        self.log("val/rmse", self.val_rmse, on_epoch=True, batch_size=len(batch["user"]), prog_bar=True)

    def item_similarity(self, item: int) -> np.ndarray:
        """The cosine of the items' hidden codes (their encoded rating vectors)."""
        with torch.no_grad():
            return cosine_to(torch.sigmoid(self.encoder(self.ratings)).numpy(force=True), item)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)
