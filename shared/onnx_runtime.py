"""A run's exported model (`<run>/model.onnx`, written by `export`) run with ONNX Runtime.

`OnnxPredictor.predict_raw(inputs)` returns what the run's fitter's `predict` returns for the same stacked inputs
(probabilities, values with their interval, scores), so `Project.outputs` and everything after it work unchanged;
`predict(values)` is `Run.predict` on this backend. What the graph does not hold stays in Python, as in the torch
backend: the data's loader (batching), a fitted scikit-learn preprocessor, a tokenizer (`Exports.export_inputs`).

`onnx_run(run)` is the run with its fitter's predictions through the graph (`OnnxFitter`): what `serve backend=onnx`
answers with, so every caller of `Run.predict` or `run.fitter.predict` gets the exported model's outputs unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from sklearn.base import is_classifier

from shared.capabilities import Exports
from shared.data import inference_batches
from shared.errors import RunNotFoundError, UsageError
from shared.fitters import FitResult, Fitter, SklearnFitter, preprocessed

if TYPE_CHECKING:
    import onnxruntime
    from omegaconf import DictConfig

    from shared.data import ProjectData
    from shared.runs import Run

ONNX_FILE = "model.onnx"
EXPORT_FILE = "export.json"


def runtime_threads() -> int:
    """The intra-op threads a session gets: as many as torch uses here (OMP_NUM_THREADS, else the cores), so the
    two backends are compared on the same cores and a server that sets one budget for torch sets it for both."""
    return max(1, torch.get_num_threads())


def open_session(path: Path, threads: int | None = None) -> onnxruntime.InferenceSession:
    """An ONNX Runtime session on the CPU, with `threads` intra-op threads and no inter-op pool: one request's
    operators run one after another, which is what a server with one worker per core wants."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or runtime_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only: its warnings about unused initialisers are not the user's
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@dataclass(frozen=True)
class TabularInput:
    """One input of a scikit-learn graph: a DataFrame column, the texts, or the whole numeric matrix."""

    name: str
    kind: str  # "float" or "string"
    width: int


TEXT_INPUT = "text"
FEATURES_INPUT = "features"


def tabular_inputs(inputs: Any) -> list[TabularInput]:
    """The graph inputs a scikit-learn model's inputs become: one per DataFrame column (numbers or strings), one
    `text` column for a list of texts, one `features` matrix for a numeric array."""
    if isinstance(inputs, pd.DataFrame):
        return [
            TabularInput(str(name), "float" if pd.api.types.is_numeric_dtype(dtype) else "string", 1)
            for name, dtype in inputs.dtypes.items()
        ]
    array = np.asarray(inputs.numpy(force=True) if isinstance(inputs, torch.Tensor) else inputs)
    if array.ndim == 1 and (array.dtype.kind in "OU" or all(isinstance(item, str) for item in array[:1])):
        return [TabularInput(TEXT_INPUT, "string", 1)]
    if array.ndim == 2 and array.dtype.kind in "biuf":
        return [TabularInput(FEATURES_INPUT, "float", array.shape[1])]
    raise UsageError(
        f"a scikit-learn model fed {array.ndim}-D {array.dtype} inputs cannot be exported: ONNX graphs of "
        "scikit-learn models take a table, a list of texts or a numeric matrix.",
        "export a model whose inputs are one of those (or serve this one with the torch backend).",
    )


def tabular_feeds(inputs: Any) -> dict[str, np.ndarray]:
    """A scikit-learn model's inputs as the arrays its graph takes (`tabular_inputs` names them)."""
    described = tabular_inputs(inputs)
    if isinstance(inputs, pd.DataFrame):
        return {
            item.name: (
                inputs[item.name].to_numpy(np.float32)
                if item.kind == "float"
                else inputs[item.name].astype(str).to_numpy(object)
            ).reshape(-1, 1)
            for item in described
        }
    array = np.asarray(inputs.numpy(force=True) if isinstance(inputs, torch.Tensor) else inputs)
    if described[0].kind == "string":
        return {TEXT_INPUT: array.astype(object).reshape(-1, 1)}
    return {FEATURES_INPUT: array.astype(np.float32)}


class OnnxPredictor:
    """A finished, exported run's model run by ONNX Runtime instead of torch or scikit-learn.

    Built from the loaded run (its model says how a batch becomes the graph's tensors); `path` is another graph
    than the run's own `model.onnx` (what `export` checks before it moves the file into place).
    """

    def __init__(self, run: Run, path: Path | None = None, threads: int | None = None) -> None:
        path = path or run.directory / ONNX_FILE
        if not path.is_file():
            raise RunNotFoundError(
                f"{run.directory} has no {ONNX_FILE}: its model was never exported.",
                f"export it first: python -m projects.{run.project.name} export run={run.directory}",
            )
        self.run, self.path = run, path
        self.tabular = isinstance(run.fitter, SklearnFitter)  # a scikit-learn graph: its inputs are the table itself
        self.threads = threads or runtime_threads()
        self.session = open_session(path, self.threads)
        self.input_names = tuple(item.name for item in self.session.get_inputs())

    def predict(self, values: list[Any]) -> Any:
        """`Run.predict` on this backend: the project's typed outputs for parsed records."""
        return self.run.project.outputs(self.predict_raw(self.run.project.stack_inputs(values)))

    def predict_raw(self, inputs: Any) -> np.ndarray:
        """What the run's fitter's `predict` returns for `inputs` (a split's inputs, or stacked records)."""
        return self.outputs_of(self.run.model, self.run.data, inputs)

    def outputs_of(self, model: Any, data: ProjectData, inputs: Any) -> np.ndarray:
        """`predict_raw` with the run's model and data given: how `OnnxFitter.predict` is called."""
        if self.tabular:
            outputs = self.session.run(None, self._checked(tabular_feeds(inputs)))
            if is_classifier(model):
                return np.asarray(outputs[1])  # skl2onnx's (label, probabilities), the latter as a plain tensor
            values = np.asarray(outputs[0])
            return values.ravel() if values.ndim == 2 and values.shape[1] == 1 else values
        if not isinstance(model, Exports):
            raise UsageError(
                f"{type(model).__name__} has no ONNX graph (it does not declare `Exports`).",
                "use the torch backend for this run.",
            )
        batches = []
        for batch in inference_batches(data.loader(preprocessed(model, inputs))):
            tensors = model.export_inputs(batch)
            feeds = {name: tensor.numpy(force=True) for name, tensor in tensors.items()}
            batches.append(np.asarray(self.session.run(None, self._checked(feeds))[0]))
        return np.concatenate(batches)

    def _checked(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """`feeds`, refused with a clear message when they are not the graph's inputs (an export of rating pairs
        asked to rank items for users, say)."""
        if tuple(feeds) != self.input_names:
            raise UsageError(
                f"{self.path.name} takes {', '.join(self.input_names)}, but these inputs give {', '.join(feeds)}: "
                "the model was exported for another kind of input.",
                f"use the torch backend for them, or export again: python -m projects.{self.run.project.name} "
                f"export run={self.run.directory}",
            )
        return dict(feeds)


class OnnxFitter(Fitter):
    """The fitter of an exported run whose predictions come from its graph: `Run.predict`, and project code that
    asks `run.fitter.predict` itself (scores of every item for some users), both go through ONNX Runtime. Training
    and storing the model stay with the fitter that trained it (`trained`), which this one wraps."""

    def __init__(self, trained: Fitter, predictor: OnnxPredictor) -> None:
        self.trained, self.predictor = trained, predictor
        self.artifact = trained.artifact

    def fit(self, model: Any, data: ProjectData, cfg: DictConfig, run_dir: Path) -> FitResult:
        return self.trained.fit(model, data, cfg, run_dir)

    def predict(self, model: Any, data: ProjectData, inputs: Any, device: torch.device | None = None) -> np.ndarray:
        """The graph's outputs for `inputs`, on the CPU whatever `device` says: ONNX Runtime runs there."""
        return self.predictor.outputs_of(model, data, inputs)

    def save(self, model: Any, run_dir: Path) -> Path:
        return self.trained.save(model, run_dir)

    def load(self, model_cfg: DictConfig, run_dir: Path, trusted: tuple[str, ...]) -> Any:
        return self.trained.load(model_cfg, run_dir, trusted)


def onnx_run(run: Run, threads: int | None = None) -> Run:
    """`run` answering through its `model.onnx` with `threads` intra-op threads (a `RunNotFoundError` naming
    `export` when it has none). The model itself stays loaded for what the graph does not hold: a project's
    explanations, similarities between items."""
    return replace(run, fitter=OnnxFitter(run.fitter, OnnxPredictor(run, threads=threads)))
