"""`predict` records for sentiment: a text (a string, or `{"text": ...}` as an HTTP body sends it), and the files
of texts the core's `predict input=` reads (plain lines, CSV, TSV or JSON Lines).

Every line is its own record, decoded on its own: an empty line or one that is not valid UTF-8 gets its own
error row while the rest are predicted. A byte-order mark says a file is UTF-16 or UTF-32 (or UTF-8);
`encoding=` names any other encoding. A text longer than `max_chars` is cut there and its row says so.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from projects.sentiment.data import CLASS_NAMES
from shared.api_schema import RecordSchema
from shared.errors import DataError, RecordError, UsageError
from shared.project import PredictItem
from shared.textfiles import read_rows, read_text, undecodable

log = logging.getLogger(__name__)

MAX_CHARS = 5000  # when the config names no max_chars (a caller other than the predict command)
TEXT_FILES = "a text file (one text per line), .csv, .tsv or .jsonl"

Parse = Callable[[str, Any], PredictItem]  # (item name, payload) -> item: `shared.predict.parse_item` bound


@dataclass(frozen=True)
class InputText:
    """A text to predict and, when it had to be cut, a warning saying so."""

    text: str
    warning: str = ""


class TextRecord(BaseModel):
    """One text to classify (English; cut at the server's max_chars, with a warning on its row)."""

    text: str = Field(min_length=1, description="the text; empty or blank text is refused")


TEXT_SCHEMA = RecordSchema(TextRecord, example={"text": "a gripping, beautifully shot film"})


def parse_text(payload: Any, max_chars: int = MAX_CHARS) -> InputText:
    """One record as a text: a string, or a mapping with a `text` string. Cut at `max_chars`, with a warning;
    an empty text or anything else is a `RecordError` naming what is wrong."""
    if isinstance(payload, Mapping):
        if "text" not in payload:
            raise RecordError(f"a record needs a 'text' field (its fields: {', '.join(map(str, payload)) or 'none'})")
        payload = payload["text"]
    if not isinstance(payload, str):
        raise RecordError(f"the text must be a string, not {type(payload).__name__}")
    if not payload.strip():
        raise RecordError("empty text")
    if len(payload) > max_chars:
        log.warning("a text of %d characters was cut to its first %d (max_chars)", len(payload), max_chars)
        return InputText(payload[:max_chars], f"truncated from {len(payload)} to {max_chars} characters")
    return InputText(payload)


def read_file(path: Path, text_column: str, parse: Parse, encoding: str | None = None) -> list[PredictItem]:
    """One item per line of a plain text file, per row of a CSV/TSV (header row) or per object of a JSON Lines
    file, each parsed with `parse`; a line that cannot be decoded is an item with its error.

    The encoding is `encoding`, else the file's byte-order mark (UTF-8, UTF-16 or UTF-32), else UTF-8."""
    if not path.is_file():
        raise UsageError(f"input {path} is not a file.", f"pass input=<{TEXT_FILES}>.")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return _table_rows(path, "\t" if suffix == ".tsv" else ",", text_column, parse, encoding)
    text = read_text(path, encoding, lenient=True)
    if not text:
        raise DataError(f"{path} is empty.", f"give {TEXT_FILES}.")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [line.removesuffix("\r") for line in lines]
    if suffix == ".jsonl":
        return _json_lines(lines, text_column, parse)
    return _text_lines(lines, parse)


def _text_lines(lines: list[str], parse: Parse) -> list[PredictItem]:
    items = []
    for number, text in enumerate(lines, start=1):
        name, problem = f"line {number}", undecodable(text)
        items.append(PredictItem(name, error=problem) if problem else parse(name, text))
    return items


def _json_lines(lines: list[str], text_column: str, parse: Parse) -> list[PredictItem]:
    """Each object's `text_column` is handed on as the record `{"text": ...}`; blank lines are skipped."""
    items = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        name, problem = f"line {number}", undecodable(line)
        if problem:
            items.append(PredictItem(name, error=problem))
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            items.append(PredictItem(name, error=f"not a JSON object: {error}"))
            continue
        if not isinstance(record, dict) or text_column not in record:
            items.append(PredictItem(name, error=f"no '{text_column}' string in this object"))
            continue
        items.append(parse(name, {"text": record[text_column]}))
    return items


def _table_rows(path: Path, separator: str, text_column: str, parse: Parse, encoding: str | None) -> list[PredictItem]:
    """Each row's `text_column`; a row that does not fit the header, or holds bytes that are not UTF-8, is its
    own error."""
    expected = f"a header naming the '{text_column}' column, then one text per row"
    header, rows = read_rows(path, expected, encoding, lenient=True, delimiter=separator)
    if text_column not in header:
        raise UsageError(
            f"{path} has no column '{text_column}' (its columns: {', '.join(header)}).",
            "name the text column with text_column=...",
        )
    items = []
    for number, row in enumerate(rows, start=2):  # row 1 is the header
        name = f"row {number}"
        problem = row.error or undecodable(row.values[text_column])
        items.append(PredictItem(name, error=problem) if problem else parse(name, row.values[text_column]))
    return items


def prediction_columns(probabilities: np.ndarray) -> list[dict[str, Any]]:
    """The label and its probability, and P(positive) for thresholds of one's own."""
    return [
        {
            "label": CLASS_NAMES[int(row.argmax())],
            "probability": round(float(row.max()), 6),
            "p_positive": round(float(row[1]), 6),
        }
        for row in probabilities
    ]


def annotate(values: Sequence[InputText], columns: list[dict[str, Any]], cut: Sequence[bool]) -> list[dict[str, Any]]:
    """Rows with the text first and a warning last: cut at `max_chars`, or longer than the model reads (`cut`)."""
    rows = []
    for value, row, too_long in zip(values, columns, cut, strict=True):
        warning = value.warning or ("longer than the model reads: only its start was used" if too_long else "")
        rows.append({"text": value.text, **row, "warning": warning})
    return rows
