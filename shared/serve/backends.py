"""The engine that answers `serve`'s requests, behind one small seam: a `Predictor` gives the typed outputs of
parsed records, as `Run.predict` does.

`torch` serves the run as it was trained (a LightningModule in `torch.inference_mode`, no Trainer; or a
scikit-learn estimator). `onnx` will serve the run's `model.onnx` (written by `export`) through onnxruntime: its
loader returns a `Run` whose predictions go through the exported graph, and nothing else in `serve` changes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from omegaconf import DictConfig

from shared.errors import UsageError
from shared.fitters import inference_device
from shared.project import Project
from shared.runs import Run, load_run


class Predictor(Protocol):
    """What `serve` asks of a backend: the project's typed outputs (`Project.outputs`) for parsed records."""

    def predict(self, values: list[Any]) -> Any: ...


BackendLoader = Callable[[Project, Path, DictConfig], Run]


def load_torch(project: Project, run_dir: Path, cfg: DictConfig) -> Run:
    """The run's own model on the device the `trainer` group names (the CPU with trainer=cpu)."""
    return load_run(project, run_dir, cfg.paths, inference_device(cfg.get("trainer")), cfg.get("data"))


def load_onnx(project: Project, run_dir: Path, cfg: DictConfig) -> Run:
    """Not yet: the ONNX predictor arrives with `export`. Until then, a clear refusal that names both commands."""
    raise UsageError(
        f"serve backend=onnx serves a run's exported model.onnx, and this version has no ONNX predictor for "
        f"{run_dir} yet.",
        f"serve with backend=torch; backend=onnx comes with python -m projects.{project.name} export run={run_dir}.",
    )


BACKENDS: dict[str, BackendLoader] = {"torch": load_torch, "onnx": load_onnx}


def load_backend(name: str, project: Project, run_dir: Path, cfg: DictConfig) -> Run:
    """The run loaded by backend `name`: its `predict` is the `Predictor` every request goes through."""
    if name not in BACKENDS:
        raise UsageError(f"backend={name} is not one of {', '.join(BACKENDS)}.", "use backend=torch.")
    return BACKENDS[name](project, run_dir, cfg)
