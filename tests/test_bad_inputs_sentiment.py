"""Bad input to sentiment, each refused with a message and a fix (or kept to its own row), never a traceback or a
quiet wrong answer: files in UTF-16/32 (read by their byte-order mark), Latin-1 or no text at all, CSV rows that do
not fit their header, settings that cannot work (`max_chars=0`, `data.batch_size=0`, `data.val_size=0`), and
training tables in UTF-16 or Latin-1 (`data.encoding=`) or separated by semicolons."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests.conftest import Result, finished_runs, refused, train_for_module

TOY = ["data=toy", "trainer=cpu"]
REVIEWS = "a great film\nan awful plot\n"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run trained for the whole module (predict reads it with run=PATH)."""
    return train_for_module(tmp_path_factory, "sentiment", *TOY)


def predict(cli, trained: Path, source: Path, *extra: str) -> tuple[Result, Path]:
    output = source.with_name(f"{source.stem}-predictions.csv")
    return cli("sentiment", "predict", f"run={trained}", f"input={source}", f"output={output}", *extra), output


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


# --- encodings -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["utf-16", "utf-32", "utf-8-sig", "utf-16-be"])
def test_a_file_with_a_byte_order_mark_is_read_in_its_encoding(cli, trained: Path, tmp_path: Path, encoding) -> None:
    source = tmp_path / "reviews.txt"
    mark = "\ufeff" if encoding == "utf-16-be" else ""  # the -be/-le codecs write no mark of their own
    source.write_bytes((mark + REVIEWS).encode(encoding))
    result, output = predict(cli, trained, source)
    assert result.code == 0, result.out + result.err
    assert [(row["text"], row["label"]) for row in rows(output)] == [
        ("a great film", "positive"),
        ("an awful plot", "negative"),
    ]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_utf16_tables_are_read_too(cli, trained: Path, tmp_path: Path, suffix: str) -> None:
    source = tmp_path / f"reviews{suffix}"
    content = "id,text\n1,a great film\n2,an awful plot\n" if suffix == ".csv" else '{"text": "a great film"}\n'
    source.write_bytes(content.encode("utf-16"))
    result, output = predict(cli, trained, source)
    assert result.code == 0 and rows(output)[0]["label"] == "positive", result.out + result.err


def test_utf16_without_a_mark_names_the_encoding_option(cli, trained: Path, tmp_path: Path) -> None:
    source = tmp_path / "reviews.txt"
    source.write_bytes(REVIEWS.encode("utf-16-le"))
    result, output = predict(cli, trained, source)
    refused(result, 1, "NUL bytes", "encoding=utf-16-le", output=output)
    result, output = predict(cli, trained, source, "encoding=utf-16-le")
    assert result.code == 0 and len(rows(output)) == 2, result.err


def test_latin1_lines_are_their_own_errors_until_the_encoding_is_named(cli, trained: Path, tmp_path: Path) -> None:
    source = tmp_path / "reviews.txt"
    source.write_bytes("a great film\nun café awful plot\n".encode("latin-1"))
    result, output = predict(cli, trained, source)
    assert result.code == 3 and "Traceback" not in result.out + result.err
    written = rows(output)
    assert [row["input"] for row in written] == ["line 1", "line 2"] and written[0]["label"] == "positive"
    assert "not valid UTF-8 (byte 0xe9" in written[1]["error"] and "encoding=latin-1" in written[1]["error"]
    result, output = predict(cli, trained, source, "encoding=latin-1")
    assert result.code == 0 and rows(output)[1]["text"] == "un café awful plot", result.err


def test_a_file_that_is_not_that_encoding_or_not_one_at_all_is_refused(cli, trained: Path, tmp_path: Path) -> None:
    source = tmp_path / "reviews.txt"
    source.write_bytes(b"\xff\xfe\x00\xd8")  # a UTF-16 mark before half a surrogate pair
    refused(predict(cli, trained, source)[0], 1, "is not utf-16 text", "encoding=")
    source.write_bytes(REVIEWS.encode())
    result, output = predict(cli, trained, source, "encoding=klingon")
    refused(result, 2, "encoding=klingon is not a text encoding", output=output)


# --- files that are no texts -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "content", "phrases"),
    [
        ("empty.txt", b"", ("is empty", ".jsonl")),
        ("image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", ("NUL bytes", "not a text file")),
        ("empty.csv", b"", ("is empty",)),
        ("header.csv", b"id,text\n", ("header but no rows",)),
        ("quote.csv", b'id,text\n1,"a great film\n2,dull\n', ("not valid CSV", "close every quote")),
        ("column.csv", b"id,review\n1,a great film\n", ("no column 'text'", "text_column=")),
    ],
)
def test_a_file_that_holds_no_texts_is_refused(cli, trained: Path, tmp_path: Path, name, content, phrases) -> None:
    source = tmp_path / name
    source.write_bytes(content)
    result, output = predict(cli, trained, source)
    refused(result, 2 if name == "column.csv" else 1, *phrases, output=output)


def test_a_csv_row_that_does_not_fit_its_header_is_its_own_error(cli, trained: Path, tmp_path: Path) -> None:
    source = tmp_path / "reviews.csv"
    source.write_text("id,text\n1,a great film\n2,good, really good\n3,an awful plot\n", encoding="utf-8")
    result, output = predict(cli, trained, source)
    assert result.code == 3 and "Traceback" not in result.out + result.err
    written = rows(output)
    assert [row["input"] for row in written] == ["row 2", "row 3", "row 4"], "complete: one row per input"
    assert "3 comma-separated fields, the header has 2: quote a value" in written[1]["error"]
    assert [row["label"] for row in written] == ["positive", "", "negative"]


# --- settings -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["0", "-1", "abc", "2.5"])
def test_max_chars_must_be_a_positive_count(cli, trained: Path, tmp_path: Path, value: str) -> None:
    output = tmp_path / "p.csv"
    arguments = [f"run={trained}", "text=a great film", f"max_chars={value}", f"output={output}"]
    result = cli("sentiment", "predict", *arguments)
    refused(result, 2, f"max_chars={value!r}" if value == "abc" else f"max_chars={value}", "max_chars=5000")
    assert not output.exists()
    source = tmp_path / "reviews.txt"
    source.write_text(REVIEWS, encoding="utf-8")
    refused(predict(cli, trained, source, f"max_chars={value}")[0], 2, "max_chars=5000")


@pytest.mark.parametrize(
    ("settings", "phrases"),
    [
        (["data.batch_size=0"], ("data.batch_size=0 is not a whole number of at least 1", "data.batch_size=64")),
        (["data.eval_batch_size=-4"], ("data.eval_batch_size=-4",)),
        (["data.val_size=0"], ("data.val_size=0 asks for no validation split", "use a positive data.val_size")),
        (["data.val_size=1.5"], ("data.val_size=1.5 is neither a fraction",)),
        (["data.val_size=abc"], ("data.val_size='abc'",)),
        (["data.train_size=0"], ("data.train_size=0",)),
        (["data.test_size=1.5"], ("data.test_size=1.5",)),
        (["data.split_seed=-1"], ("data.split_seed=-1",)),
        (["data.val_size=400"], ("cannot hold out 400 of 400 examples", "needs at least 401 examples")),
    ],
)
def test_a_setting_that_cannot_work_is_refused(cli, isolated: Path, settings: list[str], phrases) -> None:
    result = cli("sentiment", "train", *TOY, *settings)
    refused(result, 1 if "400" in settings[0] else 2, *phrases)
    assert finished_runs(isolated, "sentiment") == [], "a refused train leaves no run"


def test_a_two_row_training_file_says_how_many_examples_it_needs(cli, tmp_path: Path, isolated: Path) -> None:
    source = tmp_path / "train.csv"
    source.write_text("text,label\na great film,1\nan awful plot,0\n", encoding="utf-8")
    result = cli("sentiment", "train", "data=csv", f"data.path={source}", "trainer=cpu")
    refused(result, 1, "cannot hold out 0.2 of 2 examples", "needs at least 3 examples")
    assert "smaller validation size" not in result.err, "the old fix pointed the wrong way"
    source.write_bytes("text,label\ncafé,1\n".encode("latin-1"))
    refused(cli("sentiment", "train", "data=csv", f"data.path={source}"), 1, "not UTF-8", "save it as UTF-8")


# --- a training table that is not UTF-8, or not comma-separated ----------------------------------------------------
def _training_table(path: Path, encoding: str, separator: str = ",") -> Path:
    lines = [f"text{separator}label"] + [
        f"{'a great' if i % 2 else 'an awful'} café {i}{separator}{i % 2}" for i in range(60)
    ]
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


@pytest.mark.parametrize(
    ("encoding", "phrases"),
    [("utf-16-le", ("NUL bytes", "data.encoding=utf-16-le")), ("latin-1", ("not UTF-8 text", "data.encoding=latin-1"))],
)
def test_a_training_table_not_in_utf8_names_data_encoding(cli, tmp_path: Path, isolated: Path, encoding, phrases):
    source = _training_table(tmp_path / "reviews.csv", encoding)
    refused(cli("sentiment", "train", "data=csv", f"data.path={source}"), 1, *phrases)
    assert finished_runs(isolated, "sentiment") == [], "a refused train leaves no run"
    named = cli("sentiment", "train", "data=csv", f"data.path={source}", f"data.encoding={encoding}")
    assert named.code == 0, named.err


def test_a_training_table_with_a_byte_order_mark_is_read_in_its_encoding(cli, tmp_path: Path) -> None:
    source = _training_table(tmp_path / "reviews.csv", "utf-16")
    result = cli("sentiment", "train", "data=csv", f"data.path={source}")
    assert result.code == 0, result.err


def test_a_semicolon_separated_training_table_names_the_delimiter(cli, tmp_path: Path, isolated: Path) -> None:
    source = _training_table(tmp_path / "reviews.csv", "utf-8", separator=";")
    result = cli("sentiment", "train", "data=csv", f"data.path={source}")
    refused(result, 1, "looks ';'-separated", "commas (CSV) or tabs (TSV)")
    assert finished_runs(isolated, "sentiment") == []


# --- nothing lost: the input, and files nobody asked for ------------------------------------------------------------
def test_an_output_that_is_the_input_is_refused_and_the_input_kept(cli, trained: Path, tmp_path: Path) -> None:
    source = tmp_path / "reviews.csv"
    source.write_text("text\na great film\n", encoding="utf-8")
    result = cli("sentiment", "predict", f"run={trained}", f"input={source}", f"output={source}")
    refused(result, 2, "is the input file: predicting would overwrite it", "name another output=")
    assert source.read_text(encoding="utf-8") == "text\na great film\n"


def test_a_text_typed_on_the_command_line_is_printed_and_writes_nothing(cli, trained: Path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "predictions.csv").write_text("someone's file\n")
    result = cli("sentiment", "predict", f"run={trained}", "text=a great film")
    assert result.code == 0 and "positive" in result.out, result.err
    assert (tmp_path / "predictions.csv").read_text() == "someone's file\n", "not overwritten"
    assert [path.name for path in tmp_path.glob("*.*")] == ["predictions.csv"], "no other file written"
