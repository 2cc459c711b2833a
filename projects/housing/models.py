"""Housing models: scikit-learn `Pipeline`s (shared preprocessing + one regressor), built by Hydra from `model=`.

Every model is wrapped in `CrossValidated`, which k-fold cross-validates it on the train part (the
book's protocol, in place of a validation split) and turns the out-of-fold residuals into split-
conformal prediction intervals. The neural model is a torch MLP trained by Lightning inside a
scikit-learn estimator, so it takes exactly the same preprocessed data and saves as one pipeline.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from lightning import LightningModule, Trainer
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.ensemble import StackingRegressor
from sklearn.linear_model import RidgeCV
from sklearn.metrics import root_mean_squared_error
from sklearn.model_selection import KFold, RandomizedSearchCV, cross_val_predict
from sklearn.pipeline import Pipeline
from torch import nn
from torchmetrics.regression import MeanSquaredError

from projects.housing.features import make_preprocessor
from shared.data import tensor_loader
from shared.fitters import quiet_lightning

log = logging.getLogger(__name__)


def pipeline(regressor: Any, features: Mapping[str, Any] | None = None) -> Pipeline:
    """The shared preprocessing (`features` are `make_preprocessor`'s options) followed by `regressor`."""
    return Pipeline([("preprocess", make_preprocessor(**(features or {}))), ("regressor", regressor)])


def stack(estimators: Mapping[str, Any], cv: int = 5, n_jobs: int | None = None) -> StackingRegressor:
    """Pipelines blended by a ridge regression fitted on their out-of-fold predictions (stacked generalisation)."""
    return StackingRegressor(
        list(estimators.items()),
        final_estimator=RidgeCV(alphas=np.logspace(-3, 3, 13)),
        cv=KFold(cv, shuffle=True, random_state=42),
        n_jobs=n_jobs,
    )


def search(
    estimator: Any, distributions: Mapping[str, Any], n_iter: int = 10, cv: int = 3, n_jobs: int | None = None
) -> RandomizedSearchCV:
    """Randomized search over pipeline parameters (`regressor__max_features`, `preprocess__geo__n_clusters`)."""
    return RandomizedSearchCV(
        estimator,
        dict(distributions),
        n_iter=n_iter,
        cv=KFold(cv, shuffle=True, random_state=42),
        scoring="neg_root_mean_squared_error",
        n_jobs=n_jobs,
        random_state=42,
    )


class CrossValidated(RegressorMixin, BaseEstimator):
    """k-fold cross-validation of `estimator` on the training data, then a fit on all of it.

    The out-of-fold residuals give the cross-validated RMSE and a split-conformal interval: the
    `coverage` quantile of the absolute residuals, added around each prediction. `predict` returns
    the value and, when `cv` ≥ 2, the interval's bounds as columns 1 and 2, all clipped to [0, `cap`].
    """

    def __init__(
        self, estimator: Any, cv: int = 5, coverage: float = 0.9, cap: float | None = None, n_jobs: int | None = None
    ) -> None:
        self.estimator = estimator
        self.cv = cv
        self.coverage = coverage
        self.cap = cap
        self.n_jobs = n_jobs

    def fit(self, X: Any, y: np.ndarray) -> CrossValidated:
        y = np.asarray(y, dtype=float)
        self.estimator_ = clone(self.estimator).fit(X, y)
        self.cv_rmse_: list[float] = []
        self.half_width_: float | None = None
        if self.cv >= 2:
            # A search cross-validates the chosen parameters again here: its own CV scores were used to choose.
            chosen = getattr(self.estimator_, "best_estimator_", self.estimator)
            folds = KFold(self.cv, shuffle=True, random_state=42)
            predicted = cross_val_predict(clone(chosen), X, y, cv=folds, n_jobs=self.n_jobs)
            self.cv_rmse_ = [root_mean_squared_error(y[test], predicted[test]) for _, test in folds.split(X)]
            residuals = np.abs(y - predicted)
            level = min(1.0, np.ceil((len(y) + 1) * self.coverage) / len(y))  # the finite-sample conformal quantile
            self.half_width_ = float(np.quantile(residuals, level, method="higher"))
        return self

    def predict(self, X: Any) -> np.ndarray:
        value = self.point(X)
        if self.half_width_ is None:
            return value
        return np.column_stack([value, self._clip(value - self.half_width_), self._clip(value + self.half_width_)])

    def point(self, X: Any) -> np.ndarray:
        """The point prediction alone (what permutation importance scores)."""
        return self._clip(np.asarray(self.estimator_.predict(X), dtype=float))

    def _clip(self, values: np.ndarray) -> np.ndarray:
        """No value is negative, none above the census cap: a prediction outside is wrong by construction."""
        return np.clip(values, 0.0, np.inf if self.cap is None else self.cap)

    def details(self) -> dict[str, Any]:
        """Cross-validation scores, interval width and, for a search, the chosen parameters."""
        details: dict[str, Any] = {"estimator": describe(self.estimator_)}
        if self.cv_rmse_:
            details |= {
                "cv_folds": self.cv,
                "cv_rmse_mean": round(float(np.mean(self.cv_rmse_)), 1),
                "cv_rmse_std": round(float(np.std(self.cv_rmse_)), 1),
                "interval_coverage_target": self.coverage,
                "interval_half_width": round(self.half_width_ or 0.0, 1),
            }
        if hasattr(self.estimator_, "best_params_"):
            details["best_params"] = {key: _plain(value) for key, value in self.estimator_.best_params_.items()}
            details["search_cv_rmse"] = round(-float(self.estimator_.best_score_), 1)
        return details


def describe(estimator: Any) -> str:
    """A short name for what is inside the wrappers: `StackingRegressor(ridge=RidgeCV, forest=...)`."""
    if isinstance(estimator, CrossValidated):
        return describe(estimator.estimator)
    if isinstance(estimator, Pipeline):
        return describe(estimator.steps[-1][1])
    if isinstance(estimator, RandomizedSearchCV):
        return f"RandomizedSearchCV({describe(estimator.estimator)})"
    if isinstance(estimator, StackingRegressor):
        return f"StackingRegressor({', '.join(f'{name}={describe(member)}' for name, member in estimator.estimators)})"
    return type(estimator).__name__


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


class _Regression(LightningModule):
    """Mean-squared-error training of `network` with AdamW; validation RMSE from torchmetrics."""

    def __init__(self, network: nn.Module, lr: float, weight_decay: float) -> None:
        super().__init__()
        self.network, self.lr, self.weight_decay = network, lr, weight_decay
        self.val_mse = MeanSquaredError()
        self.best: tuple[float, dict[str, torch.Tensor]] = (float("inf"), {})

    def training_step(self, batch: Sequence[torch.Tensor], batch_index: int) -> torch.Tensor:
        inputs, targets = batch
        loss = nn.functional.mse_loss(self.network(inputs).squeeze(1), targets)
        self.log("train/loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: Sequence[torch.Tensor], batch_index: int) -> None:
        inputs, targets = batch
        self.val_mse(self.network(inputs).squeeze(1), targets)

    def on_validation_epoch_end(self) -> None:
        mse = float(self.val_mse.compute())
        self.val_mse.reset()
        self.log("val/mse", mse)
        if mse < self.best[0] and not self.trainer.sanity_checking:
            self.best = (mse, copy.deepcopy(self.network.state_dict()))

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.trainer.max_epochs or 1)
        return {"optimizer": optimizer, "lr_scheduler": schedule}


@contextmanager
def _torch_threads(count: int) -> Iterator[None]:
    """A net this small gains nothing from more threads, and on a busy CPU spinning threads make it 10x slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class TorchMLPRegressor(RegressorMixin, BaseEstimator):
    """A multilayer perceptron in torch, trained by Lightning, behind scikit-learn's fit/predict.

    Targets are standardised for training; the weights kept are those of the epoch with the lowest
    RMSE on `validation_fraction` of the training rows (early stopping with `patience` epochs).
    """

    def __init__(
        self,
        hidden: Sequence[int] = (256, 128, 64),
        dropout: float = 0.1,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        batch_size: int = 256,
        max_epochs: int = 100,
        patience: int = 15,
        validation_fraction: float = 0.1,
        random_state: int = 42,
        threads: int = 1,
    ) -> None:
        self.hidden = hidden
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.threads = threads

    def _network(self, inputs: int) -> nn.Sequential:
        layers: list[nn.Module] = []
        for width in self.hidden:
            layers += [nn.Linear(inputs, width), nn.GELU(), nn.Dropout(self.dropout)]
            inputs = width
        return nn.Sequential(*layers, nn.Linear(inputs, 1))

    def fit(self, X: np.ndarray, y: np.ndarray) -> TorchMLPRegressor:
        from lightning.pytorch.callbacks import EarlyStopping

        torch.manual_seed(self.random_state)
        X = torch.as_tensor(np.asarray(X, dtype=np.float32))
        y = np.asarray(y, dtype=np.float64)
        self.y_mean_, self.y_scale_ = float(y.mean()), float(y.std() or 1.0)
        targets = torch.as_tensor((y - self.y_mean_) / self.y_scale_, dtype=torch.float32)
        order = torch.randperm(len(X), generator=torch.Generator().manual_seed(self.random_state))
        held = max(1, int(len(X) * self.validation_fraction))
        val, train = order[:held], order[held:]
        module = _Regression(self._network(X.shape[1]), self.lr, self.weight_decay)
        with (
            quiet_lightning(),
            _torch_threads(self.threads),
        ):  # one fit per fold: no device banner or loader advice each time
            trainer = Trainer(
                accelerator="cpu",
                max_epochs=self.max_epochs,
                callbacks=[EarlyStopping("val/mse", patience=self.patience)],
                logger=False,
                enable_checkpointing=False,
                enable_progress_bar=False,
                enable_model_summary=False,
                num_sanity_val_steps=0,
            )
            trainer.fit(
                module,
                tensor_loader(X[train], targets[train], batch_size=self.batch_size, shuffle=True),
                tensor_loader(X[val], targets[val], batch_size=4096),
            )
        module.network.load_state_dict(module.best[1])
        self.network_ = module.network.eval()
        self.epochs_ = trainer.current_epoch
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            scaled = self.network_(torch.as_tensor(np.asarray(X, dtype=np.float32))).squeeze(1).numpy()
        return scaled.astype(np.float64) * self.y_scale_ + self.y_mean_
