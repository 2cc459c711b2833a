"""MNIST end to end on tiny synthetic digits (seconds), plus its data parsing and predict inputs."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from projects.mnist.data import SyntheticDigits, random_shift, read_idx
from projects.mnist.predict import parse_digit, to_mnist
from shared.errors import DataError, RecordError, UsageError
from shared.images import image_items
from shared.project import PredictItem
from tests.conftest import run_module, train_one

pytestmark = pytest.mark.heavy

SMOKE = ["data=synthetic", "trainer=cpu", "trainer.max_epochs=2", "logger=csv"]


def _only_run(runs: Path) -> Path:
    found = [metrics.parent for metrics in (runs / "mnist").rglob("metrics.json")]
    assert len(found) == 1, found
    return found[0]


@pytest.fixture
def trained(cli, isolated: Path) -> Path:
    return train_one(cli, isolated, "mnist", *SMOKE)


# --- data ------------------------------------------------------------------------------------
def _idx(path: Path, array: np.ndarray, cut: int = 0) -> Path:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(size.to_bytes(4, "big") for size in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload[: len(payload) - cut]))
    return path


def test_idx_round_trip(tmp_path: Path) -> None:
    images = np.arange(2 * 28 * 28).reshape(2, 28, 28) % 256
    assert np.array_equal(read_idx(_idx(tmp_path / "x.gz", images)), images)


def test_truncated_idx_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="truncated"):
        read_idx(_idx(tmp_path / "x.gz", np.zeros((3, 28, 28)), cut=100))


def test_non_gzip_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "x.gz").write_bytes(b"<html>not found</html>")
    with pytest.raises(DataError, match="not a readable gzip"):
        read_idx(tmp_path / "x.gz")


def test_validation_split_is_carved_from_train_only() -> None:
    data = SyntheticDigits(train_size=100, test_size=40, val_size=0.25)
    data.prepare()
    assert [len(data.targets(split)) for split in ("train", "val", "test")] == [75, 25, 40]
    assert tuple(data.inputs("val").shape) == (25, 1, 28, 28)


def test_val_size_zero_trains_on_every_training_image(cli, isolated: Path) -> None:
    """`data.val_size=0` (a tuned preset's retrain on the full train split): no val split, the last weights kept."""
    data = SyntheticDigits(train_size=100, test_size=40, val_size=0)
    data.prepare()
    assert data.splits == ("train", "test") and len(data.targets("train")) == 100
    result = cli("mnist", "train", *SMOKE, "data.val_size=0")
    assert result.code == 0, result.out + result.err
    metrics = json.loads((_only_run(isolated / "runs") / "metrics.json").read_text())
    assert not any(name.startswith("val/") for name in metrics["metrics"])
    assert metrics["metrics"]["test/acc"] > 0.5, "trained (chance is 0.1), its last weights kept"
    assert metrics["data"]["train examples"] == 600 and "val examples" not in metrics["data"]


def test_random_shift_moves_content_within_bounds() -> None:
    images = torch.zeros(16, 1, 28, 28)
    images[:, :, 14, 14] = 5.0
    shifted = random_shift(images, 2)
    positions = (shifted[:, 0] == 5.0).nonzero()[:, 1:]
    assert shifted.shape == images.shape and len(positions) == 16
    assert (positions - 14).abs().max() <= 2 and (positions != 14).any()


def test_no_data_offline_exits_nonzero_naming_files_and_fixes(cli, isolated: Path, no_mirror: None) -> None:
    result = cli("mnist", "train", "trainer=cpu")
    assert result.code == 1
    assert "train-images-idx3-ubyte.gz" in result.err and "t10k-labels-idx1-ubyte.gz" in result.err
    assert "PORTFOLIO_DATA_DIR" in result.err
    assert "Traceback" not in result.err
    assert not list((isolated / "runs" / "mnist").glob("*")), "a failed train must not leave a run behind"


def test_corrupt_mirror_file_exits_nonzero(cli, isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mirror = isolated / "mirror" / "mnist"
    mirror.mkdir(parents=True)
    (mirror / "train-images-idx3-ubyte.gz").write_bytes(b"broken")
    monkeypatch.setenv("PORTFOLIO_DATA_DIR", str(isolated / "mirror"))
    result = cli("mnist", "train", "trainer=cpu")
    assert result.code == 1
    assert "train-images-idx3-ubyte.gz (mirror) is corrupt" in result.err


# --- train, evaluate, predict -----------------------------------------------------------------
def test_train_writes_a_complete_run(trained: Path) -> None:
    names = {path.relative_to(trained).as_posix() for path in trained.rglob("*") if path.is_file()}
    for expected in (
        "config.yaml",
        "metrics.json",
        "model.ckpt",
        "MODEL_CARD.md",
        "train.log",
        "logs/metrics.csv",
        "plots/learning_curves.png",
        "plots/confusion_matrix.png",
        "plots/misclassified.png",
    ):
        assert expected in names
    metrics = json.loads((trained / "metrics.json").read_text())
    for key in ("val/acc", "test/acc", "val/nll", "test/nll"):
        assert 0.0 <= metrics["metrics"][key] <= (1.0 if "acc" in key else 10.0)
    assert metrics["metrics"]["test/acc"] > 0.9, "the synthetic classes are easy to tell apart"
    for key in (
        "train_seconds",
        "samples_per_second",
        "parameters",
        "seed",
        "device",
        "versions",
        "git_commit",
    ):
        assert key in metrics
    assert metrics["parameters"] > 10_000 and metrics["epochs"] == 2 and metrics["versions"]["torch"]
    card = (trained / "MODEL_CARD.md").read_text()
    assert f"{metrics['metrics']['test/acc']:.4f}" in card and "## Limitations" in card
    assert "python -m projects.mnist train data=synthetic" in card


def test_tensorboard_logger_writes_event_files(cli, isolated: Path) -> None:
    assert cli("mnist", "train", *SMOKE, "logger=tensorboard", "trainer.max_epochs=1").code == 0
    run = _only_run(isolated / "runs")
    assert list((run / "logs").glob("events.out.tfevents.*"))


def test_gpu_trainer_without_a_gpu_is_a_clear_error(cli) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = cli("mnist", "train", "data=synthetic", "trainer=gpu")
    assert result.code == 2
    assert "finds no CUDA device" in result.err and "trainer=cpu" in result.err


def test_same_seed_same_result(cli, isolated: Path) -> None:
    scores = []
    for attempt in ("a", "b"):
        assert cli("mnist", "train", *SMOKE, "seed=3", f"name={attempt}").code == 0
        run = next((isolated / "runs" / "mnist").glob(f"*-{attempt}"))
        scores.append(json.loads((run / "metrics.json").read_text())["metrics"])
    assert scores[0] == scores[1]


def test_classical_model_goes_through_the_same_run(cli, isolated: Path) -> None:
    result = cli("mnist", "train", "data=synthetic", "experiment=baseline")
    assert result.code == 0, result.err
    run = _only_run(isolated / "runs")
    assert (run / "model.skops").is_file() and (run / "MODEL_CARD.md").is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["metrics"]["test/acc"] > 0.9 and metrics["parameters"] == 785 * 10


def test_evaluate_uses_the_latest_run(cli, trained: Path) -> None:
    result = cli("mnist", "evaluate", "trainer=cpu")
    assert result.code == 0, result.err
    evaluation = json.loads((trained / "evaluations" / "test" / "evaluation.json").read_text())
    trained_metrics = json.loads((trained / "metrics.json").read_text())["metrics"]
    assert evaluation["metrics"]["test/acc"] == pytest.approx(trained_metrics["test/acc"])
    assert evaluation["run"] == str(trained)


def test_evaluate_without_runs_says_train_first(cli) -> None:
    result = cli("mnist", "evaluate")
    assert result.code == 1
    assert "train one first" in result.err


def _synthetic_test_images(count: int) -> tuple[np.ndarray, np.ndarray]:
    data = SyntheticDigits(train_size=10, test_size=count)
    data.prepare()
    return data._images["test"], data.targets("test")


def test_predict_folder_keeps_going_past_a_broken_file(cli, trained: Path, tmp_path: Path) -> None:
    images, labels = _synthetic_test_images(6)
    folder = tmp_path / "digits"
    folder.mkdir()
    for index, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{index}.png")
    (folder / "9_broken.png").write_bytes(b"not an image")
    output = tmp_path / "out" / "preds.csv"
    result = cli("mnist", "predict", f"input={folder}", f"output={output}", "trainer=cpu")
    assert result.code == 3, "some inputs failed: the exit code must say so"
    rows = list(csv.DictReader(output.open()))
    assert [row["input"] for row in rows] == [*(f"{i}.png" for i in range(6)), "9_broken.png"]
    assert rows[-1]["error"] and not rows[-1]["digit"]
    predicted = [int(row["digit"]) for row in rows[:-1]]
    assert np.mean(np.array(predicted) == labels) >= 5 / 6
    assert all(0.0 < float(row["probability"]) <= 1.0 for row in rows[:-1])
    assert "could not read 9_broken.png" in result.out


def test_predict_npy_to_jsonl(cli, trained: Path, tmp_path: Path) -> None:
    images, labels = _synthetic_test_images(8)
    np.save(tmp_path / "digits.npy", images)
    output = tmp_path / "preds.jsonl"
    result = cli("mnist", "predict", f"input={tmp_path / 'digits.npy'}", f"output={output}", f"run={trained}")
    assert result.code == 0, result.err
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [row["input"] for row in rows] == [str(i) for i in range(8)]
    assert np.mean(np.array([row["digit"] for row in rows]) == labels) >= 7 / 8


def test_predict_missing_input_is_an_error_and_writes_nothing(cli, trained: Path, tmp_path: Path) -> None:
    output = tmp_path / "preds.csv"
    result = cli("mnist", "predict", f"input={tmp_path / 'nope'}", f"output={output}")
    assert result.code == 2 and "does not exist" in result.err
    assert not output.exists()


def test_predict_rejects_unknown_output_format(cli, trained: Path, tmp_path: Path) -> None:
    result = cli("mnist", "predict", f"input={tmp_path}", f"output={tmp_path / 'preds.xlsx'}")
    assert result.code == 2 and ".csv or .jsonl" in result.err


def test_compare_tabulates_every_run_best_first(cli, isolated: Path) -> None:
    assert cli("mnist", "train", *SMOKE, "name=cnn").code == 0
    assert cli("mnist", "train", "data=synthetic", "experiment=baseline").code == 0
    for metric in ("test/nll", "test/ece", "test/acc"):
        result = cli("mnist", "compare", f"sort={metric}")
        assert result.code == 0, result.err
        table = list(csv.DictReader((isolated / "runs" / "mnist" / "comparison.csv").open()))
        assert len(table) == 2
        values = [float(row[metric]) for row in table]
        best_first = sorted(values, reverse=metric.endswith("acc"))
        assert values == best_first, f"{metric}: the declared direction puts the best first"
    assert {(row["model"], row["experiment"]) for row in table} == {("cnn", ""), ("logreg", "baseline")}
    assert "name=cnn" in next(row["overrides"] for row in table if row["model"] == "cnn")
    assert "| run | data | model | experiment | overrides |" in result.out


def test_compare_by_unknown_metric_lists_the_known_ones(cli, trained: Path) -> None:
    result = cli("mnist", "compare", "sort=test/f1")
    assert result.code == 2 and "test/acc" in result.err


def test_multirun_writes_one_run_per_job(cli, isolated: Path) -> None:
    result = cli("mnist", "train", "-m", "data=synthetic", "trainer=cpu", "trainer.max_epochs=1", "model=cnn,mlp")
    assert result.code == 0, result.err
    runs = sorted((isolated / "runs" / "mnist" / "multirun").rglob("metrics.json"))
    assert len(runs) == 2
    models = {json.loads(path.read_text())["model"].rsplit(".", 1)[-1] for path in runs}
    assert models == {"ConvNet", "MultilayerPerceptron"}


def test_ddp_relaunch_trains_both_ranks_into_one_run(tmp_path: Path) -> None:
    """Lightning's DDP launcher re-executes `python -m projects.mnist train ...` for rank 1 (two CPU processes here)."""
    result = run_module(
        "projects.mnist", "train", "data=synthetic", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
        "trainer.sync_batchnorm=false", "trainer.max_epochs=1", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    [run] = [path for path in (tmp_path / "runs" / "mnist").iterdir()]
    assert (run / "metrics.json").is_file() and (run / "train_ddp_process_1.log").is_file()
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 1


# --- predict input conversion -------------------------------------------------------------------
def test_dark_ink_on_light_paper_is_inverted_and_centred() -> None:
    page = np.ones((100, 60), np.float32)
    page[10:50, 5:15] = 0.0  # a dark stroke in the top-left corner of a white page
    digit = to_mnist(page)
    assert digit.shape == (28, 28)
    assert digit.max() > 0.9 and np.median(digit) == 0.0
    rows, columns = np.nonzero(digit > 0.5)
    assert abs(rows.mean() - 13.5) < 2 and abs(columns.mean() - 13.5) < 2
    assert rows.max() - rows.min() + 1 <= 20


def _read(path: Path) -> list[PredictItem]:
    """Items as `predict` reads them: the shared image readers, each record parsed as a digit."""

    def parse(name: str, payload: object) -> PredictItem:
        try:
            return PredictItem(name, parse_digit(payload))
        except RecordError as error:
            return PredictItem(name, error=str(error))

    return image_items(path, parse)


def test_colour_image_of_another_size_is_converted(tmp_path: Path) -> None:
    image = np.zeros((64, 64, 3), np.uint8)
    image[16:48, 28:36] = (255, 200, 0)
    Image.fromarray(image).save(tmp_path / "seven.jpg")
    [item] = _read(tmp_path / "seven.jpg")
    assert item.error is None and item.value.shape == (28, 28)


def test_records_in_any_form_give_the_same_digit(tmp_path: Path) -> None:
    """Bytes, base64 text, nested 0-255 lists and a {"image": ...} record all read as the same 28×28 digit."""
    import base64

    image = np.zeros((28, 28), np.uint8)
    image[4:24, 12:16] = 255  # sized and centred as MNIST's digits are: predict keeps it as it is
    Image.fromarray(image).save(tmp_path / "one.png")
    raw = (tmp_path / "one.png").read_bytes()
    expected = image / 255.0
    for payload in (raw, base64.b64encode(raw).decode(), image.tolist(), {"image": base64.b64encode(raw).decode()}):
        assert np.allclose(parse_digit(payload), expected, atol=1e-6)
    for bad, message in ((b"no image", "not a readable image"), ("%%%", "base64"), ({"pixels": []}, "'image'")):
        with pytest.raises(RecordError, match=message):
            parse_digit(bad)


def test_wrong_npy_shape_is_an_error(tmp_path: Path) -> None:
    np.save(tmp_path / "bad.npy", np.zeros((2, 3, 4, 5, 6)))
    with pytest.raises(DataError, match="shape"):
        _read(tmp_path / "bad.npy")


def test_empty_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="holds no images"):
        _read(tmp_path)


def test_the_cnn_exposes_its_penultimate_features() -> None:
    """`features(x)` is the layer before the head: the GAN measures its samples with it."""
    from projects.mnist.models import ConvNet
    from shared.capabilities import ExtractsFeatures

    model = ConvNet(widths=(8, 16, 32)).eval()
    images = torch.randn(5, 1, 28, 28)
    features = model.features(images)
    assert isinstance(model, ExtractsFeatures) and features.shape == (5, 32 * 3 * 3)
    assert torch.allclose(model.head(features), model(images))


def test_pooling_before_the_norm_is_the_same_function_in_eval_mode() -> None:
    """Max-pooling commutes with BatchNorm's rising affine map and ReLU: with the same weights and statistics
    (positive scales), conv-pool-BN-ReLU gives what conv-BN-ReLU-pool gives, on a quarter of the values."""
    from projects.mnist.models import ConvNet

    torch.manual_seed(0)
    usual = ConvNet(widths=(8, 16, 32)).eval()
    for module in usual.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.5, 0.5)
    pooled_first = ConvNet(widths=(8, 16, 32), pool_before_norm=True).eval()
    weighted = (torch.nn.Conv2d, torch.nn.BatchNorm2d, torch.nn.Linear)
    layers = [module for module in usual.modules() if isinstance(module, weighted)]
    reordered = [module for module in pooled_first.modules() if isinstance(module, weighted)]
    for source, target in zip(layers, reordered, strict=True):  # the same layers, in another order
        target.load_state_dict(source.state_dict())
    images = torch.randn(4, 1, 28, 28)
    assert torch.allclose(pooled_first(images), usual(images), atol=1e-5)


def test_more_convolutions_per_block_keep_the_feature_size() -> None:
    from projects.mnist.models import ConvNet

    deeper = ConvNet(widths=(8, 16, 32), convolutions_per_block=2)
    convolutions = [module for module in deeper.modules() if isinstance(module, torch.nn.Conv2d)]
    assert len(convolutions) == 6
    assert deeper.features(torch.randn(2, 1, 28, 28)).shape == (2, 32 * 3 * 3)
    with pytest.raises(UsageError, match=r"model\.convolutions_per_block"):
        ConvNet(convolutions_per_block=0)


def test_fashion_mnist_without_a_mirror_names_its_own_folder(cli, isolated: Path, no_mirror: None) -> None:
    result = cli("mnist", "train", "data=fashion_mnist", "trainer=cpu")
    assert result.code == 1 and "dataset 'fashion-mnist'" in result.err and "t10k-images-idx3-ubyte.gz" in result.err


def test_fashion_mnist_keeps_the_frame_and_names_its_classes() -> None:
    """Clothes fill the frame: predict resizes them whole instead of re-fitting a digit's 20×20 box."""
    from projects.mnist.data import FashionMnist
    from projects.mnist.predict import parse_digit, prediction_columns

    shirt = np.zeros((28, 28), np.float32)
    shirt[1:27, 3:25] = 1.0
    assert np.array_equal(parse_digit(shirt, centred_digits=False), shirt)
    assert not np.array_equal(parse_digit(shirt), shirt)  # as a digit it would be shrunk to 20 px
    probabilities = np.eye(10)[[9, 0]]
    assert [row["label"] for row in prediction_columns(probabilities, FashionMnist.class_names)] == [
        "Ankle boot",
        "T-shirt/top",
    ]
