"""`predict` records for sentiment: a text (a string, or `{"text": ...}` as an HTTP body sends it), and the files
of texts the core's `predict input=` reads (plain lines, CSV, TSV or JSON Lines).

Every line is its own record, decoded on its own: an empty line or one that is not valid UTF-8 gets its own
error row while the rest are predicted. A text longer than `max_chars` is cut there and its row says so.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from projects.sentiment.data import CLASS_NAMES
from shared.errors import DataError, RecordError, UsageError
from shared.project import PredictItem

log = logging.getLogger(__name__)

MAX_CHARS = 5000  # when the config names no max_chars (a caller other than the predict command)
TEXT_FILES = "a text file (one text per line), .csv, .tsv or .jsonl"

Parse = Callable[[str, Any], PredictItem]  # (item name, payload) -> item: `shared.predict.parse_item` bound


@dataclass(frozen=True)
class InputText:
    """A text to predict and, when it had to be cut, a warning saying so."""

    text: str
    warning: str = ""


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


def read_file(path: Path, text_column: str, parse: Parse) -> list[PredictItem]:
    """One item per line of a plain text file, per row of a CSV/TSV (header row) or per object of a JSON Lines
    file, each parsed with `parse`; a line that cannot be decoded is an item with its error."""
    if not path.is_file():
        raise UsageError(f"input {path} is not a file.", f"pass input=<{TEXT_FILES}>.")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _json_lines(path, text_column, parse)
    if suffix in (".csv", ".tsv"):
        return _table_rows(path, "\t" if suffix == ".tsv" else ",", text_column, parse)
    return _text_lines(path, parse)


def _lines(path: Path) -> list[bytes]:
    lines = path.read_bytes().removeprefix(b"\xef\xbb\xbf").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def _text_lines(path: Path, parse: Parse) -> list[PredictItem]:
    items = []
    for number, raw in enumerate(_lines(path), start=1):
        name = f"line {number}"
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            bad = raw[error.start : error.start + 1].hex()
            problem = f"not valid UTF-8 (byte 0x{bad} at position {error.start}); save the file as UTF-8"
            items.append(PredictItem(name, error=problem))
            continue
        items.append(parse(name, text.removesuffix("\r")))
    return items


def _json_lines(path: Path, text_column: str, parse: Parse) -> list[PredictItem]:
    """Each object's `text_column` is handed on as the record `{"text": ...}`; blank lines are skipped."""
    items = []
    for number, raw in enumerate(_lines(path), start=1):
        if not raw.strip():
            continue
        name = f"line {number}"
        try:
            record = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            items.append(PredictItem(name, error=f"not a UTF-8 JSON object: {error}"))
            continue
        if not isinstance(record, dict) or text_column not in record:
            items.append(PredictItem(name, error=f"no '{text_column}' string in this object"))
            continue
        items.append(parse(name, {"text": record[text_column]}))
    return items


def _table_rows(path: Path, separator: str, text_column: str, parse: Parse) -> list[PredictItem]:
    try:
        frame = pd.read_csv(path, sep=separator, dtype=str, keep_default_na=False, encoding_errors="strict")
    except UnicodeDecodeError:
        frame = None
    except (ValueError, pd.errors.ParserError) as error:
        raise DataError(f"{path} could not be read as a table: {error}", "check its format.") from error
    if frame is None:  # undecodable bytes somewhere: keep the rest by reading with replacement, flag those rows
        frame = pd.read_csv(path, sep=separator, dtype=str, keep_default_na=False, encoding_errors="replace")
    if text_column not in frame.columns:
        raise UsageError(
            f"{path} has no column '{text_column}' (its columns: {', '.join(map(str, frame.columns))}).",
            "name the text column with text_column=...",
        )
    items = []
    for number, text in enumerate(frame[text_column].tolist(), start=2):  # row 1 is the header
        name = f"row {number}"
        if "\ufffd" in text:
            items.append(PredictItem(name, error="not valid UTF-8; save the file as UTF-8"))
        else:
            items.append(parse(name, text))
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
