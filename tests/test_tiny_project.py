"""A seventh project, living only under tests/ with its own configs, goes through every core command: adding a
project needs no change to shared/. Also the run object's refusals, and training without a validation split."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from shared.errors import RunNotFoundError
from shared.project import Project
from shared.runs import load_run
from tests.conftest import finished_runs
from tests.tiny_project.project import TinyProject

SMOKE = ["trainer=cpu", "logger=csv"]


def _runs(isolated: Path) -> list[Path]:
    return finished_runs(isolated, "tiny")


def _paths(isolated: Path) -> OmegaConf:
    return OmegaConf.create({"runs_dir": str(isolated / "runs"), "cache_dir": str(isolated / "cache")})


def test_the_project_registers_itself() -> None:
    assert Project.registered["tiny"] is TinyProject


def test_train_evaluate_predict_compare_through_the_core(cli, isolated: Path, tmp_path: Path) -> None:
    tiny = TinyProject()
    result = cli(tiny, "train", *SMOKE)
    assert result.code == 0, result.err
    [run] = _runs(isolated)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["metrics"]["test/acc"] > 0.9, "the blobs are well apart"
    assert metrics["headline"] == "test/acc"
    assert metrics["goals"] == {"val/acc": "max", "val/brier": "min", "test/acc": "max", "test/brier": "min"}
    assert metrics["choices"]["model"] == "logistic" and metrics["choices"]["data"] == "blobs"
    assert "| model= | logistic |" in (run / "MODEL_CARD.md").read_text()

    result = cli(tiny, "evaluate", "split=val")
    assert result.code == 0, result.err
    evaluation = json.loads((run / "evaluations" / "val" / "evaluation.json").read_text())
    assert evaluation["metrics"]["val/acc"] == pytest.approx(metrics["metrics"]["val/acc"])
    assert (run / "metrics.json").read_text() == json.dumps(metrics, indent=2) + "\n", "training's record is kept"

    shutil.rmtree(run / "evaluations")
    (run / "evaluations").write_text("in the way")  # a run that cannot be written to: scored and printed anyway
    result = cli(tiny, "evaluate", "split=test")
    assert result.code == 0 and "test/acc" in result.out and "printed, not saved" in result.out + result.err

    points = tmp_path / "points.csv"
    points.write_text("x,y\n-2,0\n2.1,0.1\n0,2.6\nnorth,1\n")
    output = tmp_path / "preds.jsonl"
    result = cli(tiny, "predict", f"input={points}", f"output={output}")
    assert result.code == 3, "one record is bad: the exit code says some inputs failed"
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [row["blob"] for row in rows[:3]] == ["left", "right", "top"]
    assert rows[3]["input"] == "row 5" and "must be numbers" in rows[3]["error"]

    assert cli(tiny, "train", *SMOKE, "model=network", "trainer.max_epochs=20").code == 0
    result = cli(tiny, "compare", "sort=test/brier")
    assert result.code == 0, result.err
    table = list(csv.DictReader((isolated / "runs" / "tiny" / "comparison.csv").open()))
    assert {row["model"] for row in table} == {"logistic", "network"}
    briers = [float(row["test/brier"]) for row in table]
    assert briers == sorted(briers), "a lower Brier score is better, as declared"


def test_a_network_trains_without_a_validation_split(cli, isolated: Path) -> None:
    result = cli(TinyProject(), "train", *SMOKE, "model=network", "data.val_size=0", "trainer.max_epochs=15")
    assert result.code == 0, result.err
    [run] = _runs(isolated)
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["metrics"]) == {"test/acc", "test/brier"}
    assert metrics["monitor"]["metric"] is None and metrics["epochs"] == 15
    assert "keeping the weights of the last epoch" in (run / "train.log").read_text()
    assert metrics["metrics"]["test/acc"] > 0.85


def test_early_stopping_without_a_validation_split_is_a_clear_error(cli, isolated: Path) -> None:
    result = cli(TinyProject(), "train", *SMOKE, "model=network", "data.val_size=0", "callbacks=early_stopping")
    assert result.code == 2 and "early stopping needs a monitored validation metric" in result.err
    assert not _runs(isolated)


def test_the_run_object_loads_a_run_and_predicts(cli, isolated: Path) -> None:
    assert cli(TinyProject(), "train", *SMOKE).code == 0
    run = load_run(TinyProject(), None, _paths(isolated))
    assert run.config.model._target_.endswith("LogisticRegression") and run.metrics["project"] == "tiny"
    probabilities = run.predict([run.project.parse_record({"x": "2", "y": 0}, run, run.config)])
    assert probabilities.shape == (1, 3) and probabilities[0].argmax() == 1


def test_the_run_object_refuses_what_is_not_a_usable_run(cli, isolated: Path, tmp_path: Path) -> None:
    assert cli(TinyProject(), "train", *SMOKE).code == 0
    [run] = _runs(isolated)
    paths = _paths(isolated)

    unfinished = tmp_path / "unfinished"
    shutil.copytree(run, unfinished)
    (unfinished / "metrics.json").unlink()
    with pytest.raises(RunNotFoundError, match="not a finished run"):
        load_run(TinyProject(), unfinished, paths)

    no_model = tmp_path / "no_model"
    shutil.copytree(run, no_model)
    (no_model / "model.skops").unlink()
    with pytest.raises(RunNotFoundError, match="holds no saved model"):
        load_run(TinyProject(), no_model, paths)

    other = tmp_path / "other"
    shutil.copytree(run, other)
    metrics = json.loads((other / "metrics.json").read_text())
    (other / "metrics.json").write_text(json.dumps({**metrics, "project": "mnist"}))
    with pytest.raises(RunNotFoundError, match="a run of 'mnist', not of tiny"):
        load_run(TinyProject(), other, paths)

    with pytest.raises(RunNotFoundError, match="not a folder"):
        load_run(TinyProject(), tmp_path / "nowhere", paths)


def test_predicting_with_a_run_of_another_project_exits_with_the_reason(cli, isolated: Path, tmp_path: Path) -> None:
    assert cli(TinyProject(), "train", *SMOKE).code == 0
    [run] = _runs(isolated)
    result = cli("mnist", "predict", f"run={run}", f"input={tmp_path}", f"output={tmp_path / 'p.csv'}")
    assert result.code == 1 and "a run of 'tiny', not of mnist" in result.err and "Traceback" not in result.err


def test_prediction_builds_no_trainer(cli, isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-request path: a loaded run predicts in inference mode, without constructing a Lightning Trainer."""
    import lightning

    assert cli(TinyProject(), "train", *SMOKE, "model=network", "trainer.max_epochs=3").code == 0
    run = load_run(TinyProject(), None, _paths(isolated))

    def no_trainer(*arguments: object, **options: object) -> None:
        raise AssertionError("predict built a Trainer")

    monkeypatch.setattr(lightning.Trainer, "__init__", no_trainer)
    values = [run.project.parse_record({"x": x, "y": 0.0}, run, run.config) for x in (-2.0, 2.0)]
    assert run.predict(values).argmax(axis=1).tolist() == [0, 1]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.max_epochs=abc", "trainer.max_epochs='abc' is not a whole number"),
        ("trainer.max_epochs=0", "trainer.max_epochs=0 is not a whole number of at least 1"),
        ("trainer.gradient_clip_val=-1", "not a non-negative number"),
        ("seed=-1", "seed=-1 is not a whole number of at least 0"),
        ("name=a/../../b", "not a plain folder name"),
        ("trainer.compile=fast", "trainer.compile='fast' is neither on/off nor a torch.compile mode"),
        ("trainer.compile={speed:11}", "trainer.compile has speed, which are not torch.compile arguments"),
        ("trainer.max_time=soon", "trainer.max_time='soon' is not a duration in the form DD:HH:MM:SS"),
        ("trainer.max_time={hours:1,fortnights:2}", "trainer.max_time has fortnights, which are not parts of"),
        ("trainer.max_time={minutes:-5}", "has a part that is not a number of at least 0"),
        ("trainer.max_time=300", "trainer.max_time=300 is not a duration"),
    ],
)
def test_settings_that_make_no_sense_are_refused_before_training(cli, isolated: Path, override: str, message: str):
    result = cli(TinyProject(), "train", *SMOKE, "model=network", override)
    assert result.code == 2 and message in result.err and "fix:" in result.err and "Traceback" not in result.err
    assert not (isolated / "runs" / "tiny").exists() or not any((isolated / "runs" / "tiny").iterdir())


def test_a_compiled_network_trains_and_saves_the_plain_modules_weights(cli, isolated: Path) -> None:
    """`trainer.compile` hands Lightning the torch.compile'd module (dynamo's eager backend here: the same tracing,
    without a C++ compiler's minutes); the checkpoint keeps the plain module's names, and predict runs it."""
    from torch._dynamo.utils import counters

    counters.clear()
    result = cli(
        TinyProject(), "train", *SMOKE, "model=network", "trainer.max_epochs=5", "trainer.compile={backend:eager}"
    )
    assert result.code == 0, result.err
    assert counters["stats"]["unique_graphs"] > 0, "dynamo traced the steps"
    run = load_run(TinyProject(), None, _paths(isolated))
    weights = torch.load(run.directory / "model.ckpt", weights_only=True)["state_dict"]
    assert weights and not any("_orig_mod" in name for name in weights)
    assert run.metrics["metrics"]["test/acc"] > 0.85
    values = [run.project.parse_record({"x": x, "y": 0.0}, run, run.config) for x in (-2.0, 2.0)]
    assert run.predict(values).argmax(axis=1).tolist() == [0, 1]


def test_a_broken_metrics_file_is_skipped_not_fatal(cli, isolated: Path) -> None:
    assert cli(TinyProject(), "train", *SMOKE).code == 0
    broken = isolated / "runs" / "tiny" / "broken"
    broken.mkdir()
    (broken / "metrics.json").write_text("{not json")
    result = cli(TinyProject(), "compare")
    assert result.code == 0 and "1 runs" in result.out
    assert cli(TinyProject(), "evaluate").code == 0, "the latest readable run is evaluated"
    result = cli(TinyProject(), "evaluate", f"run={broken}")
    assert result.code == 1 and "is broken" in result.err


def test_each_sweep_gets_a_folder_of_its_own(cli, isolated: Path) -> None:
    """Two sweeps (started in the same second, here one after the other) never share their jobs' folders."""
    for _ in range(2):
        assert cli(TinyProject(), "train", "-m", *SMOKE, "model=logistic,logistic").code == 0
    runs = _runs(isolated)
    assert len(runs) == 4 and len({run.parent for run in runs}) == 2
    assert sorted(run.name for run in runs) == ["0", "0", "1", "1"]
