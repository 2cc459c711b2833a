"""The README's drift demonstrations on the mirror's real data, through `monitor input=FILE`: each shift is flagged
on the feature where it happened, and an unshifted sample of the test split is not. The inputs are made by
scripts/monitor_benchmark.py, whose benchmark repeats them over many samples."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from shared.config import compose_config
from shared.monitor.command import DRIFT_EXIT_CODE
from shared.registry import load_project
from shared.runs import Run, load_run
from tests.conftest import script_module, train_for_module

pytestmark = [pytest.mark.integration, pytest.mark.heavy]

SIZE = 500


BENCHMARK = script_module("monitor_benchmark")
# Smaller than the benchmark's runs, so the tests stay fast; the reference and the features are the same.
OVERRIDES = {
    "housing": ("model=linear", "cv.folds=0"),
    "sentiment": ("data=rt_polarity", "model=tfidf_lr", "model.C=1.0"),
    "recommender": ("experiment=popularity", "trainer=cpu", "logger=csv"),
}


def _trained(factory: pytest.TempPathFactory, project: str) -> Run:
    mirror = os.environ.get("PORTFOLIO_DATA_DIR")
    missing = [
        folder for folder in BENCHMARK.DEMOS[project].needs if not mirror or not (Path(mirror) / folder).is_dir()
    ]
    if missing:
        pytest.skip(f"no {', '.join(missing)} in the data mirror (PORTFOLIO_DATA_DIR)")
    directory = train_for_module(factory, project, *OVERRIDES[project])
    cfg = compose_config(project, "predict", [f"run={directory}"])
    return load_run(load_project(project), directory, cfg.paths)


def _monitor(cli, run: Run, inputs: object, tmp_path: Path) -> tuple[int, list[str]]:
    """`monitor input=FILE` on `inputs` written in the project's predict format: its exit code, the drifted features."""
    project = run.project.name
    folder = tmp_path / f"inputs-{len(list(tmp_path.iterdir()))}"
    folder.mkdir()
    path = BENCHMARK.DEMOS[project].write(inputs, folder)
    result = cli(project, "monitor", f"run={run.directory}", f"input={path}")
    assert result.code in (0, DRIFT_EXIT_CODE), result.err + result.out
    latest = sorted((run.directory / "monitoring").iterdir())[-1]
    report = json.loads((latest / "monitor.json").read_text())
    assert report["exit_code"] == result.code
    return result.code, report["drifted_features"]


@pytest.fixture(scope="module")
def housing(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return _trained(tmp_path_factory, "housing")


@pytest.fixture(scope="module")
def mnist(quick_mnist_run: Path) -> Run:
    """The suite's quick mnist run (the benchmark's own preset), shared with the other tests that need one."""
    cfg = compose_config("mnist", "predict", [f"run={quick_mnist_run}"])
    return load_run(load_project("mnist"), quick_mnist_run, cfg.paths)


@pytest.fixture(scope="module")
def sentiment(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return _trained(tmp_path_factory, "sentiment")


@pytest.fixture(scope="module")
def recommender(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return _trained(tmp_path_factory, "recommender")


def test_housing_inland_districts_and_richer_districts(cli, housing: Run, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    assert _monitor(cli, housing, BENCHMARK.housing_test(housing, rng, SIZE), tmp_path) == (0, [])
    code, drifted = _monitor(cli, housing, BENCHMARK.housing_inland(housing, rng, SIZE), tmp_path)
    assert code == DRIFT_EXIT_CODE and "input:ocean_proximity" in drifted
    code, drifted = _monitor(cli, housing, BENCHMARK.housing_richer(housing, rng, SIZE), tmp_path)
    assert code == DRIFT_EXIT_CODE and "input:median_income" in drifted


def test_mnist_rotated_digits_and_fashion_mnist(cli, mnist: Run, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    assert _monitor(cli, mnist, BENCHMARK.mnist_test(mnist, rng, SIZE), tmp_path) == (0, [])
    code, drifted = _monitor(cli, mnist, BENCHMARK.mnist_rotated(mnist, rng, SIZE), tmp_path)
    assert code == DRIFT_EXIT_CODE and "input:embedding" in drifted
    code, drifted = _monitor(cli, mnist, BENCHMARK.mnist_fashion(mnist, rng, SIZE), tmp_path)
    assert code == DRIFT_EXIT_CODE and {"input:mean_intensity", "input:embedding"} <= set(drifted)


def test_sentiment_sst2_phrases_and_three_word_texts(cli, sentiment: Run, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    assert _monitor(cli, sentiment, BENCHMARK.sentiment_test(sentiment, rng, SIZE), tmp_path) == (0, [])
    code, drifted = _monitor(cli, sentiment, BENCHMARK.sentiment_sst2_phrases(sentiment, rng, SIZE), tmp_path)
    assert code == DRIFT_EXIT_CODE and "input:length_words" in drifted
    code, drifted = _monitor(cli, sentiment, BENCHMARK.sentiment_three_words(sentiment, rng, SIZE), tmp_path)
    assert code == DRIFT_EXIT_CODE and "input:length_words" in drifted


def test_recommender_new_users(cli, recommender: Run, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    assert _monitor(cli, recommender, BENCHMARK.recommender_test(recommender, rng, SIZE), tmp_path) == (0, [])
    code, drifted = _monitor(cli, recommender, BENCHMARK.recommender_new_users(recommender, rng, SIZE), tmp_path)
    assert code == DRIFT_EXIT_CODE and {"input:user", "input:user_history", "prediction:score"} <= set(drifted)
