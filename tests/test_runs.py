"""Run directories: unique names, latest-run lookup, atomic writes."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from shared.errors import RunNotFoundError
from shared.io import atomic_path, write_json
from shared.runs import new_run_dir, resolve_run, successful_runs


def _finished_run(root: Path, name: str, mtime: float) -> Path:
    run = root / "toy" / name
    write_json(run / "metrics.json", {"metrics": {}})
    os.utime(run / "metrics.json", (mtime, mtime))
    return run


def test_new_run_dir_never_reuses_a_directory(tmp_path: Path) -> None:
    first = Path(new_run_dir(str(tmp_path), "toy", "trial"))
    assert first.parent == tmp_path / "toy" and first.name.endswith("-trial")
    first.mkdir(parents=True)
    second = Path(new_run_dir(str(tmp_path), "toy", "trial"))
    assert second != first and not second.exists()


def test_latest_successful_run_is_found(tmp_path: Path) -> None:
    now = time.time()
    _finished_run(tmp_path, "old", now - 100)
    newest = _finished_run(tmp_path, "multirun/2026/1", now)
    (tmp_path / "toy" / "crashed").mkdir()  # no metrics.json: not a finished run
    assert successful_runs(tmp_path, "toy")[-1] == newest
    assert resolve_run(None, tmp_path, "toy") == newest


def test_explicit_run_must_be_finished(tmp_path: Path) -> None:
    (tmp_path / "toy" / "crashed").mkdir(parents=True)
    with pytest.raises(RunNotFoundError, match="not a finished run"):
        resolve_run(str(tmp_path / "toy" / "crashed"), tmp_path, "toy")


def test_no_runs_tells_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(RunNotFoundError) as error:
        resolve_run(None, tmp_path, "toy")
    assert "python -m projects.toy train" in str(error.value)


def test_atomic_write_leaves_nothing_behind_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [path.name for path in tmp_path.iterdir()] == ["out.csv"]
