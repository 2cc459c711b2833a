"""Interrupted trainings: a signal says how to resume and exits 130/143; a killed run resumes from its last full
checkpoint, into its own folder, and ends like an uninterrupted one. A crash leaves no half-written run, unless it
left a checkpoint to resume from."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, finished_runs
from tests.tiny_project.project import TinyProject

EPOCHS = 6
NETWORK = ["trainer=cpu", "logger=csv", "model=network", f"trainer.max_epochs={EPOCHS}", "data.size=600"]
LAUNCH = (
    "import sys; from shared.cli import main; from tests.tiny_project.project import TinyProject; main(TinyProject())"
)


def _interruptible() -> None:
    """A child inherits an ignored SIGINT (pytest-xdist's workers ignore it), and Python then never turns it into
    KeyboardInterrupt: give the child the default, as a terminal's Ctrl-C finds it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _train_in_a_process(root: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    environment = {"PORTFOLIO_RUNS_DIR": str(root / "runs"), "PORTFOLIO_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", LAUNCH, "train", *NETWORK, *overrides],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **environment},
        preexec_fn=_interruptible,
    )


def _signal_at(number: int, epoch: int, batch: int = 0) -> list[str]:
    prefix = "+callbacks.stop"
    target = f"{prefix}._target_=tests.tiny_project.signals.SignalAt"
    return [target, f"{prefix}.signal={number}", f"{prefix}.epoch={epoch}", f"{prefix}.batch={batch}"]


def _only_folder(root: Path) -> Path:
    [folder] = [path for path in (root / "runs" / "tiny").iterdir() if path.is_dir()]
    return folder


@pytest.mark.parametrize(("number", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_says_how_to_resume_and_exits_with_its_code(isolated: Path, number: int, code: int) -> None:
    result = _train_in_a_process(isolated, *_signal_at(number, epoch=2, batch=3))
    assert result.returncode == code, result.stderr[-2000:]
    run = _only_folder(isolated)
    assert f"interrupted: resume with python -m projects.tiny train resume={run}" in result.stderr
    assert (run / "checkpoints" / "last.ckpt").is_file() and not (run / "metrics.json").exists()
    assert "resume=" in (run / "INTERRUPTED").read_text() and "Traceback" not in result.stderr


def test_a_killed_run_resumes_into_its_folder_and_ends_like_an_uninterrupted_one(cli, isolated: Path) -> None:
    reference = cli(TinyProject(), "train", *NETWORK, "name=reference")
    assert reference.code == 0, reference.err
    [reference_run] = finished_runs(isolated, "tiny")
    expected = json.loads((reference_run / "metrics.json").read_text())

    killed = _train_in_a_process(isolated, "name=killed", *_signal_at(signal.SIGKILL, epoch=3, batch=2))
    assert killed.returncode == -signal.SIGKILL
    [run] = [path for path in (isolated / "runs" / "tiny").iterdir() if path.name.endswith("-killed")]
    assert not (run / "metrics.json").exists()

    resumed = cli(TinyProject(), "train", "resume=latest", "~callbacks.stop")  # later overrides apply on top
    assert resumed.code == 0, resumed.err
    assert sorted(finished_runs(isolated, "tiny")) == sorted([reference_run, run]), "resumed into its own folder"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs"] == EPOCHS and metrics["choices"]["model"] == "network"
    assert abs(metrics["metrics"]["test/acc"] - expected["metrics"]["test/acc"]) <= 0.03
    history = [line for line in (run / "logs" / "metrics.csv").read_text().splitlines()[1:] if line]
    assert history, "the resumed epochs are logged"


def test_resume_refuses_what_it_cannot_continue(cli, isolated: Path) -> None:
    result = cli(TinyProject(), "train", "resume=latest")
    assert result.code == 2 and "no interrupted tiny run to resume" in result.err
    finished = cli(TinyProject(), "train", *NETWORK)
    assert finished.code == 0
    [run] = finished_runs(isolated, "tiny")
    result = cli(TinyProject(), "train", f"resume={run}")
    assert result.code == 2 and "finished already" in result.err
    result = cli(TinyProject(), "train", f"resume={isolated / 'nowhere'}")
    assert result.code == 2 and "has no checkpoints/last.ckpt" in result.err


def test_a_crash_before_the_first_checkpoint_leaves_no_half_written_run(cli, isolated: Path, monkeypatch) -> None:
    def crash(self, cfg, data):
        raise RuntimeError("a bug in the project")

    monkeypatch.setattr(TinyProject, "build_model", crash)
    result = cli(TinyProject(), "train", *NETWORK)
    assert result.code == 1 and "a bug in the project" in result.err
    assert list((isolated / "runs").glob("tiny/*")) == [], "the folder of the crashed run is removed"


def test_a_crash_after_a_checkpoint_keeps_the_run_resumable(cli, isolated: Path, monkeypatch) -> None:
    import shared.train

    def crash(*arguments, **options):
        raise RuntimeError("a bug in the evaluation")

    evaluate_splits = shared.train.evaluate_splits
    monkeypatch.setattr(shared.train, "evaluate_splits", crash)
    assert cli(TinyProject(), "train", *NETWORK).code == 1
    run = _only_folder(isolated)
    assert (run / "checkpoints" / "last.ckpt").is_file() and not (run / "metrics.json").exists()
    monkeypatch.setattr(shared.train, "evaluate_splits", evaluate_splits)  # fixed
    resumed = cli(TinyProject(), "train", "resume=latest")
    assert resumed.code == 0, resumed.err
    assert finished_runs(isolated, "tiny") == [run]
