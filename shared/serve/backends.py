"""The engine that answers `serve`'s requests, behind one small seam: a `Predictor` gives the typed outputs of
parsed records, as `Run.predict` does.

`torch` serves the run as it was trained (a LightningModule in `torch.inference_mode`, no Trainer; or a
scikit-learn estimator). `onnx` serves the run's `model.onnx` (written by `export`) through ONNX Runtime: its
loader returns the `Run` with its fitter's predictions through the exported graph (`shared.onnx_runtime.onnx_run`),
so the project's hooks, and nothing else in `serve`, see any difference beyond float rounding.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch
from omegaconf import DictConfig

from shared.devices import inference_device
from shared.errors import UsageError
from shared.export import refuse_unexportable
from shared.fitters import SklearnFitter
from shared.onnx_runtime import ONNX_FILE, OnnxFitter, onnx_run
from shared.project import Project
from shared.runs import Run, load_run


class Predictor(Protocol):
    """What `serve` asks of a backend: the project's typed outputs (`Project.outputs`) for parsed records."""

    def predict(self, values: list[Any]) -> Any: ...


# (project, run folder, serve config, intra-op threads per worker) -> the run whose predictions answer requests
BackendLoader = Callable[[Project, Path, DictConfig, int], Run]


def load_torch(project: Project, run_dir: Path, cfg: DictConfig, threads: int) -> Run:
    """The run's own model on the device the `trainer` group names (the CPU with trainer=cpu). Its threads are
    torch's, which the app sets for the whole process (`torch.set_num_threads`)."""
    return load_run(project, run_dir, cfg.paths, inference_device(cfg.get("trainer")), cfg.get("data"))


def load_onnx(project: Project, run_dir: Path, cfg: DictConfig, threads: int) -> Run:
    """The run answering through its exported `model.onnx` on the CPU, with `threads` ONNX Runtime intra-op threads
    (serve's choice, so threads × workers stays within the cores). A model that cannot be exported is refused with
    `export`'s own reason; an exportable one that was not, with the command that exports it."""
    run = load_run(project, run_dir, cfg.paths, torch.device("cpu"), cfg.get("data"))
    refuse_unexportable(run)
    if not (run.directory / ONNX_FILE).is_file():
        raise UsageError(
            f"serve backend=onnx serves the run's exported {ONNX_FILE}, and {run.directory} has none.",
            f"export it first: python -m projects.{project.name} export run={run.directory} "
            "(or serve this run with backend=torch).",
        )
    return onnx_run(run, threads)


BACKENDS: dict[str, BackendLoader] = {"torch": load_torch, "onnx": load_onnx}


def load_backend(name: str, project: Project, run_dir: Path, cfg: DictConfig, threads: int) -> Run:
    """The run loaded by backend `name`: its `predict` is the `Predictor` every request goes through."""
    if name not in BACKENDS:
        raise UsageError(f"backend={name} is not one of {', '.join(BACKENDS)}.", "use backend=torch.")
    return BACKENDS[name](project, run_dir, cfg, threads)


def engine(run: Run) -> dict[str, Any]:
    """What computes a served run's predictions, for `/metadata`: the library and its version (backend=torch
    serves a scikit-learn model with scikit-learn), and for ONNX the graph and its intra-op threads."""
    if isinstance(run.fitter, OnnxFitter):
        predictor = run.fitter.predictor
        return {
            "library": "onnxruntime",
            "version": importlib.metadata.version("onnxruntime"),
            "file": str(predictor.path),
            "intra_op_threads": predictor.threads,
        }
    library = "scikit-learn" if isinstance(run.fitter, SklearnFitter) else "torch"
    return {"library": library, "version": importlib.metadata.version(library)}
