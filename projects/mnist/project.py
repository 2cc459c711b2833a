"""MNIST as the core sees it: its description, metrics, plots and predict inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from projects.mnist import evaluate, predict
from shared.data import ProjectData
from shared.errors import UsageError
from shared.project import Evaluation, PredictItem, Project


class MnistProject(Project):
    name = "mnist"
    summary = "Handwritten digit recognition on MNIST (28×28 grey images, 10 classes)."
    intended_use = (
        "Teaching and benchmarking: recognising single handwritten digits that are centred and size-normalised "
        "the way MNIST's are. `predict` converts other images (colour, other sizes, dark ink on light paper) "
        "to that form first."
    )
    limitations = (
        "Trained on digits written by American census employees and students in the 1990s: other scripts, "
        "several digits per image, letters or photographs of scenes get a confident digit anyway. The "
        "probability is the model's softmax, not a calibrated guarantee. Not for any decision about a person."
    )

    def score(self, targets: np.ndarray, outputs: np.ndarray) -> dict[str, float]:
        return evaluate.score(targets, outputs)

    def report(self, evaluation: Evaluation, plots_dir: Path, data: ProjectData, model: Any) -> list[Path]:
        return evaluate.report(evaluation, plots_dir)

    def read_inputs(self, cfg: DictConfig) -> list[PredictItem]:
        if not cfg.get("input"):
            raise UsageError("predict needs an input.", "python -m projects.mnist predict input=PATH output=preds.csv")
        return predict.read_inputs(str(cfg.input))

    def stack_inputs(self, values: list[Any]) -> Any:
        return predict.stack_inputs(values)

    def prediction_columns(self, outputs: np.ndarray) -> list[dict[str, Any]]:
        return predict.prediction_columns(outputs)
