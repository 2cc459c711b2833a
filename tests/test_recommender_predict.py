"""The recommender's three predict modes through the core's predict flow (a user's top items, similar items,
scored pairs), on a run trained on tiny synthetic taste groups, and the typed queries records parse into."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from projects.recommender.data import RANKING
from projects.recommender.models import ItemItem, Popularity
from projects.recommender.predict import PairScore, SimilarItems, TopItems, parse_query
from projects.recommender.sources import SyntheticInteractions
from shared.errors import RecordError, UsageError
from tests.conftest import train_one
from tests.test_recommender import _csv

SMOKE = ["data=synthetic", "trainer=cpu", "logger=csv"]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


@pytest.fixture
def ranked(cli, isolated: Path) -> Path:
    return train_one(cli, isolated, "recommender", *SMOKE, "model=item_item", "protocol=ranking", "model.l2=100")


def _synthetic_ranking() -> SyntheticInteractions:
    data = SyntheticInteractions(protocol=RANKING)
    data.prepare()
    return data


def test_predict_user_lists_unseen_titles(cli, ranked: Path, tmp_path: Path) -> None:
    result = cli("recommender", "predict", "user=3", "k=5", f"output={tmp_path / 'top.csv'}")
    assert result.code == 0, result.err
    rows = _rows(tmp_path / "top.csv")
    assert [row["rank"] for row in rows] == ["1", "2", "3", "4", "5"]
    assert {row["input"] for row in rows} == {"command line"} and not any(row["error"] for row in rows)
    scores = [float(row["score"]) for row in rows]
    assert scores == sorted(scores, reverse=True)
    data = _synthetic_ranking()
    seen = {data.title(item) for item in np.flatnonzero(data.history(np.array([data.user_index["3"]]))[0])}
    assert seen and not any(row["title"] in seen for row in rows)
    assert sum("(group 2)" in row["title"] for row in rows) >= 4  # user 3 (index 2) belongs to taste group 2
    assert all(row["title"] in result.out for row in rows)  # a record from the command line is printed too


def test_unknown_user_gets_popular_items_with_a_warning(cli, ranked: Path, tmp_path: Path, caplog) -> None:
    result = cli("recommender", "predict", "user=999999", "k=3", f"output={tmp_path / 'top.jsonl'}")
    assert result.code == 0, result.err
    assert "unknown" in (result.out + result.err + caplog.text)
    rows = [json.loads(line) for line in (tmp_path / "top.jsonl").read_text().splitlines()]
    data = _synthetic_ranking()
    most_popular = np.argsort(-data.item_popularity, kind="stable")[:3]
    assert [row["item"] for row in rows] == [int(data.item_ids[item]) for item in most_popular]


def test_unknown_item_is_an_error_naming_it(cli, ranked: Path, tmp_path: Path) -> None:
    result = cli("recommender", "predict", "item=424242", "similar=3", f"output={tmp_path / 'similar.csv'}")
    assert result.code == 2 and "unknown item id 424242" in result.err and "Traceback" not in result.err
    assert not (tmp_path / "similar.csv").exists(), "a command-line mistake writes nothing"


def test_similar_items_come_from_the_same_group(cli, ranked: Path, tmp_path: Path) -> None:
    result = cli("recommender", "predict", "item=1", "similar=5", f"output={tmp_path / 'similar.csv'}")
    assert result.code == 0, result.err
    rows = _rows(tmp_path / "similar.csv")
    assert len(rows) == 5 and "1" not in [row["item"] for row in rows]  # never the item itself
    assert sum("(group 0)" in row["title"] for row in rows) >= 4
    similarity = [float(row["similarity"]) for row in rows]
    assert similarity == sorted(similarity, reverse=True)


def test_pairs_round_trip_with_a_bad_row(cli, ranked: Path, tmp_path: Path) -> None:
    pairs = _csv(tmp_path / "pairs.csv", [[1, 1], [2, 5], [999, 3], [1, 77777]], ["user_id", "item_id"])
    result = cli("recommender", "predict", f"input={pairs}", f"output={tmp_path / 'out.csv'}")
    assert result.code == 3, result.err
    rows = _rows(tmp_path / "out.csv")
    assert [row["input"] for row in rows] == ["row 1", "row 2", "row 3", "row 4"]
    assert [row["error"] != "" for row in rows] == [False, False, False, True]
    assert rows[2]["cold_start"] == "True" and rows[0]["cold_start"] == "False" and "77777" in rows[3]["error"]
    data = _synthetic_ranking()
    popularity = data.item_popularity / data.item_popularity.max()
    assert float(rows[2]["score"]) == pytest.approx(popularity[data.item_index["3"]], abs=1e-4)


def test_predict_needs_one_mode(cli, ranked: Path) -> None:
    result = cli("recommender", "predict")
    assert result.code == 2 and "user=ID" in result.err


def test_predict_refuses_a_user_and_an_item_together(cli, ranked: Path) -> None:
    result = cli("recommender", "predict", "user=1", "item=1")
    assert result.code == 2 and "both user= and item=" in result.err


def test_records_parse_into_typed_queries() -> None:
    """What the HTTP API would send: each JSON body becomes one query, or a RecordError for its own row."""
    data = _synthetic_ranking()
    model = ItemItem(n_users=data.n_users, n_items=data.n_items, l2=10.0)
    model.fit(data.inputs("train"), data.targets("train"))
    cfg = OmegaConf.create({"k": 10, "similar": 10})
    assert parse_query({"user": 3}, data, model, cfg) == TopItems("3", data.user_index["3"], 10)
    assert parse_query({"user": 3.0, "k": "4"}, data, model, cfg) == TopItems("3", data.user_index["3"], 4)
    assert parse_query({"user": "nobody"}, data, model, cfg) == TopItems("nobody", None, 10)  # cold start
    assert parse_query({"item": 2, "similar": 3}, data, model, cfg) == SimilarItems("2", data.item_index["2"], 3)
    assert parse_query({"user": 1, "item": 2}, data, model, cfg) == PairScore(
        "1", "2", data.user_index["1"], data.item_index["2"]
    )
    for bad, message in [
        ({"item": 424242}, "unknown item id 424242"),
        ({"user": 1, "item": ""}, "item id is empty"),
        ({"user": 1, "k": 0}, "at least one"),
        ({}, "needs a user, an item"),
        ("196", "an object"),
    ]:
        with pytest.raises(RecordError, match=message):
            parse_query(bad, data, model, cfg)
    with pytest.raises(UsageError, match="no notion of similar items"):
        parse_query({"item": 2}, data, Popularity(), cfg)
