"""The recommender on tiny synthetic taste groups (seconds): metrics, splits, sources and their archives,
validation, models, and scoring by protocol. Predict is `test_recommender_predict.py`."""

from __future__ import annotations

import csv
import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torchmetrics.functional.retrieval import retrieval_normalized_dcg

from projects.recommender.data import RANKING, RATING
from projects.recommender.metrics import GOALS, long_tail, per_user_ranking, ranking_metrics, rating_metrics, top_k
from projects.recommender.models import BiasBaseline, ItemItem, Popularity
from projects.recommender.project import RecommenderProject
from projects.recommender.sources import MovieLens1M, MovieLens100k, RatingsCsv, SyntheticInteractions, ml1m_members
from shared.data import DataFile
from shared.errors import DataError

SMOKE = ["data=synthetic", "trainer=cpu", "logger=csv"]


def _metrics(runs: Path) -> dict[str, float]:
    [found] = list((runs / "recommender").rglob("metrics.json"))
    return json.loads(found.read_text())["metrics"]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


def _train(cli, isolated: Path, *overrides: str) -> dict[str, float]:
    result = cli("recommender", "train", *SMOKE, *overrides)
    assert result.code == 0, result.err
    return _metrics(isolated / "runs")


# --- metrics against hand-computed cases ----------------------------------------------------------------
def test_ranking_metrics_match_a_hand_computed_user() -> None:
    relevant = np.array([[True, False, True, False, False]])
    users = per_user_ranking(relevant, np.array([[0, 1, 2]]), k=3)
    assert users["precision"][0] == pytest.approx(2 / 3)
    assert users["recall"][0] == pytest.approx(1.0)
    assert users["ndcg"][0] == pytest.approx((1 + 1 / np.log2(4)) / (1 + 1 / np.log2(3)))
    assert users["map"][0] == pytest.approx((1 / 1 + 2 / 3) / 2)


def test_ndcg_agrees_with_torchmetrics() -> None:
    rng = np.random.default_rng(0)
    scores, relevant = rng.random((20, 30)), rng.random((20, 30)) < 0.2
    relevant[:, 0] = True
    ours = per_user_ranking(relevant, top_k(scores, np.zeros_like(relevant)))["ndcg"]
    theirs = [
        float(retrieval_normalized_dcg(torch.tensor(s), torch.tensor(r), top_k=10))
        for s, r in zip(scores, relevant, strict=True)
    ]
    assert np.allclose(ours, theirs)


def test_top_k_never_recommends_an_excluded_item() -> None:
    scores = np.array([[5.0, 4.0, 3.0, 2.0, 1.0]])
    assert top_k(scores, np.array([[True, False, True, False, False]]), k=2).tolist() == [[1, 3]]


def test_ranking_metrics_skip_known_items_and_report_coverage() -> None:
    relevant = np.array([[False, True, False, False], [False, False, True, False]])
    excluded = np.array([[True, False, False, False], [False, True, False, False]])
    scores = np.array([[9.0, 1.0, 2.0, 0.0], [1.0, 9.0, 2.0, 0.0]])
    metrics = ranking_metrics(relevant, excluded, scores, k=1)
    assert metrics["precision@1"] == pytest.approx(0.5)  # user 0 gets item 2 (miss), user 1 gets item 2 (hit)
    assert metrics["coverage"] == pytest.approx(1 / 4)
    assert metrics["mean_popularity"] == pytest.approx(0.0)  # item 2 is known to neither user


def test_ranking_metrics_leave_out_users_without_a_relevant_item() -> None:
    relevant = np.array([[True, False, False], [False, False, False]])
    excluded = np.zeros((2, 3), bool)
    scores = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    assert ranking_metrics(relevant, excluded, scores, k=1)["precision@1"] == pytest.approx(1.0)


def test_rating_metrics_match_hand_computed_values() -> None:
    metrics = rating_metrics(np.array([2.0, 2.0]), np.array([1.0, 2.0]))
    assert metrics["rmse"] == pytest.approx(np.sqrt(0.5)) and metrics["mae"] == pytest.approx(0.5)


def test_long_tail_is_what_lies_outside_the_popular_head() -> None:
    assert sorted(long_tail(np.array([1, 100, 2, 50]), share=0.8).tolist()) == [0, 2]


# --- splits -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", [RATING, RANKING])
def test_splits_are_disjoint_and_lose_no_user(protocol: str) -> None:
    data = SyntheticInteractions(protocol=protocol)
    data.prepare()
    sets = {split: {tuple(pair) for pair in data._pairs[split]} for split in data.splits}
    assert not sets["train"] & sets["val"] and not sets["train"] & sets["test"] and not sets["val"] & sets["test"]
    assert sum(map(len, sets.values())) == 200 * 24
    if protocol == RANKING:
        assert set(data._pairs["train"][:, 0]) == set(range(data.n_users))  # every user keeps a history
        test_share = np.bincount(data._pairs["test"][:, 0]) / 24
        assert np.allclose(test_share, 0.25, atol=1 / 24)  # 75/25 per user, not just overall
        relevant, excluded = data.targets("test"), data.excluded("test")
        assert relevant.dtype == bool and relevant.shape == excluded.shape == (len(data.inputs("test")), 100)
        assert not (relevant & excluded).any()  # what is held out was never known
        assert (excluded >= (data.history(data.inputs("test")) > 0)).all()  # test excludes train ...
        assert excluded.sum() == len(data._pairs["train"]) + len(data._pairs["val"])  # ... and val


def test_ranking_split_is_reproducible_and_seeded() -> None:
    first, second, other = (SyntheticInteractions(protocol=RANKING, split_seed=s) for s in (0, 0, 1))
    for data in (first, second, other):
        data.prepare()
    assert np.array_equal(first._pairs["test"], second._pairs["test"])
    assert not np.array_equal(first._pairs["test"], other._pairs["test"])


# --- validation on load -------------------------------------------------------------------------------------
def _csv(path: Path, rows: list[list[object]], header: list[str]) -> Path:
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_common_column_spellings_are_detected(tmp_path: Path) -> None:
    path = _csv(
        tmp_path / "r.csv",
        [[1, 10, 4.0, 5], [2, 10, 3.0, 6], [1, 11, 5.0, 7]],
        ["userId", "movieId", "rating", "timestamp"],
    )
    items = _csv(tmp_path / "m.csv", [[10, "Heat"], [11, "Fargo"]], ["movieId", "title"])
    data = RatingsCsv(path=str(path), items_path=str(items), val_fraction=0.0)
    data.prepare()
    assert (data.n_users, data.n_items) == (2, 2)
    assert data.title(data.item_index["11"]) == "Fargo"


def test_duplicates_keep_the_latest_or_fail_when_asked(tmp_path: Path) -> None:
    path = _csv(
        tmp_path / "r.csv",
        [[1, 10, 2.0, 1], [1, 10, 5.0, 9], [2, 11, 3.0, 2]],
        ["user_id", "item_id", "rating", "timestamp"],
    )
    data = RatingsCsv(path=str(path), val_fraction=0.0)
    data.prepare()
    kept = np.concatenate([data._ratings[split] for split in data.splits])
    assert sorted(kept.tolist()) == [3.0, 5.0]
    with pytest.raises(DataError, match="occur more than once"):
        RatingsCsv(path=str(path), duplicates="error").prepare()


def test_out_of_range_ratings_are_a_clear_error(tmp_path: Path) -> None:
    path = _csv(tmp_path / "r.csv", [[1, 10, 7.0], [2, 11, 3.0]], ["user", "item", "rating"])
    with pytest.raises(DataError, match=r"outside the scale 1\.\.5"):
        RatingsCsv(path=str(path), rating_scale=(1, 5)).prepare()


def test_implicit_data_cannot_be_rated_but_can_be_ranked(tmp_path: Path) -> None:
    rows = [[user, item] for user in range(1, 6) for item in range(1, 9) if (user + item) % 2]
    path = _csv(tmp_path / "clicks.csv", rows, ["user", "item"])
    with pytest.raises(DataError, match="no rating column"):
        RatingsCsv(path=str(path)).prepare()
    data = RatingsCsv(path=str(path), protocol=RANKING)
    data.prepare()
    assert data.targets("test").shape == (5, 8)


def test_missing_user_column_names_the_columns(tmp_path: Path) -> None:
    path = _csv(tmp_path / "r.csv", [[1, 10]], ["who", "item"])
    with pytest.raises(DataError, match="no user column"):
        RatingsCsv(path=str(path)).prepare()


# --- models recover the planted taste groups -----------------------------------------------------------------
def _fit(model, protocol: str):
    data = SyntheticInteractions(protocol=protocol)
    data.prepare()
    model.set_params(n_users=data.n_users, n_items=data.n_items)
    model.fit(data.inputs("train"), data.targets("train"))
    return data, model


def test_item_item_ranks_far_above_popularity() -> None:
    data, ease = _fit(ItemItem(l2=10.0), RANKING)
    _, popular = _fit(Popularity(), RANKING)
    users, relevant, excluded = data.inputs("test"), data.targets("test"), data.excluded("test")
    ours = ranking_metrics(relevant, excluded, ease.predict(users))["ndcg@10"]
    baseline = ranking_metrics(relevant, excluded, popular.predict(users))["ndcg@10"]
    assert ours > baseline + 0.1, (ours, baseline)


def test_biases_recover_planted_user_and_item_effects() -> None:
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 50, 4000), rng.integers(0, 40, 4000)
    user_effect, item_effect = rng.normal(0, 0.5, 50), rng.normal(0, 0.7, 40)
    ratings = np.clip(3 + user_effect[users] + item_effect[items] + rng.normal(0, 0.3, 4000), 1, 5)
    pairs = np.column_stack([users, items])
    biases = BiasBaseline(n_users=50, n_items=40).fit(pairs[:3000], ratings[:3000])
    mean = BiasBaseline(n_users=50, n_items=40, reg_user=-1, reg_item=-1).fit(pairs[:3000], ratings[:3000])
    assert np.corrcoef(biases.item_bias_, item_effect)[0, 1] > 0.95
    predicted = biases.predict(pairs[3000:])
    assert predicted.min() >= 1 and predicted.max() <= 5
    assert (
        rating_metrics(ratings[3000:], predicted)["rmse"]
        < 0.5
        < rating_metrics(ratings[3000:], mean.predict(pairs[3000:]))["rmse"]
    )


def test_matrix_factorization_learns_the_taste_groups(cli, isolated: Path) -> None:
    metrics = _train(cli, isolated, "model=mf", "trainer.max_epochs=40", "model.lr=0.02", "model.reg=0.01")
    assert metrics["test/rmse"] < 1.0, metrics  # biases alone: ~1.5 on this bimodal data


def test_autorec_learns_the_taste_groups_and_keeps_them_in_its_checkpoint(cli, isolated: Path, tmp_path) -> None:
    full_batch = ["data.batch_size=100000", "trainer.max_epochs=100"]
    metrics = _train(cli, isolated, "model=autorec", "model.hidden=64", "model.reg=5", "model.lr=0.02", *full_batch)
    assert metrics["test/rmse"] < 0.8, metrics  # biases alone: ~1.4 on this bimodal data
    similar = cli("recommender", "predict", "item=1", "similar=5", f"output={tmp_path / 'similar.csv'}")
    assert similar.code == 0, similar.err  # from the saved run: the codes of its stored ratings
    assert sum("(group 0)" in row["title"] for row in _rows(tmp_path / "similar.csv")) >= 4
    top = cli("recommender", "predict", "user=1", "k=5", f"output={tmp_path / 'top.csv'}")
    assert top.code == 0, top.err  # user 1 is in group 0 and rates its items high
    assert sum("(group 0)" in row["title"] for row in _rows(tmp_path / "top.csv")) >= 4
    # user 1 (group 0) and user 2 (group 1) on an item of group 0 (item 1) and of group 1 (item 2)
    pairs = _csv(tmp_path / "pairs.csv", [[1, 1], [1, 2], [2, 1], [2, 2]], ["user_id", "item_id"])
    result = cli("recommender", "predict", f"input={pairs}", f"output={tmp_path / 'out.csv'}")
    assert result.code == 0, result.err
    scores = [float(row["score"]) for row in csv.DictReader((tmp_path / "out.csv").open())]
    assert scores[0] > scores[1] + 1 and scores[3] > scores[2] + 1, scores


@pytest.mark.parametrize("model", ["bpr", "two_tower"])
def test_neural_rankers_beat_popularity(cli, isolated: Path, model: str) -> None:
    metrics = _train(cli, isolated, f"model={model}", "protocol=ranking", "trainer.max_epochs=30", "model.lr=0.01")
    data, popular = _fit(Popularity(), RANKING)
    baseline = ranking_metrics(data.targets("test"), data.excluded("test"), popular.predict(data.inputs("test")))[
        "ndcg@10"
    ]
    assert metrics["test/ndcg@10"] > baseline + 0.1, (metrics, baseline)


def test_a_ranking_model_is_refused_under_the_rating_protocol(cli) -> None:
    result = cli("recommender", "train", *SMOKE, "model=bpr")
    assert result.code == 2 and "protocol=ranking" in result.err


# --- scoring: the protocol and the exclusions come from the data, not from array shapes ---------------------
def test_metrics_are_declared_and_led_by_the_protocol() -> None:
    project = RecommenderProject()
    assert project.metrics_for(SyntheticInteractions(protocol=RATING)).headline == "rmse"
    assert project.metrics_for(SyntheticInteractions(protocol=RANKING)).headline == "ndcg@10"
    assert project.metrics.goal("test/rmse") == "min" and project.metrics.goal("val/ndcg@10") == "max"


def test_score_reads_the_protocol_and_the_excluded_items_from_the_data() -> None:
    project, rng = RecommenderProject(), np.random.default_rng(0)
    ranking = SyntheticInteractions(protocol=RANKING)
    ranking.prepare()
    scores = rng.random((len(ranking.inputs("test")), ranking.n_items))
    scored = project.score(ranking, "test", scores)
    assert set(scored) == {name for name in GOALS if name not in ("rmse", "mae")}
    # the items the data says are known never count, however high the model scores them
    pushed = np.where(ranking.excluded("test"), 1e9, scores)
    assert project.score(ranking, "test", pushed) == scored
    assert scored == ranking_metrics(ranking.targets("test"), ranking.excluded("test"), scores)
    rating = SyntheticInteractions(protocol=RATING)
    rating.prepare()
    truth = rating.targets("test")
    assert project.score(rating, "test", truth) == {"rmse": 0.0, "mae": 0.0}
    assert project.score(rating, "test", truth + 1)["rmse"] == pytest.approx(1.0)


def test_a_trained_run_records_its_headline_goals_and_monitor(cli, isolated: Path) -> None:
    assert cli("recommender", "train", *SMOKE, "model=bpr", "protocol=ranking", "trainer.max_epochs=1").code == 0
    [found] = list((isolated / "runs" / "recommender").rglob("metrics.json"))
    metrics = json.loads(found.read_text())
    assert metrics["headline"] == "test/ndcg@10"
    assert metrics["monitor"] == {"metric": "val/ndcg@10", "mode": "max"}
    assert metrics["goals"]["test/mean_popularity"] == "neither" and metrics["goals"]["val/coverage"] == "max"
    assert metrics["model_details"]["protocols"] == "ranking"


# --- sources read through DataFile members of their archives ------------------------------------------------
def _fake_ml1m(folder: Path, members: tuple[str, ...] = ("ratings.dat", "movies.dat")) -> Path:
    """A tiny zip laid out like GroupLens' ml-1m.zip (`::`-separated, Latin-1)."""
    folder.mkdir(parents=True)
    contents = {
        "ratings.dat": "".join(
            f"{user}::{item}::{1 + (user + item) % 5}::97830{user}\n" for user in range(1, 9) for item in (1, 2, 3)
        ).encode("latin-1"),
        "movies.dat": "1::Toy Story (1995)::Animation\n2::Amélie (2001)::Comedy\n3::Heat::Action\n".encode("latin-1"),
    }
    with zipfile.ZipFile(folder / "ml-1m.zip", "w") as archive:
        for name in members:
            archive.writestr(f"ml-1m/{name}", contents[name])
    return folder / "ml-1m.zip"


def _trust(monkeypatch: pytest.MonkeyPatch, archive: Path) -> None:
    """Make MovieLens 1M read its members out of `archive`, checked against that file's own digest."""
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    monkeypatch.setattr(MovieLens1M, "members", ml1m_members(DataFile("ml-1m.zip", sha256=(digest,))))


def _ml1m(isolated: Path) -> MovieLens1M:
    return MovieLens1M(mirror_dir=str(isolated / "mirror"), cache_dir=str(isolated / "cache"))


def test_movielens_1m_reads_its_members_out_of_the_checked_zip(isolated: Path, monkeypatch) -> None:
    _trust(monkeypatch, _fake_ml1m(isolated / "mirror" / "movielens-1m"))
    source = _ml1m(isolated)
    source.prepare()
    assert sum(len(source.targets(split)) for split in ("train", "val", "test")) == 24
    assert source.title(source.item_index["2"]) == "Amélie (2001)"  # Latin-1 decoded
    extracted = isolated / "cache" / "movielens-1m"
    assert (extracted / "ratings.dat").is_file() and (extracted / "movies.dat").is_file()  # by DataFile, not by hand


def test_movielens_1m_with_another_zip_is_a_clear_error(isolated: Path) -> None:
    _fake_ml1m(isolated / "mirror" / "movielens-1m")  # not GroupLens' bytes: the real checksum refuses it
    with pytest.raises(DataError, match=r"ml-1m\.zip \(mirror\) is corrupt"):
        _ml1m(isolated).prepare()


def test_movielens_1m_corrupt_archive_is_a_clear_error(isolated: Path, monkeypatch) -> None:
    archive = isolated / "mirror" / "movielens-1m" / "ml-1m.zip"
    archive.parent.mkdir(parents=True)
    archive.write_bytes(b"PK\x03\x04 truncated, not a zip at all")
    _trust(monkeypatch, archive)
    with pytest.raises(DataError, match=r"no readable member ml-1m/ratings\.dat"):
        _ml1m(isolated).prepare()


def test_movielens_1m_archive_without_a_member_names_it(isolated: Path, monkeypatch) -> None:
    _trust(monkeypatch, _fake_ml1m(isolated / "mirror" / "movielens-1m", members=("ratings.dat",)))
    with pytest.raises(DataError, match=r"no readable member ml-1m/movies\.dat"):
        _ml1m(isolated).prepare()


def test_movielens_100k_members_are_checked_by_their_own_sums(isolated: Path) -> None:
    """GroupLens' ml-100k.zip has no known checksum: each member read out of it must match its own."""
    folder = isolated / "mirror" / "movielens-100k"
    folder.mkdir(parents=True)
    with zipfile.ZipFile(folder / "ml-100k.zip", "w") as archive:
        for name in ("u1.base", "u1.test", "u.item"):
            archive.writestr(f"ml-100k/{name}", "1\t1\t5\t881250949\n")
    source = MovieLens100k(mirror_dir=str(isolated / "mirror"), cache_dir=str(isolated / "cache"))
    with pytest.raises(
        DataError, match=r"member ml-100k/u1\.base \(extracted from .*ml-100k\.zip\) is corrupt(.|\n)*original u1\.base"
    ):
        source.prepare()
