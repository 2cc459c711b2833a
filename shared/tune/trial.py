"""What a train run does differently as a trial of `tune`: it never evaluates the test split, and a scikit-learn model
is also scored by k-fold cross-validation on the train split (`cv/<metric>`), since it has no epochs to prune on.

Imported by `shared.train`; it needs no Optuna.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from omegaconf import DictConfig

from shared.checks import whole
from shared.data import ProjectData
from shared.fitters import Fitter
from shared.project import Project

CV_PREFIX = "cv"


@dataclass(frozen=True)
class TrialOptions:
    """The `trial` node of a train config: which study and trial the run is, whether it reads test, the CV folds."""

    study: str | None = None
    number: int | None = None
    evaluate_test: bool = True
    cv_folds: int = 0

    @classmethod
    def of(cls, cfg: DictConfig) -> TrialOptions:
        node = cfg.get("trial") or {}
        folds = node.get("cv_folds") or 0
        return cls(
            study=node.get("study"),
            number=node.get("number"),
            evaluate_test=bool(node.get("evaluate_test", True)),
            cv_folds=whole(folds, "trial.cv_folds", minimum=0) if folds else 0,
        )

    def record(self) -> dict[str, Any]:
        """What metrics.json says about the trial."""
        return {"study": self.study, "number": self.number, "evaluate_test": self.evaluate_test}


class HeldOutFold(ProjectData):
    """A cross-validation fold's held-out targets, seen by the project's `score` as a split of the data: every split
    name reads the fold's targets; anything else the project's score asks of its data comes from the real data."""

    def __init__(self, data: ProjectData, targets: np.ndarray) -> None:
        super().__init__(data.mirror_dir, data.cache_dir)
        self.data, self.fold_targets = data, np.asarray(targets)

    def prepare(self) -> None:
        """The real data is prepared already."""

    def inputs(self, split: str) -> Any:
        raise TypeError("a held-out fold gives its targets to the project's score, not its inputs")

    def targets(self, split: str) -> np.ndarray:
        return self.fold_targets

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["data"], name)


def cross_validated_scores(
    project: Project, fitter: Fitter, model: Any, data: ProjectData, folds: int, seed: int
) -> dict[str, float]:
    """The project's metrics averaged over `folds` folds of the train split, as `cv/<metric>`; empty for a model its
    fitter does not cross-validate (Lightning modules: they are scored on val, epoch by epoch)."""
    if folds < 2:
        return {}

    def score(targets: np.ndarray, raw: np.ndarray) -> dict[str, float]:
        return project.score(HeldOutFold(data, targets), "val", project.outputs(raw))

    scores = fitter.cross_validate(model, data, folds, score, seed)
    return {f"{CV_PREFIX}/{name}": value for name, value in (scores or {}).items()}
