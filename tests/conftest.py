"""Shared fixtures: every test runs offline, with its own runs and cache folders."""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TypeVar

import pytest
from filelock import FileLock

from shared.cli import run
from shared.project import Project
from shared.registry import load_project

REPO = Path(__file__).resolve().parents[1]
T = TypeVar("T")


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (`make test` runs one worker per core) each worker gets its share of the cores, so two
    workers' torch threads do not fight over them; subprocesses the tests start inherit the share."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        import torch

        share = max(1, (os.cpu_count() or 1) // workers)
        os.environ["OMP_NUM_THREADS"] = str(share)
        torch.set_num_threads(share)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files marked `heavy` first. pytest-xdist's `--dist loadfile` hands files to the workers in collection order,
    so a heavy file collected last would leave one worker running it alone while the other idles; with the heavy
    files first, the many light ones even out the end. The sort is stable: each file keeps its tests' order."""
    items.sort(key=lambda item: item.get_closest_marker("heavy") is None)


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No downloads, and runs and cache under the test's own folder."""
    monkeypatch.setenv("PORTFOLIO_OFFLINE", "1")
    monkeypatch.setenv("PORTFOLIO_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("PORTFOLIO_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


@pytest.fixture
def mirror() -> Path:
    """The real-data mirror named by PORTFOLIO_DATA_DIR; the test is skipped without one."""
    value = os.environ.get("PORTFOLIO_DATA_DIR")
    if not value or not Path(value).is_dir():
        pytest.skip("no data mirror: set PORTFOLIO_DATA_DIR to run tests on the real datasets")
    return Path(value)


@pytest.fixture
def no_mirror(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PORTFOLIO_DATA_DIR", raising=False)


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run `python -m projects.<project> ...` (or a `Project` object's command line) in this process; returns the
    exit code and the captured output."""

    def invoke(project: str | Project, *arguments: str) -> Result:
        capsys.readouterr()
        code = run(load_project(project) if isinstance(project, str) else project, list(arguments))
        captured = capsys.readouterr()
        logging.getLogger().handlers.clear()  # Hydra's handlers write to the captured streams, closed after the test
        return Result(code, captured.out, captured.err)

    return invoke


def run_module(*arguments: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m ...` in a fresh process from `cwd` (checks the installed entry points)."""
    return subprocess.run(
        [sys.executable, "-m", *arguments],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def script_module(name: str) -> ModuleType:
    """`scripts/<name>.py` as a module (scripts/ is not a package), imported once per process."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def finished_runs(root: Path, project: str) -> list[Path]:
    """The finished runs of `project` under the test's runs folder, in path order."""
    return sorted(metrics.parent for metrics in (root / "runs" / project).rglob("metrics.json"))


def train_one(cli, root: Path, project: str | Project, *overrides: str) -> Path:
    """Train once through the command line and return the run it made (the only finished one)."""
    result = cli(project, "train", *overrides)
    assert result.code == 0, result.err
    [run] = finished_runs(root, project if isinstance(project, str) else project.name)
    return run


def train_for_module(factory: pytest.TempPathFactory, project: str, *overrides: str) -> Path:
    """One run trained for a whole test module, in its own offline runs folder (tests then pass run=PATH)."""
    return train_into(factory.mktemp(project), project, *overrides)


def train_into(root: Path, project: str, *overrides: str) -> Path:
    """Train once, offline, with runs and cache under `root`; the run made."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PORTFOLIO_OFFLINE", "1")
        patch.setenv("PORTFOLIO_RUNS_DIR", str(root / "runs"))
        patch.setenv("PORTFOLIO_CACHE_DIR", str(root / "cache"))
        code = run(load_project(project), ["train", *overrides])
        logging.getLogger().handlers.clear()
    assert code == 0
    [directory] = finished_runs(root, project)
    return directory


def once_per_suite(factory: pytest.TempPathFactory, name: str, make: Callable[[Path], T]) -> T:
    """`make(folder)` once for the whole suite, not once per pytest-xdist worker: the first worker to ask makes it in
    a folder the workers share, under a file lock (pytest-xdist's documented recipe), and the others wait for it and
    reuse it (`make` must return what is already there when the folder holds it). One process: its own folder."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return make(factory.mktemp(name))
    folder = factory.getbasetemp().parent / name  # this session's, common to its workers
    with FileLock(f"{folder}.lock"):
        return make(folder)


@pytest.fixture(scope="session")
def quick_mnist_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """mnist's `quick` preset trained once on the mirror's real MNIST, for every test that needs a real classifier
    (its accuracy floor, the robustness script, the GAN's judge, the monitor's demonstration); skipped without a
    mirror."""
    value = os.environ.get("PORTFOLIO_DATA_DIR")
    if not value or not (Path(value) / "mnist").is_dir():
        pytest.skip("no mnist/ in the data mirror named by PORTFOLIO_DATA_DIR")

    def train(folder: Path) -> Path:
        done = finished_runs(folder, "mnist")
        return done[0] if done else train_into(folder, "mnist", "experiment=quick", "trainer=cpu", "logger=csv")

    return once_per_suite(tmp_path_factory, "quick_mnist_run", train)


@pytest.fixture(scope="session")
def cifar10_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder holding the mirror's CIFAR-10 decoded (60,000 JPEGs, some 20 s on 2 cores), decoded once for
    the suite; point `PORTFOLIO_CACHE_DIR` or `cache_dir` at it. Skipped without the mirror's zip."""
    value = os.environ.get("PORTFOLIO_DATA_DIR")
    if not value or not (Path(value) / "cifar10-jpg" / "cifar10-jpg.zip").is_file():
        pytest.skip("no cifar10-jpg/cifar10-jpg.zip in the data mirror named by PORTFOLIO_DATA_DIR")
    from projects.vision.data import Cifar10

    def decode(folder: Path) -> Path:
        Cifar10(mirror_dir=value, cache_dir=str(folder)).prepare()  # reads the decoded file when it is there
        return folder

    return once_per_suite(tmp_path_factory, "cifar10_cache", decode)


def refused(result: Result, code: int, *phrases: str, output: Path | None = None) -> None:
    """Exit `code`, an error and a fix naming `phrases`, no traceback, and no output file left behind."""
    text = result.out + result.err
    assert result.code == code, text
    assert "error:" in result.err and "fix:" in result.err and "Traceback" not in text, text
    for phrase in phrases:
        assert phrase in result.err, (phrase, result.err)
    assert output is None or not output.exists(), "a refused command writes nothing"
