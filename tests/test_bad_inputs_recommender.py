"""Bad input to the recommender, each refused with a message and a fix (or kept to its own row), never a traceback
or a quiet wrong answer: pair files that are not CSV, rows that do not fit their header, counts that are no counts,
top-k lists past the catalogue, implausible ratings, ratings files in UTF-16 or Latin-1 (`data.encoding=`), too few
ratings to hold out, and settings that cannot work."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from projects.recommender.data import RANKING
from projects.recommender.sources import SyntheticInteractions
from tests.conftest import Result, finished_runs, refused, train_for_module

SMOKE = ["data=synthetic", "trainer=cpu", "logger=csv", "model=item_item", "protocol=ranking", "model.l2=100"]
PAIRS = "user_id,item_id\n1,45\n2,3\n"


@pytest.fixture(scope="module")
def ranked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run trained for the whole module (predict reads it with run=PATH)."""
    return train_for_module(tmp_path_factory, "recommender", *SMOKE)


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


def predict_file(cli, ranked: Path, path: Path, *extra: str) -> tuple[Result, Path]:
    output = path.with_name(f"{path.stem}-scores.csv")
    return cli("recommender", "predict", f"run={ranked}", f"input={path}", f"output={output}", *extra), output


# --- the pairs file ----------------------------------------------------------------------------------------------
def test_a_row_with_extra_fields_is_its_own_error_not_other_ids(cli, ranked: Path, tmp_path: Path) -> None:
    source = tmp_path / "pairs.csv"
    source.write_text("user_id,item_id\n1,45\n1,45,7,8\n2,3\n", encoding="utf-8")
    result, output = predict_file(cli, ranked, source)
    assert result.code == 3 and "Traceback" not in result.out + result.err
    written = rows(output)
    assert [row["input"] for row in written] == ["row 1", "row 2", "row 3"], "complete: one row per input"
    assert "4 comma-separated fields, the header has 2" in written[1]["error"] and not written[1]["user"]
    assert [row["user"] for row in written if not row["error"]] == ["1", "2"], "never scored as user 7, item 8"


@pytest.mark.parametrize(
    ("content", "phrases"),
    [
        (b"", ("is empty", "user_id,item_id")),
        (b"user_id,item_id\n", ("header but no rows",)),
        (PAIRS.encode("utf-16-le"), ("NUL bytes", "encoding=utf-16-le")),  # UTF-16 without its byte-order mark
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01", ("NUL bytes", "not a text file")),
        (b'user_id,item_id\n1,"45\n2,3\n', ("not valid CSV", "close every quote")),
        (b"user_id;item_id\n1;45\n", ("';'-separated", "commas")),
        (b"user_id,item_id,note\n1,45,caf\xe9\n", ("not UTF-8", "encoding=latin-1")),
        (b"who,what\n1,45\n", ("needs a user and an item column", "user_id,item_id")),
    ],
    ids=["empty", "header-only", "utf16-no-bom", "binary", "open-quote", "semicolons", "latin1", "no-columns"],
)
def test_an_unreadable_pairs_file_is_a_data_error(cli, ranked: Path, tmp_path: Path, content: bytes, phrases) -> None:
    source = tmp_path / "pairs.csv"
    source.write_bytes(content)
    result, output = predict_file(cli, ranked, source)
    refused(result, 1, *phrases, output=output)


def test_utf16_and_utf8_bom_files_are_read_and_latin1_when_named(cli, ranked: Path, tmp_path: Path) -> None:
    for name, content, extra in [
        ("utf16.csv", PAIRS.encode("utf-16"), ()),  # with its byte-order mark, as Excel writes "Unicode text"
        ("bom.csv", PAIRS.encode("utf-8-sig"), ()),
        ("tabs.tsv", PAIRS.replace(",", "\t").encode("utf-32"), ()),
        ("latin1.csv", "user_id,item_id,note\n1,45,café\n2,3,\n".encode("latin-1"), ("encoding=latin-1",)),
    ]:
        (tmp_path / name).write_bytes(content)
        result, output = predict_file(cli, ranked, tmp_path / name, *extra)
        assert result.code == 0, (name, result.err)
        assert [(row["user"], row["item"]) for row in rows(output)] == [("1", "45"), ("2", "3")], name


def test_an_unknown_encoding_is_a_usage_error(cli, ranked: Path, tmp_path: Path) -> None:
    (tmp_path / "pairs.csv").write_text(PAIRS, encoding="utf-8")
    result, output = predict_file(cli, ranked, tmp_path / "pairs.csv", "encoding=klingon")
    refused(result, 2, "encoding=klingon", "encoding=utf-8", output=output)


# --- top-k lists ---------------------------------------------------------------------------------------------------
def test_a_k_past_the_catalogue_returns_fewer_items_never_seen_ones(cli, ranked: Path, tmp_path: Path) -> None:
    data = SyntheticInteractions(protocol=RANKING)
    data.prepare()
    seen = {str(data.item_ids[i]) for i in np.flatnonzero(data.history(np.array([data.user_index["1"]]))[0])}
    result = cli("recommender", "predict", f"run={ranked}", "user=1", "k=1000", f"output={tmp_path / 'top.csv'}")
    assert result.code == 0, result.err
    listed = [row["item"] for row in rows(tmp_path / "top.csv")]
    assert seen and not seen & set(listed) and len(listed) == len(set(listed)) == data.n_items - len(seen)
    output = tmp_path / "similar.csv"
    result = cli("recommender", "predict", f"run={ranked}", "item=45", "similar=100000", f"output={output}")
    assert result.code == 0, result.err
    listed = [row["item"] for row in rows(output)]
    assert "45" not in listed and len(listed) == data.n_items - 1


@pytest.mark.parametrize(
    ("arguments", "phrase"),
    [
        (("user=1", "k=-1"), "k=-1: ask for at least one item"),
        (("user=1", "k=0"), "k=0: ask for at least one item"),
        (("user=1", "k=abc"), "k=abc is not a whole number"),
        (("user=1", "k=1.5"), "k=1.5 is not a whole number"),
        (("item=45", "similar=0"), "similar=0: ask for at least one item"),
    ],
)
def test_a_count_that_is_no_count_is_a_usage_error(cli, ranked: Path, tmp_path: Path, arguments, phrase) -> None:
    output = tmp_path / "top.csv"
    refused(cli("recommender", "predict", f"run={ranked}", *arguments, f"output={output}"), 2, phrase, output=output)


# --- training data and settings -------------------------------------------------------------------------------------
def _ratings(path: Path, top: str) -> Path:
    lines = [f"{user},{item},{(user + item) % 5 + 1}" for user in range(1, 21) for item in range(1, 11)]
    lines[7] = f"{lines[7].rsplit(',', 1)[0]},{top}"
    path.write_text("user,item,rating\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("top", ["1e30", "inf"])
def test_an_implausible_rating_without_a_scale_names_rating_scale(cli, tmp_path: Path, isolated: Path, top) -> None:
    source = _ratings(tmp_path / "ratings.csv", top)
    result = cli("recommender", "train", "data=ratings_csv", f"data.path={source}", "model=bias", "trainer=cpu")
    refused(result, 1, "not plausible ratings", "data.rating_scale=[low,high]")
    assert finished_runs(isolated, "recommender") == [], "a refused train leaves no run"


@pytest.mark.parametrize(
    ("setting", "phrase"),
    [
        ("data.batch_size=0", "data.batch_size=0 is not a whole number of at least 1"),
        ("data.eval_batch_size=abc", "data.eval_batch_size='abc'"),
        ("data.val_fraction=1.5", "data.val_fraction=1.5 is not a fraction"),
        ("data.test_fraction=0", "data.test_fraction=0 is not a fraction"),
        ("data.per_user=500", "data.per_user=500 is more items than the catalogue's 100"),
        ("data.val_fraction=0", "no validation interactions"),
    ],
)
def test_a_setting_that_cannot_work_is_a_usage_error(cli, isolated: Path, setting: str, phrase: str) -> None:
    refused(cli("recommender", "train", *SMOKE, setting), 2, phrase)
    assert finished_runs(isolated, "recommender") == []


def test_a_rating_scale_must_be_low_then_high(cli, tmp_path: Path) -> None:
    source = _ratings(tmp_path / "ratings.csv", "3")
    result = cli("recommender", "train", "data=ratings_csv", f"data.path={source}", "data.rating_scale=[5,1]")
    refused(result, 2, "data.rating_scale=[5, 1] is not a [low, high] pair", "data.rating_scale=[1,5]")


def test_a_movielens_file_that_is_missing_or_wrong_names_grouplens(cli, isolated: Path, monkeypatch) -> None:
    mirror = isolated / "mirror"
    (mirror / "movielens-100k").mkdir(parents=True)
    (mirror / "movielens-100k" / "u1.base").write_text("not MovieLens\n")
    monkeypatch.setenv("PORTFOLIO_DATA_DIR", str(mirror))
    result = cli("recommender", "train", "trainer=cpu")
    refused(result, 1, "u1.base (mirror) is corrupt", "https://files.grouplens.org/datasets/movielens/ml-100k.zip")


# --- a user's ratings file that is not UTF-8 ------------------------------------------------------------------------
def _noted_ratings(path: Path, encoding: str) -> Path:
    lines = [f"{user},{item},{(user + item) % 5 + 1},café" for user in range(1, 21) for item in range(1, 11)]
    path.write_bytes(("user,item,rating,note\n" + "\n".join(lines) + "\n").encode(encoding))
    return path


@pytest.mark.parametrize(
    ("encoding", "phrases"),
    [("utf-16-le", ("NUL bytes", "data.encoding=utf-16-le")), ("latin-1", ("not UTF-8 text", "data.encoding=latin-1"))],
)
def test_a_ratings_file_not_in_utf8_names_data_encoding(cli, tmp_path: Path, isolated: Path, encoding, phrases):
    source = _noted_ratings(tmp_path / "ratings.csv", encoding)
    train = ["train", "data=ratings_csv", f"data.path={source}", "model=bias", "trainer=cpu"]
    refused(cli("recommender", *train), 1, *phrases)
    assert finished_runs(isolated, "recommender") == [], "a refused train leaves no run"
    named = cli("recommender", *train, f"data.encoding={encoding}")
    assert named.code == 0, named.err


def test_a_ratings_file_with_a_byte_order_mark_is_read_in_its_encoding(cli, tmp_path: Path) -> None:
    source = _noted_ratings(tmp_path / "ratings.csv", "utf-16")
    result = cli("recommender", "train", "data=ratings_csv", f"data.path={source}", "model=bias", "trainer=cpu")
    assert result.code == 0, result.err


def test_too_few_ratings_to_hold_out_say_to_give_more(cli, tmp_path: Path, isolated: Path) -> None:
    source = tmp_path / "ratings.csv"
    source.write_text("user,item,rating\n1,1,3\n2,2,4\n", encoding="utf-8")
    result = cli("recommender", "train", "data=ratings_csv", f"data.path={source}", "model=bias", "trainer=cpu")
    refused(result, 2, "holds out none", "give more interactions (data.val_fraction=0.05 holds out one in 20)")
    assert finished_runs(isolated, "recommender") == []


def test_an_output_that_is_the_input_is_refused_and_the_input_kept(cli, ranked: Path, tmp_path: Path) -> None:
    source = tmp_path / "pairs.csv"
    source.write_text(PAIRS, encoding="utf-8")
    result = cli("recommender", "predict", f"run={ranked}", f"input={source}", f"output={source}")
    refused(result, 2, "is the input file: predicting would overwrite it", "name another output=")
    assert source.read_text(encoding="utf-8") == PAIRS
