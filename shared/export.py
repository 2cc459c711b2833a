"""`export`: a finished run's model as `<run>/model.onnx`, checked against the model itself before it is kept.

Networks that declare `Exports` go through torch's current exporter (`torch.onnx.export(..., dynamo=True)`, the
batch axis dynamic); scikit-learn models through skl2onnx where its converters cover them (`export_sklearn`).
The graph is written beside its final name and checked there: ONNX Runtime against the run's own fitter on real
inputs of a held-out split, the outputs within `TOLERANCE` and, for classifiers, the same top class on at least
`ARGMAX_AGREEMENT` of them. Only a graph that passes is moved into place, and `export.json` records the figures
and each backend's latency at batch 1 and 64.
"""

from __future__ import annotations

import inspect
import logging
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from lightning import LightningModule
from omegaconf import DictConfig
from sklearn.base import is_classifier

from shared.capabilities import ExportGraph, Exports
from shared.checks import whole
from shared.classification import Classifier
from shared.errors import PortfolioError, UsageError
from shared.fitters import SklearnFitter, first_line, preprocessed
from shared.io import atomic_path, write_json
from shared.logs import quiet_loggers
from shared.onnx_runtime import EXPORT_FILE, ONNX_FILE, OnnxPredictor, runtime_threads
from shared.project import Project
from shared.provenance import library_versions
from shared.runs import Run, load_run

log = logging.getLogger(__name__)

FORMATS = ("onnx",)
# The largest difference of any output allowed between the backends: absolute for outputs up to 1 in size (every
# probability), relative beyond (housing's dollars: float32 resolves 200,000 only to 0.016, so both backends
# rounding once apart would fail an absolute 1e-4 that says nothing about the graph).
TOLERANCE = 1e-4
ARGMAX_AGREEMENT = 0.999  # the share of inputs whose top class must be the same (classifiers)
LATENCY_BATCHES = (1, 64)
OUTPUT_NAME = "outputs"
EXPORTER_LOGGERS = ("onnxscript", "onnx_ir", "torch.onnx", "torch.export")  # each pass logs a line at INFO
LIBRARIES = ("torch", "onnx", "onnxruntime", "onnxscript", "skl2onnx")


class ParityError(PortfolioError):
    """The exported graph does not compute what the model computes: it is not kept."""


@dataclass(frozen=True)
class Parity:
    """How closely ONNX Runtime's outputs follow the run's own on `inputs` real inputs of `split`."""

    split: str
    inputs: int
    max_abs_diff: float
    max_scaled_diff: float  # |difference| / max(1, |value|): what `tolerance` bounds
    tolerance: float
    argmax_agreement: float | None  # None: not a classifier
    argmax_required: float | None

    @property
    def passed(self) -> bool:
        close = self.max_scaled_diff <= self.tolerance
        return close and (self.argmax_agreement is None or self.argmax_agreement >= (self.argmax_required or 0))


@dataclass(frozen=True)
class Written:
    """Which exporter wrote the graph, and why the current one was not used when it was not."""

    exporter: str
    fallback_reason: str | None = None


def export_command(project: Project, cfg: DictConfig) -> None:
    """`export [run=PATH] [format=onnx] [parity_inputs=N]`: write `model.onnx` into the run, check it, record it."""
    if cfg.format not in FORMATS:
        raise UsageError(f"format={cfg.format} is not an export format.", f"use format={' or format='.join(FORMATS)}.")
    count = whole(cfg.parity_inputs, "parity_inputs", minimum=2, example=1000)
    repeats = whole(cfg.latency_repeats, "latency_repeats", minimum=1, example=5)
    run = load_run(project, cfg.get("run"), cfg.paths, torch.device("cpu"), cfg.get("data"))
    data = run.prepared_data
    if cfg.split not in data.splits:
        raise UsageError(f"the run's data has no '{cfg.split}' split.", f"use split={' or split='.join(data.splits)}.")
    split_inputs = data.inputs(cfg.split)
    inputs = first_rows(split_inputs, count)
    destination = run.directory / ONNX_FILE
    with atomic_path(destination) as temporary:  # moved into place only if every step below succeeds
        written = write_graph(run, inputs, temporary)
        predictor = OnnxPredictor(run, temporary)
        parity = measure_parity(run, predictor, inputs, cfg.split)
        if not parity.passed:
            raise ParityError(
                f"the exported graph does not match the model on {parity.inputs} {cfg.split} inputs: largest "
                f"difference {parity.max_abs_diff:.3g}, {parity.max_scaled_diff:.3g} relative to values above 1 "
                f"(allowed {parity.tolerance:g})"
                + (
                    f", same top class on {parity.argmax_agreement:.2%} (needed {parity.argmax_required:.1%})"
                    if parity.argmax_agreement is not None
                    else ""
                )
                + f"; no {ONNX_FILE} was written.",
                "serve this run with the torch backend, and report the model and these figures as a bug.",
            )
        latency = measure_latency(run, predictor, split_inputs, repeats)
    record = {
        "run": str(run.directory),
        "format": cfg.format,
        "file": ONNX_FILE,
        "model": type(run.model).__name__,
        **asdict(written),
        "inputs": [_described(item) for item in predictor.session.get_inputs()],
        "outputs": [_described(item) for item in predictor.session.get_outputs()],
        "parity": {**asdict(parity), "passed": parity.passed},
        "latency_ms": latency,
        "latency_repeats": repeats,
        "threads": runtime_threads(),
        "versions": library_versions(LIBRARIES),
        "exported_at": datetime.now().isoformat(timespec="seconds"),
    }
    write_json(run.directory / EXPORT_FILE, record)
    print(format_record(record) + f"\nsaved {destination} and {run.directory / EXPORT_FILE}")


def first_rows(inputs: Any, count: int) -> Any:
    """The first `count` inputs of a split, whatever its type (a DataFrame, an array, a tensor, a list of texts)."""
    return inputs.iloc[:count] if isinstance(inputs, pd.DataFrame) else inputs[:count]


def write_graph(run: Run, inputs: Any, path: Path) -> Written:
    """The run's model as an ONNX graph at `path`, for inputs like `inputs`."""
    model = run.model
    if isinstance(run.fitter, SklearnFitter):
        from shared.export_sklearn import convert_estimator

        path.write_bytes(convert_estimator(model, inputs).SerializeToString())
        return Written("skl2onnx")
    refuse_unexportable(run)
    assert isinstance(model, LightningModule)
    model.to("cpu").eval()
    batch = next(iter(run.data.loader(preprocessed(model, inputs))))
    return export_network(model.export_graph(batch), model.export_inputs(batch), path)


def refuse_unexportable(run: Run) -> None:
    """A `UsageError` for a network that has no ONNX graph (it does not declare `Exports`): `export` refuses it,
    and `serve backend=onnx` gives the same reason rather than asking for an export that cannot be made.
    scikit-learn models pass here; whether skl2onnx covers their steps is known only by converting them."""
    if isinstance(run.fitter, SklearnFitter) or isinstance(run.model, Exports):
        return
    raise UsageError(
        f"{type(run.model).__name__} cannot be exported: it does not say which graph it computes (`Exports`).",
        f"export a run of a model that does; the README's 'Exporting a model' lists them. This run is still "
        f"served and predicted with torch: python -m projects.{run.project.name} predict run={run.directory}",
    )


def export_network(graph: ExportGraph, example: dict[str, torch.Tensor], path: Path) -> Written:
    """`graph.module` through the dynamo exporter with the batch (and `graph.axes`) dynamic; through the legacy
    TorchScript exporter when the dynamo one fails, with its reason kept for `export.json`."""
    if tuple(example) != graph.names:
        raise TypeError(f"export_inputs gives {tuple(example)}, but the graph takes {graph.names}")
    if any(len(tensor) < 2 for tensor in example.values()):  # a batch of 1 would be fixed as a constant
        raise UsageError(
            "the export needs a first batch of at least 2 inputs: a batch of 1 would be fixed into the graph.",
            "give the split at least 2 inputs, and the data's eval batch size at least 2.",
        )
    module, arguments = graph.module.eval(), tuple(example.values())
    dimensions: dict[str, torch.export.Dim] = {}

    def dimension(name: str) -> torch.export.Dim:
        return dimensions.setdefault(name, torch.export.Dim(name))

    shapes = tuple(
        {0: dimension("batch"), **{axis: dimension(label) for axis, label in graph.axes.get(name, {}).items()}}
        for name in graph.names
    )
    # torch.export matches `dynamic_shapes` to the signature: a `forward(*tensors)` takes them as one tuple argument
    packed = any(item.kind is item.VAR_POSITIONAL for item in inspect.signature(module.forward).parameters.values())
    try:
        with torch.no_grad(), quiet_loggers(*EXPORTER_LOGGERS), warnings.catch_warnings():
            # one Dim shared by several inputs (the batch) keeps its name; torch warns that the others' go unused
            warnings.filterwarnings("ignore", message=r".*will not be used, since it shares the same shape")
            program = torch.onnx.export(
                module,
                arguments,
                dynamo=True,
                input_names=list(graph.names),
                output_names=[OUTPUT_NAME],
                dynamic_shapes=(shapes,) if packed else shapes,
                verbose=False,
            )
        assert program is not None
        program.save(str(path))
        return Written("dynamo")
    except Exception as error:  # torch.export refused the module (data-dependent control flow, an unsupported op)
        # The legacy exporter traces one concrete call instead of capturing the program, which goes through where
        # torch.export stops; it is used for this model only, and export.json says why.
        reason = f"{type(error).__name__}: {first_line(error)}"
        log.warning("the dynamo exporter failed (%s); using the legacy TorchScript exporter", reason)
        axes = {name: {0: "batch", **dict(graph.axes.get(name, {}))} for name in graph.names}
        with torch.no_grad(), quiet_loggers(*EXPORTER_LOGGERS), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)  # its deprecation: the warning above says it
            torch.onnx.export(
                module,
                arguments,
                str(path),
                dynamo=False,
                input_names=list(graph.names),
                output_names=[OUTPUT_NAME],
                dynamic_axes=axes,
            )
        return Written("legacy", reason)


def is_classification(run: Run) -> bool:
    """Whether the run's outputs are class probabilities, whose top class must agree across backends."""
    return isinstance(run.model, Classifier) or (isinstance(run.fitter, SklearnFitter) and is_classifier(run.model))


def measure_parity(run: Run, predictor: OnnxPredictor, inputs: Any, split: str) -> Parity:
    """ONNX Runtime's outputs against the run's own fitter's on `inputs`."""
    expected = np.asarray(run.fitter.predict(run.model, run.data, inputs, torch.device("cpu")), dtype=np.float64)
    actual = np.asarray(predictor.predict_raw(inputs), dtype=np.float64)
    agreement = None
    if is_classification(run) and expected.shape == actual.shape and expected.ndim == 2:
        agreement = float(np.mean(expected.argmax(axis=1) == actual.argmax(axis=1)))
    return Parity(
        split=split,
        inputs=len(expected),
        max_abs_diff=largest_difference(expected, actual),
        max_scaled_diff=largest_difference(expected, actual, scaled=True),
        tolerance=TOLERANCE,
        argmax_agreement=agreement,
        argmax_required=ARGMAX_AGREEMENT if agreement is not None else None,
    )


def largest_difference(expected: np.ndarray, actual: np.ndarray, scaled: bool = False) -> float:
    """The largest absolute difference of two output arrays (`scaled`: divided by the expected value's size where it
    is above 1); NaN where both are NaN (an interval the model does not have) counts as equal, NaN on one side only
    or another shape as infinitely far."""
    if expected.shape != actual.shape:
        return float("inf")
    both_missing = np.isnan(expected) & np.isnan(actual)
    differences = np.abs(expected - actual) / (np.maximum(1.0, np.abs(expected)) if scaled else 1.0)
    differences = np.where(both_missing, 0.0, differences)
    return float(np.nan_to_num(differences, nan=np.inf).max(initial=0.0))


def measure_latency(run: Run, predictor: OnnxPredictor, inputs: Any, repeats: int) -> dict[str, dict[str, float]]:
    """Milliseconds per call of each backend (median of `repeats` after one warm-up), at batch 1 and 64, from the
    stacked inputs to the raw outputs: the loader and any preprocessing are in both."""
    latency = {}
    for size in LATENCY_BATCHES:
        batch = first_rows(inputs, size)
        native = partial(run.fitter.predict, run.model, run.data, batch, torch.device("cpu"))
        latency[f"batch_{len(batch)}"] = {
            "torch" if isinstance(run.model, LightningModule) else "sklearn": _median_ms(native, repeats),
            "onnxruntime": _median_ms(partial(predictor.predict_raw, batch), repeats),
        }
    return latency


def _median_ms(call: Callable[[], Any], repeats: int) -> float:
    call()  # warm-up: first-call allocations and lazy initialisation are not latency
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        timings.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(timings), 3)


def _described(node: Any) -> dict[str, Any]:
    """An ONNX input or output: its name, shape (a dynamic axis by its name) and element type."""
    return {"name": node.name, "shape": list(node.shape), "type": node.type}


def format_record(record: dict[str, Any]) -> str:
    """The parity and latency figures of an export, for the terminal."""
    parity = record["parity"]
    lines = [
        f"exported {record['model']} with {record['exporter']}"
        + (f" (dynamo failed: {record['fallback_reason']})" if record["fallback_reason"] else ""),
        f"  parity on {parity['inputs']} {parity['split']} inputs: max |diff| {parity['max_abs_diff']:.3g}, "
        f"scaled {parity['max_scaled_diff']:.3g} (≤ {parity['tolerance']:g})"
        + (f", same top class {parity['argmax_agreement']:.2%}" if parity["argmax_agreement"] is not None else ""),
    ]
    for batch, timings in record["latency_ms"].items():
        lines.append(f"  {batch}: " + ", ".join(f"{name} {value:.3f} ms" for name, value in timings.items()))
    return "\n".join(lines)
