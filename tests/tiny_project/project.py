"""The tiny project: data, models, metrics and predict records, all through the core's contract."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn
from torch.utils.data import DataLoader

from shared.classification import Classifier, class_columns
from shared.data import ProjectData, holdout_indices, tensor_loader
from shared.errors import RecordError
from shared.metrics import MAX, MIN, Metrics
from shared.predict import parse_item
from shared.project import PredictItem, Project
from shared.runs import Run

CLASSES = ("left", "right", "top")
CENTRES = np.array([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]])


class Blobs(ProjectData):
    """Points around three centres; `val_size` 0 leaves the data without a validation split."""

    def __init__(
        self, mirror_dir: str | None = None, cache_dir: str = "", size: int = 300, val_size: float = 0.2, seed: int = 0
    ) -> None:
        super().__init__(mirror_dir, cache_dir)
        self.size, self.val_size, self.seed = size, val_size, seed
        self.points: dict[str, np.ndarray] = {}
        self.labels: dict[str, np.ndarray] = {}

    @property
    def splits(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("train", "val", "test") if self.val_size else ("train", "test")

    def prepare(self) -> None:
        rng = np.random.default_rng(self.seed)
        labels = rng.integers(0, len(CLASSES), 2 * self.size)
        points = (CENTRES[labels] + rng.normal(0, 0.7, (len(labels), 2))).astype(np.float32)
        train, test = np.arange(self.size), np.arange(self.size, 2 * self.size)
        self.points, self.labels = {"test": points[test]}, {"test": labels[test]}
        if self.val_size:
            kept, held_out = holdout_indices(self.size, self.val_size, self.seed)
            self.points |= {"train": points[kept], "val": points[held_out]}
            self.labels |= {"train": labels[kept], "val": labels[held_out]}
        else:
            self.points["train"], self.labels["train"] = points[train], labels[train]

    def inputs(self, split: str) -> np.ndarray:
        return self.points[split]

    def targets(self, split: str) -> np.ndarray:
        return self.labels[split]

    def loader(self, inputs: Any, targets: np.ndarray | None = None, train: bool = False) -> DataLoader:
        tensors = [torch.as_tensor(np.asarray(inputs, dtype=np.float32))]
        if targets is not None:
            tensors.append(torch.as_tensor(targets, dtype=torch.long))
        return tensor_loader(*tensors, batch_size=32 if train else 256, shuffle=train)


class Network(Classifier):
    """Two hidden layers on the two coordinates, with the core's classifier steps."""

    def __init__(self, hidden: int = 16, lr: float = 0.05) -> None:
        super().__init__(len(CLASSES))
        self.save_hyperparameters()
        self.layers = nn.Sequential(nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, len(CLASSES)))

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return self.layers(points)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def brier(targets: np.ndarray, probabilities: np.ndarray) -> float:
    """The Brier score: squared distance between the probabilities and the one-hot truth."""
    return float(((probabilities - np.eye(probabilities.shape[1])[targets]) ** 2).sum(axis=1).mean())


class TinyProject(Project):
    name = "tiny"
    summary = "Which of three blobs a point belongs to (a project that lives in tests/)."
    intended_use = "Testing the core's contract."
    limitations = "Made-up data."
    metrics = Metrics("acc", {"acc": MAX, "brier": MIN})
    config_dir = Path(__file__).parent / "configs"
    predict_usage = "input=points.csv output=preds.csv"
    trusted_targets = ("sklearn.linear_model.LogisticRegression",)

    def score(self, data: ProjectData, split: str, outputs: np.ndarray) -> dict[str, float]:
        targets = data.targets(split)
        return {"acc": float((outputs.argmax(axis=1) == targets).mean()), "brier": brier(targets, outputs)}

    def read_file(self, path: Path, run: Run, cfg: DictConfig) -> list[PredictItem]:
        with path.open(newline="", encoding="utf-8") as stream:
            rows = list(csv.DictReader(stream))
        return [parse_item(self, f"row {number}", row, run, cfg) for number, row in enumerate(rows, start=2)]

    def parse_record(self, payload: Any, run: Run, cfg: DictConfig) -> np.ndarray:
        if not isinstance(payload, dict) or not {"x", "y"} <= payload.keys():
            raise RecordError("a point needs the fields x and y")
        try:
            return np.array([float(payload["x"]), float(payload["y"])], dtype=np.float32)
        except (TypeError, ValueError) as error:
            raise RecordError(f"x and y must be numbers ({error})") from error

    def stack_inputs(self, values: list[Any]) -> np.ndarray:
        return np.stack(values)

    def prediction_columns(self, outputs: np.ndarray) -> list[dict[str, Any]]:
        return class_columns(outputs, CLASSES, label="blob")
