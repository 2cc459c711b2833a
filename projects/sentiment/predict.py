"""`predict` inputs and outputs: one text, or a file of texts (plain lines, CSV, TSV or JSON Lines).

Every line is its own item: an empty line or one that is not valid UTF-8 gets its own error row while
the rest are predicted; a text longer than `max_chars` is cut there and its row says so.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from projects.sentiment.data import CLASS_NAMES
from shared.errors import DataError, UsageError
from shared.project import PredictItem

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InputText:
    """A text to predict and, when it had to be cut, a warning saying so."""

    text: str
    warning: str = ""


def make_item(name: str, text: str, max_chars: int) -> PredictItem:
    """An item for `text`: an error when it is empty, a warning when it is cut at `max_chars` characters."""
    if not text.strip():
        return PredictItem(name, error="empty text")
    if len(text) > max_chars:
        log.warning("%s: %d characters, truncated to the first %d", name, len(text), max_chars)
        return PredictItem(name, InputText(text[:max_chars], f"truncated from {len(text)} to {max_chars} characters"))
    return PredictItem(name, InputText(text))


def _decode(raw: bytes, name: str, max_chars: int) -> PredictItem:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        bad = raw[error.start : error.start + 1].hex()
        return PredictItem(
            name, error=f"not valid UTF-8 (byte 0x{bad} at position {error.start}); save the file as UTF-8"
        )
    return make_item(name, text.removesuffix("\r"), max_chars)


def read_text_lines(path: Path, max_chars: int) -> list[PredictItem]:
    """One item per line of a plain text file, decoded line by line so one bad line spoils only itself."""
    lines = path.read_bytes().removeprefix(b"\xef\xbb\xbf").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [_decode(raw, f"line {number}", max_chars) for number, raw in enumerate(lines, start=1)]


def read_records(path: Path, text_column: str, max_chars: int) -> list[PredictItem]:
    """One item per row of a CSV/TSV (header row) or per object of a JSON Lines file."""
    if path.suffix.lower() == ".jsonl":
        items = []
        for number, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
            if not raw.strip():
                continue
            name = f"line {number}"
            try:
                record = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as error:
                items.append(PredictItem(name, error=f"not a UTF-8 JSON object: {error}"))
                continue
            if not isinstance(record, dict) or not isinstance(record.get(text_column), str):
                items.append(PredictItem(name, error=f"no '{text_column}' string in this object"))
                continue
            items.append(make_item(name, record[text_column], max_chars))
        return items
    separator = "\t" if path.suffix.lower() == ".tsv" else ","
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
            items.append(make_item(name, text, max_chars))
    return items


def read_inputs(text: str | None, source: str | None, text_column: str, max_chars: int) -> list[PredictItem]:
    """Items for `text=...` or for the file `input=...`."""
    if text is not None and source:
        raise UsageError("predict got both text= and input=.", "give one of them.")
    if text is not None:
        return [make_item("text", str(text), max_chars)]
    if not source:
        raise UsageError(
            "predict needs a text or an input file.",
            'python -m projects.sentiment predict text="a gripping film"  (or input=FILE output=preds.csv)',
        )
    path = Path(source).expanduser()
    if not path.is_file():
        raise UsageError(f"input {path} does not exist.", "pass input=<text file, .csv, .tsv or .jsonl>.")
    if path.suffix.lower() in (".csv", ".tsv", ".jsonl"):
        return read_records(path, text_column, max_chars)
    return read_text_lines(path, max_chars)


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
