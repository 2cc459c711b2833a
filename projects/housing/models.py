"""Housing models: scikit-learn `Pipeline`s (shared preprocessing + one regressor), built by Hydra from `model=`.

Every model is wrapped in `CrossValidated`, which k-fold cross-validates it on the train part (the
book's protocol, in place of a validation split) and turns the out-of-fold residuals into split-
conformal prediction intervals. The neural model, `MLPRegressor`, is a LightningModule trained by the
core's Trainer on the same preprocessing (early-stopped on a validation split instead of k-fold CV).

Every model predicts three columns, [value, interval_low, interval_high], the bounds NaN when it has no
interval (`CrossValidated` with `cv` < 2, the MLP trained without a validation split); the project reads
them as an `Estimates` record. Every model also gives its point prediction alone (`PointPredictor`).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from lightning import LightningModule
from scipy import stats
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.ensemble import StackingRegressor
from sklearn.linear_model import RidgeCV
from sklearn.metrics import root_mean_squared_error
from sklearn.model_selection import KFold, RandomizedSearchCV, cross_val_predict
from sklearn.pipeline import Pipeline
from torch import nn
from torchmetrics.regression import MeanSquaredError

from projects.housing.features import make_preprocessor
from shared import checks
from shared.capabilities import CarriesPreprocessor, Describes, ExportGraph, Exports, FitsOnTrain, PredictStep
from shared.errors import UsageError

log = logging.getLogger(__name__)


class PointPredictor(ABC):
    """A housing model's point predictions alone, for raw district rows: what permutation importance shuffles
    inputs against (the full `predict` also returns the interval's bounds)."""

    @abstractmethod
    def point(self, X: Any) -> np.ndarray:
        """Predicted values in dollars, one per row of `X`."""


def pipeline(regressor: Any, features: Mapping[str, Any] | None = None) -> Pipeline:
    """The shared preprocessing (`features` are `make_preprocessor`'s options) followed by `regressor`."""
    return Pipeline([("preprocess", make_preprocessor(**(features or {}))), ("regressor", regressor)])


class PointsOf(RegressorMixin, BaseEstimator):
    """A housing model as a plain scikit-learn regressor whose `predict` is its point values alone: what an
    estimator that nests models (a stack blending its members) expects, where the full three columns would not do."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def fit(self, X: Any, y: np.ndarray) -> PointsOf:
        self.model_ = clone(self.model).fit(X, y)
        return self

    def predict(self, X: Any) -> np.ndarray:
        return self.model_.point(X)


def _negative_point_rmse(estimator: Any, X: Any, y: np.ndarray) -> float:
    """A search's score: minus the RMSE of the point values (the interval's columns are not a prediction)."""
    return -float(root_mean_squared_error(y, estimator.point(X)))


def stack(estimators: Mapping[str, Any], cv: int = 5, n_jobs: int | None = None) -> StackingRegressor:
    """Pipelines blended by a ridge regression fitted on their out-of-fold predictions (stacked generalisation)."""
    return StackingRegressor(
        [(name, PointsOf(member)) for name, member in estimators.items()],
        final_estimator=RidgeCV(alphas=np.logspace(-3, 3, 13)),
        cv=KFold(cv, shuffle=True, random_state=42),
        n_jobs=n_jobs,
    )


class Distribution:
    """A scipy.stats distribution kept as its name and arguments, rebuilt for each draw: the same draws as the
    frozen distribution itself, but plain data that a run can store without a pickle (skops cannot walk scipy's
    frozen distributions)."""

    def __init__(self, name: str, args: Sequence[Any] = (), kwds: Mapping[str, Any] | None = None) -> None:
        self.name, self.args, self.kwds = name, tuple(args), dict(kwds or {})

    def rvs(self, random_state: Any = None, size: Any = None) -> Any:
        return getattr(stats, self.name)(*self.args, **self.kwds).rvs(size=size, random_state=random_state)

    def __repr__(self) -> str:
        arguments = [*map(repr, self.args), *(f"{key}={value!r}" for key, value in self.kwds.items())]
        return f"{self.name}({', '.join(arguments)})"


def _storable(values: Any) -> Any:
    """A search's candidate values: a list stays, a frozen scipy distribution becomes a `Distribution`."""
    if isinstance(values, stats.distributions.rv_frozen):
        return Distribution(values.dist.name, values.args, values.kwds)
    return values


def search(
    estimator: Any, distributions: Mapping[str, Any], n_iter: int = 10, cv: int = 3, n_jobs: int | None = None
) -> RandomizedSearchCV:
    """Randomized search over pipeline parameters (`regressor__max_features`, `preprocess__geo__n_clusters`)."""
    return RandomizedSearchCV(
        estimator,
        {name: _storable(values) for name, values in distributions.items()},
        n_iter=n_iter,
        cv=KFold(cv, shuffle=True, random_state=42),
        scoring=_negative_point_rmse,
        n_jobs=n_jobs,
        random_state=42,
    )


class CrossValidated(RegressorMixin, BaseEstimator, PointPredictor, Describes):
    """k-fold cross-validation of `estimator` on the training data, then a fit on all of it.

    The out-of-fold residuals give the cross-validated RMSE and a split-conformal interval: the
    `coverage` quantile of the absolute residuals, added around each prediction. `predict` returns
    the value and the interval's bounds (NaN when `cv` < 2), all clipped to [0, `cap`].
    """

    def __init__(
        self, estimator: Any, cv: int = 5, coverage: float = 0.9, cap: float | None = None, n_jobs: int | None = None
    ) -> None:
        # Checked here, not in `fit`, so a bad `cv.folds`/`cv.coverage` stops the run before any fitting.
        if isinstance(cv, bool) or not isinstance(cv, int) or cv < 0 or cv == 1:
            raise UsageError(
                f"cv.folds={cv!r} (the model's cv) is not a number of cross-validation folds.",
                "use cv.folds=5 (k-fold, at least 2), or cv.folds=0 for no cross-validation and no interval.",
            )
        checks.fraction(coverage, "cv.coverage", 0.9)
        self.estimator = estimator
        self.cv = cv
        self.coverage = coverage
        self.cap = cap
        self.n_jobs = n_jobs

    def fit(self, X: Any, y: np.ndarray) -> CrossValidated:
        y = np.asarray(y, dtype=float)
        if self.cv > len(y):
            raise UsageError(
                f"cv.folds={self.cv} is more folds than the {len(y)} training rows.", "use cv.folds=5, or 0 for none."
            )
        self.estimator_ = clone(self.estimator).fit(X, y)
        self.cv_rmse_: list[float] = []
        self.half_width_: float | None = None
        if self.cv >= 2:
            # A search cross-validates the chosen parameters again here: its own CV scores were used to choose.
            searched = isinstance(self.estimator_, RandomizedSearchCV)
            chosen = self.estimator_.best_estimator_ if searched else self.estimator
            chosen = PointsOf(chosen) if isinstance(chosen, PointPredictor) else chosen  # values, not bounds
            folds = KFold(self.cv, shuffle=True, random_state=42)
            predicted = cross_val_predict(clone(chosen), X, y, cv=folds, n_jobs=self.n_jobs)
            self.cv_rmse_ = [root_mean_squared_error(y[test], predicted[test]) for _, test in folds.split(X)]
            residuals = np.abs(y - predicted)
            level = min(1.0, np.ceil((len(y) + 1) * self.coverage) / len(y))  # the finite-sample conformal quantile
            self.half_width_ = float(np.quantile(residuals, level, method="higher"))
        return self

    def predict(self, X: Any) -> np.ndarray:
        """(N, 3): the value, then the interval's low and high bounds (NaN without cross-validation)."""
        value = self.point(X)
        if self.half_width_ is None:
            missing = np.full_like(value, np.nan)
            return np.column_stack([value, missing, missing])
        return np.column_stack([value, self._clip(value - self.half_width_), self._clip(value + self.half_width_)])

    def point(self, X: Any) -> np.ndarray:
        """The point prediction alone (what permutation importance scores). A search's refitted best draw, or a
        wrapped housing model, gives its own point values; a plain pipeline its predictions."""
        fitted = self.estimator_.best_estimator_ if isinstance(self.estimator_, RandomizedSearchCV) else self.estimator_
        values = fitted.point(X) if isinstance(fitted, PointPredictor) else fitted.predict(X)
        return self._clip(np.asarray(values, dtype=float))

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
        if isinstance(self.estimator_, RandomizedSearchCV):
            details["best_params"] = {key: _plain(value) for key, value in self.estimator_.best_params_.items()}
            details["search_cv_rmse"] = round(-float(self.estimator_.best_score_), 1)
        return details


def describe(estimator: Any) -> str:
    """A short name for what is inside the wrappers: `StackingRegressor(ridge=RidgeCV, forest=...)`."""
    if isinstance(estimator, CrossValidated):
        return describe(estimator.estimator)
    if isinstance(estimator, PointsOf):
        return describe(estimator.model)
    if isinstance(estimator, Pipeline):
        return describe(estimator.steps[-1][1])
    if isinstance(estimator, RandomizedSearchCV):
        return f"RandomizedSearchCV({describe(estimator.estimator)})"
    if isinstance(estimator, StackingRegressor):
        return f"StackingRegressor({', '.join(f'{name}={describe(member)}' for name, member in estimator.estimators)})"
    return type(estimator).__name__


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


class MLPRegressor(LightningModule, FitsOnTrain, CarriesPreprocessor, Describes, PointPredictor, Exports):
    """A multilayer perceptron in torch on the shared preprocessing, trained by the core's Lightning `Trainer`.

    The `ColumnTransformer` is fitted on the train split (`fit_on_train`, called when the project
    builds the model) and carried as `preprocessor`, which the core applies to every input and saves
    beside the checkpoint. Targets are standardised for training. The interval is split-conformal: the
    `coverage` quantile of the absolute validation residuals at the kept epoch, added around each value;
    trained without a validation split, the model has no interval (NaN bounds).

    Exported as `predict_step` over the preprocessed features (the `ColumnTransformer` stays in Python, as the
    core applies it before the loader): the value and its interval's bounds.
    """

    def __init__(
        self,
        hidden: Sequence[int] = (256, 128, 64),
        dropout: float = 0.1,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        coverage: float = 0.9,
        cap: float | None = None,
        features: Mapping[str, Any] | None = None,
        in_features: int | None = None,
    ) -> None:
        super().__init__()
        checks.fraction(coverage, "cv.coverage", 0.9)
        if (features or {}).get("neighbours"):  # its batches are transformed, not cross-fitted: values would leak
            raise UsageError(
                "the MLP cannot use the neighbourhood features: they are cross-fitted on the rows a scikit-learn "
                "pipeline is fitted on, and the MLP's batches would hold each district's own value.",
                "leave model.features.neighbours at 0 for model=mlp (the tree models take it).",
            )
        self.save_hyperparameters()
        self.preprocessor = make_preprocessor(**(features or {}))
        self.network: nn.Module | None = self._network(in_features) if in_features else None
        # Set from the train split, kept in the checkpoint with the weights.
        self.register_buffer("target_mean", torch.tensor(0.0))
        self.register_buffer("target_scale", torch.tensor(1.0))
        self.register_buffer("half_width", torch.tensor(float("nan")))
        self.val_rmse = MeanSquaredError(squared=False)
        self.residuals: list[torch.Tensor] = []

    def _network(self, inputs: int) -> nn.Sequential:
        layers: list[nn.Module] = []
        for width in self.hparams.hidden:
            layers += [nn.Linear(inputs, width), nn.GELU(), nn.Dropout(self.hparams.dropout)]
            inputs = width
        return nn.Sequential(*layers, nn.Linear(inputs, 1))

    def fit_on_train(self, inputs: Any, targets: np.ndarray) -> None:
        """Fit the features and the target scaling on the training rows, and size the network to the features."""
        width = self.preprocessor.fit_transform(inputs).shape[1]
        self.hparams.in_features = width  # saved with the checkpoint: `load` rebuilds the network at this size
        self.network = self._network(width)
        self.target_mean.fill_(float(np.mean(targets)))
        self.target_scale.fill_(float(np.std(targets)) or 1.0)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Predicted values in dollars."""
        if self.network is None:
            raise RuntimeError("fit_on_train must run before the model sees data")
        return self.network(features).squeeze(1) * self.target_scale + self.target_mean

    def training_step(self, batch: Sequence[torch.Tensor], batch_index: int) -> torch.Tensor:
        features, targets = batch
        scaled = (self(features) - targets) / self.target_scale
        loss = scaled.pow(2).mean()  # MSE on standardised values
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True)
        return loss

    def validation_step(self, batch: Sequence[torch.Tensor], batch_index: int) -> None:
        features, targets = batch
        predicted = self._clip(self(features))
        self.val_rmse(predicted, targets)
        self.residuals.append((predicted - targets).abs())
        self.log("val/rmse", self.val_rmse, on_epoch=True, prog_bar=True)

    def on_validation_epoch_end(self) -> None:
        residuals = self.all_gather(torch.cat(self.residuals)).flatten()
        self.residuals.clear()
        level = min(1.0, float(np.ceil((len(residuals) + 1) * self.hparams.coverage) / len(residuals)))
        # Updated every epoch, so the checkpoint of the kept epoch holds that epoch's interval.
        self.half_width.fill_(float(torch.quantile(residuals.float(), level, interpolation="higher")))

    def predict_step(self, batch: Sequence[torch.Tensor], batch_index: int) -> torch.Tensor:
        """(N, 3): the value, then the interval's bounds (NaN, and NaN stays NaN when clipped, without one)."""
        value = self._clip(self(batch[0]))
        return torch.stack([value, self._clip(value - self.half_width), self._clip(value + self.half_width)], 1)

    def export_graph(self, batch: Sequence[torch.Tensor]) -> ExportGraph:
        return ExportGraph(PredictStep(self), ("features",))

    def export_inputs(self, batch: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"features": batch[0].cpu()}

    def _clip(self, values: torch.Tensor) -> torch.Tensor:
        # float(cap): a float lower and an int upper bound break torch's ONNX decomposition of clamp (torch 2.14)
        return values.clamp(0.0, float(self.hparams.cap)) if self.hparams.cap else values.clamp(min=0.0)

    def point(self, inputs: Any) -> np.ndarray:
        """Point predictions for raw district rows (what permutation importance shuffles)."""
        features = torch.as_tensor(np.asarray(self.preprocessor.transform(inputs), dtype=np.float32))
        with torch.no_grad():
            return self._clip(self.eval()(features.to(self.device))).double().cpu().numpy()

    def details(self) -> dict[str, Any]:
        """The feature count and, when there is one (a validation split), the interval's half width."""
        details: dict[str, Any] = {"estimator": type(self).__name__, "features": self.hparams.in_features}
        if not torch.isnan(self.half_width):
            details |= {
                "interval_coverage_target": self.hparams.coverage,
                "interval_half_width": round(float(self.half_width), 1),
            }
        return details

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.trainer.max_epochs or 1)
        return {"optimizer": optimizer, "lr_scheduler": schedule}
