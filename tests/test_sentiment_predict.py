"""Sentiment predict on the toy corpus: free text, files, explanations, records; and the processing report."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from sklearn.pipeline import Pipeline

from projects.sentiment.predict import InputText
from projects.sentiment.project import SentimentProject
from shared.cli import quote_free_text
from shared.errors import RecordError, UsageError
from shared.fitters import load_estimator, save_estimator
from shared.project import PredictItem
from tests.conftest import train_one

TOY = ["data=toy", "trainer=cpu"]


def _predict_cfg(**values: object) -> object:
    """The part of the predict config that reading records uses."""
    return OmegaConf.create({"text_column": "text", "max_chars": 100, **values})


def _read(path: Path, **values: object) -> list[PredictItem]:
    """The items `predict input=path` makes (reading needs no run: sentiment's records are plain texts)."""
    return SentimentProject().read_file(path, None, _predict_cfg(**values))  # type: ignore[arg-type]


@pytest.fixture
def trained_linear(cli, isolated: Path) -> Path:
    return train_one(cli, isolated, "sentiment", *TOY)


# --- predict ----------------------------------------------------------------------------------
def test_free_text_overrides_reach_hydra_as_one_string() -> None:
    assert quote_free_text("text=it's good, really", ("text",)) == "text='it\\'s good, really'"
    assert quote_free_text("text=costs ${x}", ("text",)) == "text='costs \\${x}'"
    assert quote_free_text("text='already quoted'", ("text",)) == "text='already quoted'"
    assert quote_free_text("output=a,b", ("text",)) == "output=a,b"


def test_predict_one_text_prints_label_probability_and_explanation(cli, trained_linear: Path, isolated: Path) -> None:
    result = cli("sentiment", "predict", "text=it's superb, really", "explain=2", f"output={isolated / 'p.jsonl'}")
    assert result.code == 0, result.err
    [row] = [json.loads(line) for line in (isolated / "p.jsonl").read_text().splitlines()]
    assert row["text"] == "it's superb, really" and row["label"] == "positive" and 0.5 < row["probability"] <= 1
    assert row["input"] == "command line" and row["explanation"].count("(") == 2 and "superb" in row["explanation"]
    header, _, shown = result.out.splitlines()[-3:]  # the core prints a command-line record as a table
    assert header.split(" | ")[:4] == ["| text", "label", "probability", "p_positive"]
    assert "it's superb, really" in shown and "| positive |" in shown and "superb (+" in shown


def test_predict_explains_a_file_with_the_n_grams_that_weighed_most(cli, trained_linear: Path, isolated: Path) -> None:
    source = isolated / "reviews.jsonl"
    source.write_text('{"text": "a wonderful film"}\n{"text": "a dull, tedious plot"}\n', encoding="utf-8")
    result = cli("sentiment", "predict", f"input={source}", f"output={isolated / 'out.csv'}", "explain=3")
    assert result.code == 0, result.err
    rows = list(csv.DictReader((isolated / "out.csv").open()))
    assert [row["label"] for row in rows] == ["positive", "negative"]
    assert all(row["explanation"].count("(") == 3 for row in rows)
    assert "wonderful" in rows[0]["explanation"] and "(-" in rows[1]["explanation"]


def test_a_model_that_cannot_explain_is_refused_clearly(cli, trained_linear: Path, isolated: Path) -> None:
    # a run saved before the model was a TfidfClassifier holds a plain Pipeline: it predicts, but cannot explain
    model = load_estimator(trained_linear / "model.skops", ("projects.sentiment.",))
    save_estimator(Pipeline(model.steps), trained_linear / "model.skops")
    plain = cli("sentiment", "predict", "text=a superb film", f"output={isolated / 'p.csv'}")
    assert plain.code == 0, plain.err
    refused = cli("sentiment", "predict", "text=a superb film", "explain=3", f"output={isolated / 'p.csv'}")
    assert refused.code == 2 and "cannot explain" in refused.err and "drop explain=" in refused.err


def test_predict_file_keeps_going_past_bad_lines(cli, trained_linear: Path, isolated: Path) -> None:
    source = isolated / "reviews.txt"
    source.write_bytes(b"a great film\n\n   \nbad \xff bytes\n" + b"dull plot " * 600 + b"\nawful acting\n")
    output = isolated / "out.csv"
    result = cli("sentiment", "predict", f"input={source}", f"output={output}", "max_chars=1000")
    assert result.code == 3
    rows = list(csv.DictReader(output.open()))
    assert list(rows[0]) == ["input", "text", "label", "probability", "p_positive", "warning", "error"]
    assert [row["input"] for row in rows] == [f"line {n}" for n in range(1, 7)]
    assert [row["label"] for row in rows] == ["positive", "", "", "", "negative", "negative"]
    assert rows[1]["error"] == "empty text" and rows[2]["error"] == "empty text"
    assert "not valid UTF-8 (byte 0xff" in rows[3]["error"]
    assert "truncated from 6000 to 1000 characters" in rows[4]["warning"] and len(rows[4]["text"]) == 1000


def test_predict_reads_csv_and_jsonl_columns(tmp_path: Path) -> None:
    table = tmp_path / "in.csv"
    table.write_text('id,review\n1,"good, really"\n2,\n', encoding="utf-8")
    items = _read(table, text_column="review")
    assert [(item.name, item.error) for item in items] == [("row 2", None), ("row 3", "empty text")]
    assert items[0].value == InputText("good, really")
    lines = tmp_path / "in.jsonl"
    lines.write_text('{"review": "fine"}\n{"other": 1}\nnot json\n\n{"review": 7}\n', encoding="utf-8")
    items = _read(lines, text_column="review")
    assert [item.name for item in items] == ["line 1", "line 2", "line 3", "line 5"]  # blank lines are skipped
    assert items[0].value.text == "fine" and "no 'review'" in items[1].error and "JSON" in items[2].error
    assert items[3].error == "the text must be a string, not int"
    with pytest.raises(UsageError, match="no column 'text'"):
        _read(table)
    with pytest.raises(UsageError, match="not a file"):
        _read(tmp_path)


def test_parse_record_takes_a_string_or_a_json_record_and_names_what_is_wrong(
    caplog: pytest.LogCaptureFixture,
) -> None:
    project, cfg = SentimentProject(), _predict_cfg(max_chars=12)
    assert project.parse_record("a fine film", None, cfg) == InputText("a fine film")  # type: ignore[arg-type]
    assert project.parse_record({"text": "fine", "id": 3}, None, cfg) == InputText("fine")  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="projects.sentiment.predict"):
        cut = project.parse_record({"text": "x" * 25}, None, cfg)  # type: ignore[arg-type]
    assert cut == InputText("x" * 12, "truncated from 25 to 12 characters")
    assert "25 characters was cut to its first 12" in caplog.text
    for payload, message in [
        ("", "empty text"),
        ({"text": " \n "}, "empty text"),
        (42, "must be a string, not int"),
        ({"text": ["a", "list"]}, "must be a string, not list"),
        (None, "must be a string, not NoneType"),
        ({"review": "good"}, r"needs a 'text' field \(its fields: review\)"),
    ]:
        with pytest.raises(RecordError, match=message):
            project.parse_record(payload, None, cfg)  # type: ignore[arg-type]


def test_predict_needs_exactly_one_source(cli, trained_linear: Path) -> None:
    assert cli("sentiment", "predict").code == 2
    both = cli("sentiment", "predict", "text=good", "input=x.txt")
    assert both.code == 2 and "on the command line and an input= file" in both.err
    assert "processing" in cli("sentiment", "--help").out  # the project's own command beside the core's


# --- the processing report ------------------------------------------------------------------------
def test_processing_report_shows_each_option_shrinking_the_vocabulary(cli, isolated: Path) -> None:
    result = cli("sentiment", "processing", "data=toy", f"output={isolated / 'processing.md'}")
    assert result.code == 0, result.err
    table = (isolated / "processing.md").read_text()
    rows = [line.split(" | ") for line in table.splitlines() if line.startswith("| as given") or line.startswith("| +")]
    assert len(rows) == 6
    vocabulary = {row[0].strip("| "): int(row[1]) for row in rows}
    assert vocabulary["+ Porter stemmer"] < vocabulary["+ regex tokenizer (n't, 's, punctuation)"]
