"""`monitor`, `train init_from=` and `data.extra=` offline, on synthetic data: the command's files and exit codes,
the request log, old runs, and the retraining loop the README documents."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from projects.housing.data import synthetic_frame
from shared.config import compose_config
from shared.monitor.command import DRIFT_EXIT_CODE
from shared.registry import load_project
from shared.runs import load_run
from shared.serve.answering import Answer, Incoming, RequestLog
from tests.conftest import finished_runs, refused, train_one
from tests.tiny_project.project import TinyProject

HOUSING = ("data=synthetic", "data.size=1200", "model=linear", "cv.folds=0")
MNIST = ("data=synthetic", "model=mlp", "model.hidden=[32]", "trainer=cpu", "logger=csv", "trainer.max_epochs=1")


@pytest.fixture(scope="module")
def housing_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.conftest import train_for_module

    return train_for_module(tmp_path_factory, "housing", *HOUSING)


def _districts(path: Path, size: int, seed: int, **changes: object) -> Path:
    frame = synthetic_frame(size, seed)
    if changes.get("inland"):
        frame = frame[frame["ocean_proximity"] == "INLAND"]
    if "income" in changes:
        frame = frame.assign(median_income=frame["median_income"] * float(changes["income"]))  # type: ignore[arg-type]
    frame.to_csv(path, index=False)
    return path


def _report(run: Path) -> tuple[dict, Path]:
    [folder] = sorted((run / "monitoring").iterdir())[-1:]
    return json.loads((folder / "monitor.json").read_text()), folder


def test_train_keeps_a_reference_and_unshifted_inputs_pass(cli, housing_run: Path, tmp_path: Path) -> None:
    assert (housing_run / "reference.npz").is_file()
    assert json.loads((housing_run / "metrics.json").read_text())["monitoring_reference"] == "reference.npz"
    same = _districts(tmp_path / "same.csv", 600, seed=11)
    result = cli("housing", "monitor", f"run={housing_run}", f"input={same}")
    assert result.code == 0, result.err + result.out
    report, folder = _report(housing_run)
    assert report["drift"] is False and report["exit_code"] == 0 and report["records"] == 600
    names = {feature["feature"] for feature in report["features"]}
    assert {"median_income", "ocean_proximity", "predicted_value"} <= names
    assert all(feature["p_value"] is not None for feature in report["features"])
    assert "no drift" in (folder / "report.md").read_text()
    assert not list(folder.glob("*.png")), "plots are for drifted features only"


def test_inland_districts_are_flagged_on_ocean_proximity_with_a_plot(cli, housing_run: Path, tmp_path: Path) -> None:
    inland = _districts(tmp_path / "inland.csv", 800, seed=12, inland=True)
    result = cli("housing", "monitor", f"run={housing_run}", f"input={inland}")
    assert result.code == DRIFT_EXIT_CODE == 4, result.err + result.out
    report, folder = _report(housing_run)
    assert report["drift"] is True and "input:ocean_proximity" in report["drifted_features"]
    [proximity] = [feature for feature in report["features"] if feature["feature"] == "ocean_proximity"]
    assert proximity["test"] == "chi2" and proximity["adjusted_p_value"] < 0.05 and proximity["psi"] > 0.1
    assert (folder / "input_ocean_proximity.png").is_file()
    assert "input_ocean_proximity.png" in (folder / "report.md").read_text()
    assert "DRIFTED" in result.out


def test_richer_districts_are_flagged_on_income(cli, housing_run: Path, tmp_path: Path) -> None:
    richer = _districts(tmp_path / "richer.csv", 600, seed=13, income=1.5)
    assert cli("housing", "monitor", f"run={housing_run}", f"input={richer}").code == DRIFT_EXIT_CODE
    report, _ = _report(housing_run)
    assert "input:median_income" in report["drifted_features"]
    assert "input:ocean_proximity" not in report["drifted_features"]


def test_the_request_log_is_monitored_and_uploads_are_counted_unreadable(cli, housing_run: Path) -> None:
    log = RequestLog(housing_run / "requests.jsonl")
    records = synthetic_frame(300, seed=14)
    records = records[records["ocean_proximity"] == "INLAND"].to_dict("records")
    log.write("/predict", [Incoming(record, record) for record in records], [Answer() for _ in records])
    upload = {"file": "x.png", "bytes": 3, "sha256": "ab"}
    log.write("/predict", [Incoming(b"png", upload)], [Answer()])
    try:
        result = cli("housing", "monitor", f"run={housing_run}", "input=requests")
        assert result.code == DRIFT_EXIT_CODE, result.err + result.out
        report, _ = _report(housing_run)
        assert report["records"] == len(records) and report["records_read"] == len(records) + 1
        assert "input:ocean_proximity" in report["drifted_features"]
        last = cli("housing", "monitor", f"run={housing_run}", "input=requests", "last=10")
        refused(last, 2, "too few")
    finally:
        (housing_run / "requests.jsonl").unlink()
    refused(cli("housing", "monitor", f"run={housing_run}", "input=requests"), 2, "log_requests=true")


def test_a_run_without_a_reference_is_refused_then_monitored_with_reference_file(
    cli, housing_run: Path, tmp_path: Path
) -> None:
    stored = housing_run / "reference.npz"
    stored.rename(tmp_path / "kept.npz")
    try:
        inland = _districts(tmp_path / "inland.csv", 800, seed=15, inland=True)
        refused(cli("housing", "monitor", f"run={housing_run}", f"input={inland}"), 2, "retrain", "reference=")
        like_training = _districts(tmp_path / "like_training.csv", 1500, seed=16)
        with_file = cli("housing", "monitor", f"run={housing_run}", f"input={inland}", f"reference={like_training}")
        assert with_file.code == DRIFT_EXIT_CODE, with_file.err + with_file.out
        assert like_training.name in _report(housing_run)[0]["reference"]
        with_npz = cli(
            "housing", "monitor", f"run={housing_run}", f"input={inland}", f"reference={tmp_path / 'kept.npz'}"
        )
        assert with_npz.code == DRIFT_EXIT_CODE
    finally:
        (tmp_path / "kept.npz").rename(stored)


def test_bad_monitor_command_lines_are_refused(cli, housing_run: Path, tmp_path: Path) -> None:
    refused(cli("housing", "monitor", f"run={housing_run}"), 2, "input=")
    refused(
        cli("housing", "monitor", f"run={housing_run}", f"input={tmp_path / 'none.csv'}"),
        2,
        "does not exist",
        "housing monitor input=FILE",
    )
    few = _districts(tmp_path / "few.csv", 10, seed=17)
    refused(cli("housing", "monitor", f"run={housing_run}", f"input={few}"), 2, "too few", "min_records")
    refused(cli("housing", "monitor", f"run={housing_run}", f"input={few}", "alpha=2"), 2, "alpha")


def test_a_project_that_does_not_monitor_says_so(cli, isolated: Path) -> None:
    tiny = TinyProject()
    run = train_one(cli, isolated, tiny, "trainer=cpu", "logger=csv", "trainer.max_epochs=1")
    assert not (run / "reference.npz").exists()
    refused(cli(tiny, "monitor", f"run={run}", "input=whatever.csv"), 2, "monitored_features")


def test_the_loop_monitor_retrain_on_new_rows_compare_promote(cli, isolated: Path, tmp_path: Path) -> None:
    """README's loop: the promoted run sees drift; a run refitted with the new labelled rows is compared with it on
    the same test split and promoted when its test RMSE is lower."""
    old = train_one(cli, isolated, "housing", *HOUSING)
    assert cli("housing", "promote", f"run={old}").code == 0
    new_rows = _districts(tmp_path / "new_labelled.csv", 1500, seed=21, inland=True)
    assert cli("housing", "monitor", f"input={new_rows}", f"run={old}").code == DRIFT_EXIT_CODE
    retrained = cli("housing", "train", *HOUSING, f"data.extra={new_rows}", "name=retrained")
    assert retrained.code == 0, retrained.err
    [new] = [run for run in finished_runs(isolated, "housing") if run.name.endswith("retrained")]
    old_metrics, new_metrics = (json.loads((run / "metrics.json").read_text()) for run in (old, new))
    added = len(pd.read_csv(new_rows))
    assert new_metrics["data"]["extra train rows"] == added
    assert new_metrics["data"]["train examples"] == old_metrics["data"]["train examples"] + added
    assert new_metrics["data"]["test examples"] == old_metrics["data"]["test examples"]  # the same test split
    table = cli("housing", "compare", "sort=test/rmse")
    assert table.code == 0 and old.name in table.out and new.name in table.out
    better = new_metrics["metrics"]["test/rmse"] < old_metrics["metrics"]["test/rmse"]
    if better:
        assert cli("housing", "promote", f"run={new}").code == 0
    promoted = json.loads((isolated / "runs" / "housing" / "promoted.json").read_text())["run"]
    assert promoted == (new.name if better else old.name)


def test_data_extra_is_refused_where_the_data_takes_none_and_for_a_missing_file(cli, tmp_path: Path) -> None:
    refused(cli("housing", "train", *HOUSING, f"data.extra={tmp_path / 'no.csv'}"), 2, "data.extra")
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("user,item,rating\n1,1,5\n")
    recommender = ("data=synthetic", "model=bias", "trainer=cpu", "logger=csv")
    refused(cli("recommender", "train", *recommender, f"data.extra={pairs}"), 2, "no extra training rows")


def test_data_extra_adds_labelled_digit_folders_to_the_train_split(cli, isolated: Path, tmp_path: Path) -> None:
    """mnist's new labelled rows: `<digit>/<image>` folders, converted as predict converts them; an unreadable file
    is skipped, a folder that is not a class or a file instead of a folder is refused."""
    from PIL import Image

    from projects.mnist.data import synthetic_digit

    folder = tmp_path / "new_digits"
    for digit in (3, 7):
        (folder / str(digit)).mkdir(parents=True)
        for copy in range(4):
            pixels = np.round(np.roll(synthetic_digit(digit), copy, axis=1) * 255).astype(np.uint8)
            Image.fromarray(pixels).resize((56, 56)).save(folder / str(digit) / f"{copy}.png")
    (folder / "7" / "broken.png").write_bytes(b"not a png")
    run = train_one(cli, isolated, "mnist", *MNIST, f"data.extra={folder}")
    card = json.loads((run / "metrics.json").read_text())
    assert card["data"]["extra train rows"] == 8
    assert card["data"]["train examples"] == 600 - 120 + 8  # data=synthetic: 600 images, 20% held out for val
    refused(cli("mnist", "train", *MNIST, f"data.extra={folder / '3' / '0.png'}"), 2, "not a folder", "<class>/")
    (folder / "seven").mkdir()
    refused(cli("mnist", "train", *MNIST, f"data.extra={folder}"), 2, "seven", "0, 1, 2")


def test_init_from_starts_a_network_from_a_finished_runs_weights(cli, isolated: Path, housing_run: Path) -> None:
    first = train_one(cli, isolated, "mnist", *MNIST, "name=first")
    assert (first / "reference.npz").is_file()
    result = cli("mnist", "train", *MNIST, f"init_from={first}", "name=second", "trainer.max_epochs=1")
    assert result.code == 0, result.err
    [second] = [run for run in finished_runs(isolated, "mnist") if run.name.endswith("second")]
    assert json.loads((second / "metrics.json").read_text())["init_from"] == str(first)
    refused(cli("mnist", "train", *MNIST, "model.hidden=[16]", f"init_from={first}"), 2, "do not fit")
    refused(cli("housing", "train", *HOUSING, f"init_from={housing_run}"), 2, "scikit-learn", "data.extra")
    refused(cli("mnist", "train", *MNIST, f"init_from={housing_run}"), 2, "housing")


def test_recommender_prediction_drift_is_the_answered_scores_of_the_pairs(cli, isolated: Path, tmp_path: Path) -> None:
    """Rating protocol: the reference is the test pairs' predicted ratings. Half the test pairs asked again are
    not flagged on them (the synthetic split's users may be, on `user_history`: that reference is the training pairs);
    the same items asked for by users nobody knows get cold-start scores, flagged on `prediction:score`."""
    run = train_one(cli, isolated, "recommender", "data=synthetic", "model=bias", "trainer=cpu", "logger=csv")
    data = load_run(
        load_project("recommender"), run, compose_config("recommender", "predict", [f"run={run}"]).paths
    ).prepared_data
    pairs = data.inputs("test")
    test_pairs = pd.DataFrame({"user": data.user_ids[pairs[:, 0]], "item": data.item_ids[pairs[:, 1]]})
    test_pairs.sample(frac=0.5, random_state=0).to_csv(tmp_path / "test_pairs.csv", index=False)
    assert cli("recommender", "monitor", f"run={run}", f"input={tmp_path / 'test_pairs.csv'}").code in (0, 4)
    report = _report(run)[0]
    [score] = [feature for feature in report["features"] if feature["source"] == "prediction"]
    assert score["feature"] == "score" and score["test"] == "ks" and score["statistic"] < 0.05
    assert "prediction:score" not in report["drifted_features"]

    first_new = int(max(int(user) for user in data.user_ids)) + 1
    new_users = test_pairs.assign(user=first_new + np.arange(len(test_pairs)) % 50)
    new_users.to_csv(tmp_path / "new_users.csv", index=False)
    shifted = cli("recommender", "monitor", f"run={run}", f"input={tmp_path / 'new_users.csv'}")
    assert shifted.code == DRIFT_EXIT_CODE, shifted.err + shifted.out
    assert {"input:user", "prediction:score"} <= set(_report(run)[0]["drifted_features"])
