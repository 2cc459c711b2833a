"""MovieLens 100k from the mirror: real floors for the rating (fold u1) and ranking protocols."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _run(cli, isolated: Path, *overrides: str) -> dict:
    result = cli("recommender", "train", "trainer=cpu", *overrides)
    assert result.code == 0, result.err
    found = sorted((isolated / "runs" / "recommender").rglob("metrics.json"), key=lambda path: path.stat().st_mtime)
    return json.loads(found[-1].read_text())


@pytest.fixture
def movielens(mirror: Path) -> Path:
    if not (mirror / "movielens-100k").is_dir():
        pytest.skip(f"no movielens-100k/ in the mirror {mirror}")
    return mirror


def test_autorec_on_fold_u1_beats_the_bias_baseline(cli, movielens: Path, isolated: Path) -> None:
    bias = _run(cli, isolated, "experiment=bias")
    assert bias["data"]["train interactions"] + bias["data"]["val interactions"] == 80_000
    assert bias["data"]["test interactions"] == 20_000
    autorec = _run(cli, isolated, "experiment=autorec")
    assert autorec["metrics"]["test/rmse"] <= 0.91, autorec["metrics"]  # surprise's SVD++: 0.919 (5-fold mean)
    assert autorec["metrics"]["test/rmse"] < bias["metrics"]["test/rmse"] - 0.04


def test_item_item_ranking_reaches_the_published_range(cli, movielens: Path, isolated: Path) -> None:
    metrics = _run(cli, isolated, "experiment=item_item")["metrics"]
    assert metrics["test/ndcg@10"] >= 0.44 and metrics["test/precision@10"] >= 0.38, metrics
