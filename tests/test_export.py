"""`export` on tiny runs of every exportable model: ONNX Runtime against the model itself, export.json, the ONNX
predictor that `serve backend=onnx` uses, and the clear errors (a model that does not export, a failed parity)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from shared.classification import Classifier
from shared.errors import RunNotFoundError, UsageError
from shared.export import first_rows
from shared.io import read_json
from shared.onnx_runtime import EXPORT_FILE, ONNX_FILE, OnnxPredictor
from shared.registry import load_project
from shared.runs import Run, load_run
from tests.conftest import refused, train_for_module
from tests.tiny_project.project import TinyProject

pytestmark = pytest.mark.heavy

CPU = ("trainer=cpu", "trainer.max_epochs=1", "trainer.num_sanity_val_steps=0")
FAST = ("parity_inputs=48", "latency_repeats=1")


def tiny_encoder(folder: Path) -> Path:
    """A one-layer BERT with 16 dimensions and the packaged MiniLM's tokenizer: the transformer classifier's code
    path (encoder and head over token ids and mask) at a size that exports in seconds."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from projects.sentiment.embeddings import PACKAGED_MINILM, resolve_pretrained

    tokenizer = AutoTokenizer.from_pretrained(resolve_pretrained(PACKAGED_MINILM))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# project, then the overrides of a tiny run; each is trained once, when a test first asks for it
RUNS: dict[str, tuple[str, ...]] = {
    "mnist-cnn": ("mnist", "data=synthetic", "model=cnn", "model.widths=[4,8,8]", "data.train_size=200",
                  "data.test_size=100", *CPU),
    "vision-airbench": ("vision", "data=synthetic", "model=airbench", "model.widths={block1: 8, block2: 8, block3: 8}",
                        "model.whiten_images=100", "model.tta=mirror", "data.train_size=100",
                        "data.test_size=64", *CPU),
    "mnist-mlp": ("mnist", "data=synthetic", "model=mlp", "model.hidden=[8]", "data.train_size=200",
                  "data.test_size=100", *CPU),
    "vision-resnet": ("vision", "data=synthetic", "model=resnet", "model.widths=[4,8,8,8]", "data.train_size=64",
                      "data.test_size=32", *CPU),
    "vision-torchvision": ("vision", "data=synthetic", "model=torchvision", "model.arch=resnet18", "data.train_size=32",
                           "data.test_size=16", *CPU),
    "housing-mlp": ("housing", "data=synthetic", "model=mlp", "model.hidden=[8]", "data.size=300", *CPU),
    "recommender-mf": ("recommender", "data=synthetic", "model=mf", "model.dim=4", *CPU),
    "recommender-two_tower": ("recommender", "data=synthetic", "protocol=ranking", "model=two_tower", "model.dim=4",
                              "model.hidden=8", *CPU),
    "recommender-bpr": ("recommender", "data=synthetic", "protocol=ranking", "model=bpr", "model.dim=4", *CPU),
    "sentiment-transformer": ("sentiment", "data=toy", "model=transformer", "data.train_size=40", "data.test_size=24",
                              "data.batch_size=16", "model.max_length=16", *CPU),
}  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """The run of a `RUNS` entry, trained the first time it is asked for."""
    made: dict[str, Path] = {}

    def run_of(key: str) -> Path:
        if key not in made:
            project, *overrides = RUNS[key]
            if key == "sentiment-transformer":
                encoder = tiny_encoder(tmp_path_factory.mktemp("encoder"))
                overrides.append(f"model.pretrained={encoder}")
            made[key] = train_for_module(tmp_path_factory, project, *overrides)
        return made[key]

    return run_of


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny project's scikit-learn logistic regression (skl2onnx covers it) and its network (no Exports)."""
    return {
        model: train_for_module(tmp_path_factory, TinyProject.name, f"model={model}", *CPU)
        for model in ("logistic", "network")
    }


def _load(project: str, directory: Path) -> Run:
    paths = OmegaConf.create({"runs_dir": str(directory.parents[1]), "cache_dir": str(directory.parents[1] / "c")})
    return load_run(load_project(project), directory, paths)


def _check_export(directory: Path, classifier: bool) -> dict:
    """The files an export leaves and the figures export.json must hold."""
    assert (directory / ONNX_FILE).is_file()
    assert not list(directory.glob(".model.*")), "no temporary file is left"
    record = read_json(directory / EXPORT_FILE)
    parity = record["parity"]
    assert parity["passed"] and parity["inputs"] >= 2 and parity["max_scaled_diff"] <= 1e-4 == parity["tolerance"]
    assert (parity["argmax_agreement"] is not None) is classifier
    if classifier:
        assert parity["argmax_agreement"] >= 0.999
    assert all(item["shape"][0] == "batch" for item in record["inputs"]), record["inputs"]
    assert set(record["latency_ms"]) >= {"batch_1"} and len(record["latency_ms"]) == 2
    for timings in record["latency_ms"].values():
        assert timings["onnxruntime"] > 0 and len(timings) == 2 and min(timings.values()) > 0
    return record


@pytest.mark.parametrize("key", list(RUNS))
def test_export_matches_the_model_and_the_onnx_predictor_answers_as_it_does(cli, trained, key: str) -> None:
    directory = trained(key)
    project = RUNS[key][0]
    result = cli(project, "export", f"run={directory}", *FAST)
    assert result.code == 0, result.err
    run = _load(project, directory)
    record = _check_export(directory, classifier=isinstance(run.model, Classifier))
    assert record["exporter"] == "dynamo" and record["fallback_reason"] is None, record
    # other inputs than the parity check's, in other batch sizes (the batch axis is dynamic)
    data, predictor = run.prepared_data, OnnxPredictor(run)
    for split in ("val", "test") if "val" in data.splits else ("test",):
        inputs = data.inputs(split)
        for count in (1, 3, len(inputs)):
            rows = first_rows(inputs, count)
            expected = run.fitter.predict(run.model, run.data, rows)
            np.testing.assert_allclose(predictor.predict_raw(rows), expected, rtol=1e-4, atol=1e-5)


def test_the_onnx_predictor_gives_the_typed_outputs_of_run_predict(trained) -> None:
    run = _load("mnist", trained("mnist-cnn"))
    if not (run.directory / ONNX_FILE).is_file():
        pytest.skip("needs the mnist export of the parity test")
    digits = list(run.prepared_data.images("test")[:5])  # raw uint8 digits, as parse_record gives them
    np.testing.assert_allclose(OnnxPredictor(run).predict(digits), run.predict(digits), atol=1e-5)


DIGIT = np.zeros((28, 28), np.uint8)
DIGIT[5:23, 12:16] = 255  # a "1"
DISTRICT = {"longitude": -122.23, "latitude": 37.88, "housing_median_age": 41, "total_rooms": 880,
            "total_bedrooms": None, "population": 322, "households": 126, "median_income": 8.3,
            "ocean_proximity": "NEAR BAY"}  # fmt: skip
SERVED = {  # records for /predict: two readable, one refused by the project's own parse_record
    "mnist-cnn": [{"image": DIGIT.tolist()}, {"image": (255 - DIGIT).tolist()}, {"image": "%%%"}],
    "housing-mlp": [DISTRICT, {**DISTRICT, "median_income": 2.1}, {**DISTRICT, "ocean_proximity": "MARS"}],
    "recommender-mf": [{"user": 1, "item": 2}, {"user": 3, "item": 1}, {"user": 1, "k": "many"}],
}


@pytest.mark.parametrize("key", list(SERVED))
def test_serve_backend_onnx_answers_what_the_torch_backend_answers(cli, trained, key: str) -> None:
    from tests.serving import served

    directory, project = trained(key), RUNS[key][0]
    if not (directory / ONNX_FILE).is_file():  # the parity test exports it; alone, this test does
        assert cli(project, "export", f"run={directory}", *FAST).code == 0
    answers, metadata = {}, {}
    for backend in ("torch", "onnx"):
        with served(project, directory, f"backend={backend}") as client:
            answers[backend] = client.post("/predict", json={"records": SERVED[key]}).json()
            metadata[backend] = client.get("/metadata").json()
            if key == "recommender-mf":
                answers[f"{backend}-ranking"] = client.post("/predict", json={"user": 1, "k": 3}).json()
    assert metadata["onnx"]["backend"] == "onnx" and metadata["onnx"]["engine"]["library"] == "onnxruntime"
    assert metadata["onnx"]["engine"]["intra_op_threads"] == metadata["onnx"]["threads_per_worker"]
    assert metadata["torch"]["engine"]["library"] == "torch"
    if key == "recommender-mf":  # a graph of rating pairs cannot rank every item: that query says so, and why
        assert answers["torch-ranking"]["predicted"] == 1, answers["torch-ranking"]
        assert "exported for another kind of input" in answers["onnx-ranking"]["error"], answers["onnx-ranking"]
    assert answers["onnx"]["predicted"] == answers["torch"]["predicted"] == 2, answers
    for mine, theirs in zip(answers["onnx"]["results"], answers["torch"]["results"], strict=True):
        assert mine["error"] == theirs["error"] and len(mine["rows"]) == len(theirs["rows"])
        for row, expected in zip(mine["rows"], theirs["rows"], strict=True):
            assert row.keys() == expected.keys()
            for column, value in expected.items():  # labels equal, numbers up to float rounding
                close = pytest.approx(value, rel=1e-4, abs=1e-4) if isinstance(value, float) else value
                assert row[column] == close, (column, row, expected)


def test_serve_backend_onnx_gives_the_export_error_for_a_model_that_cannot_be_exported(cli, tiny_runs) -> None:
    directory = tiny_runs["network"]
    refused(cli(TinyProject(), "serve", f"run={directory}", "backend=onnx"), 2, "Network cannot be exported", "Exports")


def test_scikit_learn_pipeline_exports_through_skl2onnx(cli, tiny_runs) -> None:
    directory = tiny_runs["logistic"]
    result = cli(TinyProject(), "export", f"run={directory}", *FAST)
    assert result.code == 0, result.err
    record = _check_export(directory, classifier=True)
    assert record["exporter"] == "skl2onnx" and set(record["latency_ms"]["batch_1"]) == {"sklearn", "onnxruntime"}


def test_a_model_without_exports_is_a_clear_error_and_writes_nothing(cli, tiny_runs) -> None:
    directory = tiny_runs["network"]
    result = cli(TinyProject(), "export", f"run={directory}", *FAST)
    refused(result, 2, "Network cannot be exported", "Exports", output=directory / ONNX_FILE)
    assert not (directory / EXPORT_FILE).exists()


def test_a_run_without_export_is_refused_by_the_onnx_predictor_naming_the_command(tiny_runs) -> None:
    directory = tiny_runs["network"]
    with pytest.raises(RunNotFoundError, match=f"python -m projects.tiny export run={directory}"):
        OnnxPredictor(_load("tiny", directory))


def test_a_failed_parity_is_an_error_and_leaves_no_model_onnx(cli, tiny_runs, tmp_path, monkeypatch) -> None:
    copy = tmp_path / "runs" / "tiny" / "copy"
    shutil.copytree(tiny_runs["logistic"], copy, ignore=shutil.ignore_patterns(ONNX_FILE, EXPORT_FILE))
    honest = OnnxPredictor.predict_raw
    monkeypatch.setattr(OnnxPredictor, "predict_raw", lambda self, inputs: honest(self, inputs) + 0.01)
    result = cli(TinyProject(), "export", f"run={copy}", *FAST)
    assert result.code == 1 and "does not match the model" in result.err and "0.01" in result.err, result.err
    assert not (copy / ONNX_FILE).exists() and not (copy / EXPORT_FILE).exists()
    assert not list(copy.glob(".model.*")), "the checked graph's temporary file is removed"


def test_unknown_format_is_refused(cli) -> None:
    refused(cli("mnist", "export", "format=tflite"), 2, "format=tflite", "format=onnx")


def test_pipeline_steps_without_a_converter_are_named() -> None:
    from projects.housing.models import CrossValidated, pipeline
    from projects.mnist.models import logistic_regression
    from projects.sentiment.linear import tfidf_logistic_regression
    from shared.export_sklearn import convert_estimator

    cases = [
        (logistic_regression(), np.zeros((2, 784), np.float32), "model/flatten (FunctionTransformer(flatten_images))"),
        (tfidf_logistic_regression(), ["a film"], "model/features/word (TfidfVectorizer with the Python tokenizer"),
        (CrossValidated(pipeline(None)), np.zeros((2, 3)), "the step model (CrossValidated)"),
    ]
    for estimator, inputs, named in cases:
        with pytest.raises(UsageError, match=r"has no ONNX converter") as refusal:
            convert_estimator(estimator, inputs)
        assert named in refusal.value.problem, refusal.value.problem


def test_the_legacy_exporter_takes_over_where_dynamo_fails_and_says_why(tmp_path: Path) -> None:
    from shared.capabilities import ExportGraph
    from shared.export import export_network
    from shared.onnx_runtime import open_session

    class DataDependent(torch.nn.Module):
        """A branch on a tensor's value: torch.export cannot capture it; tracing follows the example's branch."""

        def forward(self, values: torch.Tensor) -> torch.Tensor:
            return values * 2 if values.sum() > 0 else values - 1

    example = torch.ones(3, 2)
    written = export_network(ExportGraph(DataDependent(), ("values",)), {"values": example}, tmp_path / "m.onnx")
    assert written.exporter == "legacy" and written.fallback_reason
    session = open_session(tmp_path / "m.onnx", threads=1)
    [outputs] = session.run(None, {"values": np.ones((5, 2), np.float32)})
    np.testing.assert_allclose(outputs, 2.0)
