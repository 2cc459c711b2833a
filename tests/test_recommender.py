"""The recommender on tiny synthetic taste groups (seconds): metrics, splits, validation, models, predict."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torchmetrics.functional.retrieval import retrieval_normalized_dcg

from projects.recommender.data import RANKING, RATING, RatingsCsv, SyntheticInteractions
from projects.recommender.metrics import long_tail, per_user_ranking, ranking_metrics, rating_metrics, top_k
from projects.recommender.models import BiasBaseline, ItemItem, Popularity
from shared.errors import DataError

SMOKE = ["data=synthetic", "trainer=cpu", "logger=csv"]


def _metrics(runs: Path) -> dict[str, float]:
    [found] = list((runs / "recommender").rglob("metrics.json"))
    return json.loads(found.read_text())["metrics"]


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
    targets = np.array([[-1, 1, 0, 0], [0, -1, 1, 0]], dtype=np.int8)
    scores = np.array([[9.0, 1.0, 2.0, 0.0], [1.0, 9.0, 2.0, 0.0]])
    metrics = ranking_metrics(targets, scores, k=1)
    assert metrics["precision@1"] == pytest.approx(0.5)  # user 0 gets item 2 (miss), user 1 gets item 2 (hit)
    assert metrics["coverage"] == pytest.approx(1 / 4)


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
        targets = data.targets("test")
        assert not ((targets > 0) & (data.history(data.inputs("test")) > 0)).any()


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
    users, targets = data.inputs("test"), data.targets("test")
    ours = ranking_metrics(targets, ease.predict(users))["ndcg@10"]
    baseline = ranking_metrics(targets, popular.predict(users))["ndcg@10"]
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
    similar = cli("recommender", "predict", "item=1", "similar=5")  # from the saved run: codes of stored ratings
    assert similar.code == 0, similar.err
    assert sum("(group 0)" in line for line in similar.out.splitlines()[1:]) >= 4
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
    baseline = ranking_metrics(data.targets("test"), popular.predict(data.inputs("test")))["ndcg@10"]
    assert metrics["test/ndcg@10"] > baseline + 0.1, (metrics, baseline)


def test_a_ranking_model_is_refused_under_the_rating_protocol(cli) -> None:
    result = cli("recommender", "train", *SMOKE, "model=bpr")
    assert result.code == 2 and "protocol=ranking" in result.err


# --- predict --------------------------------------------------------------------------------------------------
@pytest.fixture
def ranked(cli, isolated: Path) -> Path:
    result = cli("recommender", "train", *SMOKE, "model=item_item", "protocol=ranking", "model.l2=100")
    assert result.code == 0, result.err
    [metrics] = list((isolated / "runs" / "recommender").rglob("metrics.json"))
    return metrics.parent


def test_predict_user_lists_unseen_titles(cli, ranked: Path) -> None:
    result = cli("recommender", "predict", "user=3", "k=5")
    assert result.code == 0, result.err
    lines = [line for line in result.out.splitlines() if line.strip()[:2].rstrip(".").isdigit()]
    assert len(lines) == 5
    data = SyntheticInteractions(protocol=RANKING)
    data.prepare()
    seen = {data.title(item) for item in np.flatnonzero(data.history(np.array([data.user_index["3"]]))[0])}
    assert seen and not any(title in line for line in lines for title in seen)
    assert sum("(group 2)" in line for line in lines) >= 4  # user 3 (index 2) belongs to taste group 2


def test_unknown_user_gets_popular_items_with_a_warning(cli, ranked: Path, caplog) -> None:
    result = cli("recommender", "predict", "user=999999", "k=3")
    assert result.code == 0, result.err
    assert "unknown" in (result.out + result.err + caplog.text)


def test_unknown_item_is_an_error_naming_it(cli, ranked: Path) -> None:
    result = cli("recommender", "predict", "item=424242", "similar=3")
    assert result.code == 2 and "424242" in result.err


def test_similar_items_come_from_the_same_group(cli, ranked: Path) -> None:
    result = cli("recommender", "predict", "item=1", "similar=5")
    assert result.code == 0, result.err
    assert sum("(group 0)" in line for line in result.out.splitlines()[1:]) >= 4


def test_pairs_round_trip_with_a_bad_row(cli, ranked: Path, tmp_path: Path) -> None:
    pairs = _csv(tmp_path / "pairs.csv", [[1, 1], [2, 5], [999, 3], [1, 77777]], ["user_id", "item_id"])
    result = cli("recommender", "predict", f"input={pairs}", f"output={tmp_path / 'out.csv'}")
    assert result.code == 3, result.err
    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert [row["error"] != "" for row in rows] == [False, False, False, True]
    assert rows[2]["cold_start"] == "True" and "77777" in rows[3]["error"]


def test_predict_needs_one_mode(cli, ranked: Path) -> None:
    result = cli("recommender", "predict")
    assert result.code == 2 and "user=ID" in result.err


def _fake_ml1m(folder: Path) -> Path:
    """A tiny zip laid out like GroupLens' ml-1m.zip (`::`-separated, Latin-1)."""
    import zipfile

    folder.mkdir(parents=True)
    ratings = "".join(
        f"{user}::{item}::{1 + (user + item) % 5}::97830{user}\n" for user in range(1, 9) for item in (1, 2, 3)
    )
    with zipfile.ZipFile(folder / "ml-1m.zip", "w") as archive:
        archive.writestr("ml-1m/ratings.dat", ratings)
        archive.writestr(
            "ml-1m/movies.dat",
            "1::Toy Story (1995)::Animation\n2::Amélie (2001)::Comedy\n3::Heat::Action\n".encode("latin-1"),
        )
    return folder / "ml-1m.zip"


def test_movielens_1m_reads_the_checked_zip(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    from projects.recommender import data

    archive = _fake_ml1m(isolated / "mirror" / "movielens-1m")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    monkeypatch.setattr(data, "ML1M_ZIP", data.DataFile("ml-1m.zip", sha256=(digest,)))
    source = data.MovieLens1M(mirror_dir=str(isolated / "mirror"), cache_dir=str(isolated / "cache"))
    source.prepare()
    assert sum(len(source.targets(split)) for split in ("train", "val", "test")) == 24
    assert source.title(source.inputs("test")[0][1]).startswith(("Toy Story", "Amélie", "Heat"))


def test_movielens_1m_with_another_zip_is_a_clear_error(isolated: Path) -> None:
    from projects.recommender import data

    _fake_ml1m(isolated / "mirror" / "movielens-1m")
    source = data.MovieLens1M(mirror_dir=str(isolated / "mirror"), cache_dir=str(isolated / "cache"))
    with pytest.raises(DataError, match=r"ml-1m\.zip \(mirror\) is corrupt"):
        source.prepare()
