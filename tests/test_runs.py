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
    assert first.parent == tmp_path / "toy" and first.name.endswith("-trial") and first.is_dir()
    (first / "config.yaml").write_text("taken")
    second = Path(new_run_dir(str(tmp_path), "toy", "trial"))
    assert second != first and second.is_dir() and not any(second.iterdir())


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


def test_atomic_write_keeps_the_mode_of_the_file_it_replaces(tmp_path: Path) -> None:
    import stat

    from shared.io import write_text

    target = tmp_path / "shared.csv"
    target.write_text("old")
    target.chmod(0o640)
    write_text(target, "new")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640 and target.read_text() == "new"
    fresh = write_text(tmp_path / "fresh.csv", "x")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~umask, "not mkstemp's private 0600"


def test_a_write_the_file_system_refuses_is_a_message_naming_the_path(tmp_path: Path) -> None:
    from shared.io import OutputError, write_text

    (tmp_path / "taken").write_text("a file, not a folder")
    with pytest.raises(OutputError, match=r"cannot write .*taken/out\.csv") as error:
        write_text(tmp_path / "taken" / "out.csv", "x")
    assert error.value.fix and "writable" in error.value.fix


def test_json_files_never_hold_nan(tmp_path: Path) -> None:
    import json

    write_json(tmp_path / "m.json", {"auc": float("nan"), "nested": [float("inf"), 1.5]})
    assert json.loads((tmp_path / "m.json").read_text()) == {"auc": None, "nested": [None, 1.5]}


def test_names_outside_the_runs_folder_are_refused(tmp_path: Path) -> None:
    from shared.errors import UsageError

    for name in ("../escape", "a/b", ".."):
        with pytest.raises(UsageError, match="not a plain folder name"):
            new_run_dir(str(tmp_path), "toy", name)
    assert not (tmp_path / "escape").exists()


def test_two_runs_started_in_the_same_second_get_two_folders(tmp_path: Path) -> None:
    first, second = new_run_dir(str(tmp_path), "toy", "same"), new_run_dir(str(tmp_path), "toy", "same")
    assert first != second and Path(first).is_dir() and Path(second).is_dir()
