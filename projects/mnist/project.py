"""MNIST as the core sees it: its description, declared metrics, plots and predict records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from projects.mnist import evaluate, predict
from projects.mnist.data import DigitImages, denormalise, normalise
from shared.api_schema import RecordSchema, image_record_schema
from shared.capabilities import ExtractsFeatures
from shared.classification import CLASSIFICATION_GOALS, classification_scores
from shared.data import ProjectData
from shared.images import image_items
from shared.metrics import Metrics
from shared.monitor.features import Features, network_features, predicted_class_features
from shared.predict import parse_item
from shared.project import Evaluation, PredictItem, Project
from shared.runs import Run


class MnistProject(Project):
    name = "mnist"
    summary = "Handwritten digit recognition on MNIST (28×28 grey images, 10 classes)."
    intended_use = (
        "Teaching and benchmarking: recognising single handwritten digits that are centred and size-normalised "
        "the way MNIST's are. `predict` converts other images (colour, other sizes, dark ink on light paper, faint "
        "or low-contrast, off-centre, tiny or frame-filling digits) to that form first, and training augments "
        "blurred, low-resolution, thick and thin digits (scripts/robustness.py measures each)."
    )
    limitations = (
        "Trained on digits written by American census employees and students in the 1990s: other scripts, "
        "several digits per image, letters or photographs of scenes get a confident digit anyway. The "
        "probability is the model's softmax, not a calibrated guarantee. Not for any decision about a person."
    )
    metrics = Metrics("acc", CLASSIFICATION_GOALS)
    predict_usage = "input=<image, folder of images, or .npy of N×28×28> output=preds.csv"

    def score(self, data: ProjectData, split: str, outputs: np.ndarray) -> dict[str, float]:
        return classification_scores(data.targets(split), outputs)

    def report(self, evaluation: Evaluation, plots_dir: Path, data: ProjectData, model: Any) -> list[Path]:
        assert isinstance(data, DigitImages)
        return evaluate.report(evaluation, plots_dir, data.class_names)

    def read_file(self, path: Path, run: Run, cfg: DictConfig) -> list[PredictItem]:
        return image_items(path, lambda name, payload: parse_item(self, name, payload, run, cfg))

    def request_schema(self, run: Run) -> RecordSchema:
        return image_record_schema()

    def parse_record(self, payload: Any, run: Run, cfg: DictConfig) -> np.ndarray:
        return predict.parse_digit(payload, _images_of(run).centred_digits)

    def stack_inputs(self, values: list[Any]) -> Any:
        return normalise(np.stack(values))

    def prediction_columns(self, outputs: np.ndarray) -> list[dict[str, Any]]:
        return predict.prediction_columns(outputs)

    def monitored_features(self, model: Any, data: ProjectData, inputs: torch.Tensor) -> Features:
        """Plain image statistics (mean intensity, share of ink pixels) and, for a network that extracts features
        (the CNN), its penultimate layer: what the model itself sees."""
        pixels = denormalise(inputs).reshape(len(inputs), -1)
        embedding = network_features(model, inputs) if isinstance(model, ExtractsFeatures) else None
        return Features(
            numbers={"mean_intensity": pixels.mean(axis=1), "ink_share": (pixels > 0.5).mean(axis=1)},
            embedding=embedding,
        )

    def monitored_predictions(self, data: ProjectData, outputs: np.ndarray) -> Features:
        return predicted_class_features(outputs)

    def predict_rows(self, run: Run, values: list[Any], cfg: DictConfig) -> list[list[dict[str, Any]]]:
        """Digits by their number; other data (Fashion-MNIST) by its class names."""
        data = _images_of(run)
        names = None if data.centred_digits else data.class_names
        return [[row] for row in predict.prediction_columns(run.predict(values), names)]


def _images_of(run: Run) -> DigitImages:
    """The run's data object (built, not read: predict needs no dataset)."""
    data = run.data
    assert isinstance(data, DigitImages), type(data)
    return data
