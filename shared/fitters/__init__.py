"""How each kind of model is fitted, run, saved and loaded: Lightning modules and scikit-learn estimators.

The flows in `train`, `evaluate` and `predict` only talk to a `Fitter`, so a project may use
either kind of model (or both) without the core assuming Lightning. Prediction never builds a
`Trainer`: the module runs under `torch.inference_mode` on the run's device, fast enough to be
called once per HTTP request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning import LightningModule
from sklearn.base import BaseEstimator

from shared.fitters.base import FitResult, Fitter, first_line, preprocessed, read_plain_checkpoint
from shared.fitters.estimator_files import SAFE_LIBRARY_TYPES, load_estimator, save_estimator
from shared.fitters.lightning_fitter import History, LightningFitter, check_trainer_options
from shared.fitters.sklearn_fitter import SklearnFitter

__all__ = [
    "SAFE_LIBRARY_TYPES",
    "FitResult",
    "Fitter",
    "History",
    "LightningFitter",
    "SklearnFitter",
    "check_trainer_options",
    "first_line",
    "fitter_for",
    "fitter_that_saved",
    "load_estimator",
    "preprocessed",
    "read_plain_checkpoint",
    "save_estimator",
]


def fitter_for(model: Any) -> Fitter:
    """The fitter that knows how to train `model`."""
    if isinstance(model, LightningModule):
        return LightningFitter()
    if isinstance(model, BaseEstimator):
        return SklearnFitter()
    raise TypeError(f"{type(model).__name__} is neither a LightningModule nor a scikit-learn estimator")


def fitter_that_saved(run_dir: Path) -> Fitter | None:
    """The fitter whose artifact the run holds (`model.ckpt`: Lightning, `model.skops`: scikit-learn), if any."""
    return next(
        (fitter for fitter in (LightningFitter(), SklearnFitter()) if (run_dir / fitter.artifact).is_file()), None
    )
