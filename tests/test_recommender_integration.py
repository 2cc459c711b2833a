"""MovieLens 100k from the mirror: real floors for the rating (fold u1) and ranking protocols, predict on a
real run, and the fold read out of GroupLens' zip."""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

import pytest

from projects.recommender.sources import MovieLens100k

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


def test_predict_answers_from_the_item_item_run(cli, movielens: Path, isolated: Path, tmp_path: Path) -> None:
    _run(cli, isolated, "experiment=item_item")
    top = cli("recommender", "predict", "user=196", "k=10", f"output={tmp_path / 'top.csv'}")
    assert top.code == 0, top.err
    assert len(_rows(tmp_path / "top.csv")) == 10
    similar = cli("recommender", "predict", "item=50", "similar=10", f"output={tmp_path / 'similar.csv'}")
    assert similar.code == 0, similar.err
    titles = [row["title"] for row in _rows(tmp_path / "similar.csv")]
    assert any(title.startswith(("Return of the Jedi", "Empire Strikes Back")) for title in titles), titles


def test_movielens_100k_is_read_out_of_grouplens_zip(movielens: Path, isolated: Path) -> None:
    """Without the loose files, the fold is read through the DataFile members of ml-100k.zip, each checked."""
    folder = isolated / "zipped" / "movielens-100k"
    folder.mkdir(parents=True)
    with zipfile.ZipFile(folder / "ml-100k.zip", "w") as archive:
        for name in ("u1.base", "u1.test", "u.item"):
            archive.write(movielens / "movielens-100k" / name, f"ml-100k/{name}")
    source = MovieLens100k(mirror_dir=str(isolated / "zipped"), cache_dir=str(isolated / "cache"))
    source.prepare()
    assert (source.n_users, source.n_items) == (943, 1682)
    assert len(source.targets("test")) == 20_000
    assert (isolated / "cache" / "movielens-100k" / "u1.base").is_file()


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))
