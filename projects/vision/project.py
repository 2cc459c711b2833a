"""CIFAR-10 (or a user's image folder) as the core sees it: its description, metrics, plots and predict records."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from projects.vision import evaluate, predict
from projects.vision.corruptions import CORRUPTIONS, corrupt
from projects.vision.data import VisionImages
from projects.vision.models import VisionClassifier
from shared import checks
from shared.api_schema import RecordSchema, image_record_schema
from shared.capabilities import ExtractsFeatures
from shared.classification import CLASSIFICATION_GOALS, class_columns, classification_scores
from shared.data import ProjectData
from shared.errors import RunNotFoundError
from shared.images import image_items
from shared.metrics import MAX, Metrics
from shared.monitor.features import Features, network_features, predicted_class_features
from shared.predict import parse_item
from shared.project import Evaluation, PredictItem, Project
from shared.runs import Run


class VisionProject(Project):
    name = "vision"
    summary = "Image classification on CIFAR-10 (32×32 colour photos, 10 classes), or on a folder of your own images."
    intended_use = (
        "Teaching and benchmarking fast image-classifier training: CIFAR-10's ten classes of small, centred "
        "photographs. `predict` takes images of any size and mode, centre-crops them to a square and resizes them "
        "to the training size, so it suits photos framed on one object of those classes."
    )
    limitations = (
        "32×32 inputs keep little detail: a photo with several objects, an object off-centre or a class outside "
        "the ten gets one of the ten anyway, with a probability that is the model's softmax, not a guarantee. "
        "CIFAR-10 was collected from the web around 2008; its photos are not representative of any population."
    )
    # beside the classification metrics: accuracy under each common corruption of the test set, and their mean
    metrics = Metrics(
        "acc", {**CLASSIFICATION_GOALS, "corruption_acc": MAX, **{f"{name}_acc": MAX for name in CORRUPTIONS}}
    )
    predict_usage = "input=<image, folder of images, or .npy of N×H×W×3> output=preds.csv [top_k=3]"

    def model_options(self, data: ProjectData) -> dict[str, Any]:
        names = list(data.class_names)  # type: ignore[attr-defined]
        return {"classes": len(names), "class_names": names, "image_size": data.image_size}  # type: ignore[attr-defined]

    def score(self, data: ProjectData, split: str, outputs: np.ndarray) -> dict[str, float]:
        return classification_scores(data.targets(split), outputs)

    def corrupted_inputs(self, data: ProjectData, split: str) -> Iterator[tuple[str, Any]]:
        """The test images under each of `data.corruptions` at `data.corruption_severity` (CIFAR-10-C style)."""
        images = _images(data)
        if split != "test":
            return
        for name in images.corruptions:
            yield name, corrupt(images.inputs(split), name, images.corruption_severity)

    def report(self, evaluation: Evaluation, plots_dir: Path, data: ProjectData, model: Any) -> list[Path]:
        images = _images(data)
        return evaluate.report(
            evaluation, plots_dir, _classifier(model).class_names, images.corruptions, images.corruption_severity
        )

    def read_file(self, path: Path, run: Run, cfg: DictConfig) -> list[PredictItem]:
        return image_items(path, lambda name, payload: parse_item(self, name, payload, run, cfg))

    def request_schema(self, run: Run) -> RecordSchema:
        return image_record_schema()

    def parse_record(self, payload: Any, run: Run, cfg: DictConfig) -> np.ndarray:
        return predict.parse_image(payload, _classifier(run.model).image_size)

    def stack_inputs(self, values: list[Any]) -> Any:
        return predict.stack_images(values)

    def predict_rows(self, run: Run, values: list[Any], cfg: DictConfig) -> list[list[dict[str, Any]]]:
        top = checks.whole(cfg.get("top_k", 1), "top_k", example=3)
        columns = class_columns(run.predict(values), _classifier(run.model).class_names, top=top)
        return [[row] for row in columns]

    # --- monitoring -----------------------------------------------------------------------------------
    def monitored_features(self, model: Any, data: ProjectData, inputs: torch.Tensor) -> Features:
        """Plain image statistics (brightness, contrast, colourfulness) of the uint8 images as the model takes them,
        and the network's penultimate layer (`ExtractsFeatures`): what the model itself sees. A darker camera,
        greyscale photos, or pictures of things CIFAR-10 never showed move one or the other."""
        pixels = inputs.float().div(255.0).flatten(2)  # N×3×(H·W)
        red, green, blue = pixels[:, 0], pixels[:, 1], pixels[:, 2]
        # Hasler and Süsstrunk's colourfulness: spread and mean of the opponent colour channels
        red_green, yellow_blue = red - green, (red + green) / 2 - blue
        colourfulness = torch.sqrt(red_green.std(dim=1) ** 2 + yellow_blue.std(dim=1) ** 2) + 0.3 * torch.sqrt(
            red_green.mean(dim=1) ** 2 + yellow_blue.mean(dim=1) ** 2
        )
        embedding = network_features(model, inputs) if isinstance(model, ExtractsFeatures) else None
        return Features(
            numbers={
                "mean_intensity": pixels.mean(dim=(1, 2)).numpy(),
                "contrast": pixels.mean(dim=1).std(dim=1).numpy(),
                "colourfulness": colourfulness.numpy(),
            },
            embedding=embedding,
        )

    def monitored_predictions(self, data: ProjectData, outputs: np.ndarray) -> Features:
        return predicted_class_features(outputs, _images(data).class_names)


def _images(data: ProjectData) -> VisionImages:
    if not isinstance(data, VisionImages):
        raise TypeError(f"the vision project's data is VisionImages, not {type(data).__name__}")
    return data


def _classifier(model: Any) -> VisionClassifier:
    """The run's model as a vision classifier: what knows its class names and input size."""
    if not isinstance(model, VisionClassifier):
        raise RunNotFoundError(
            f"the run's model is a {type(model).__name__}, not a vision classifier.", "pass a vision run with run=."
        )
    return model
