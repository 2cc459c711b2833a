"""Reading a user's text and CSV files for `predict`: decoded by their byte-order mark, else as UTF-8, else refused
with an error that names the encoding option; CSV rows checked against their header one by one.

Files come from spreadsheets and editors on every platform (Excel's "Unicode text" is UTF-16, old Windows tools
write cp1252), so a wrong guess must never become a quiet wrong answer: a file that is not what it claims stops
with a message and a fix, and a row that does not fit its header is that row's error alone.
"""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass
from pathlib import Path

from shared.errors import DataError, UsageError

# UTF-32's little-endian mark begins with UTF-16's, so it is looked for first.
BYTE_ORDER_MARKS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
ENCODING_EXAMPLES = "encoding=latin-1 (Western European), encoding=cp1252 (Windows) or encoding=utf-16"
OTHER_DELIMITERS = (";", "|")


def encoding_examples(option: str = "encoding") -> str:
    """`ENCODING_EXAMPLES` for the option that names a file's encoding (`encoding`, or `data.encoding` for data)."""
    return ENCODING_EXAMPLES.replace("encoding=", f"{option}=")


DELIMITERS = {",": "comma", "\t": "tab"}


def bom_encoding(data: bytes) -> str | None:
    """The encoding a byte-order mark at the start of `data` announces, or None."""
    return next((name for mark, name in BYTE_ORDER_MARKS if data.startswith(mark)), None)


def check_encoding(encoding: str | None, option: str = "encoding") -> str | None:
    """`encoding=` (or `option=`) as a codec Python knows (None: detect); anything else is a command-line mistake."""
    if encoding is None or str(encoding).strip() == "":
        return None
    try:
        return codecs.lookup(str(encoding)).name
    except LookupError:
        raise UsageError(
            f"{option}={encoding} is not a text encoding Python knows.",
            f"use e.g. {option}=utf-8, {encoding_examples(option)}; or leave it out to detect it.",
        ) from None


def decode(
    data: bytes, source: str, encoding: str | None = None, lenient: bool = False, option: str = "encoding"
) -> str:
    """`data` as text: in `encoding` when one is named, else by its byte-order mark, else as UTF-8.

    A file with NUL bytes and no mark is UTF-16 without one, or no text file at all: refused. Undecodable
    UTF-8 is refused too, unless `lenient`: then each bad byte becomes a lone surrogate (`surrogateescape`), so
    a caller can give just the lines that hold one an error of their own (`undecodable`). `option` is how the
    user names the encoding in the messages (`encoding=`, `data.encoding=`).
    """
    named = check_encoding(encoding, option)
    chosen = named or bom_encoding(data)
    if chosen is not None:
        try:
            return data.decode(chosen).removeprefix("\ufeff")
        except UnicodeDecodeError as error:
            raise DataError(
                f"{source} is not {chosen} text (byte 0x{data[error.start]:02x} at position {error.start}).",
                f"set {option}= to the file's real encoding ({encoding_examples(option)}), or save it as UTF-8.",
            ) from error
    if b"\x00" in data:
        raise DataError(
            f"{source} holds NUL bytes: it is UTF-16 or UTF-32 without a byte-order mark, or not a text file.",
            f"save it as UTF-8 text, or name its encoding ({option}=utf-16-le, {option}=utf-16-be).",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        if lenient:
            return data.decode("utf-8", errors="surrogateescape")
        line = data.count(b"\n", 0, error.start) + 1
        raise DataError(
            f"{source} is not UTF-8 text (byte 0x{data[error.start]:02x} on line {line}).",
            f"save it as UTF-8, or name its encoding: {encoding_examples(option)}.",
        ) from error


def undecodable(text: str) -> str | None:
    """What is wrong with a line of a `lenient` decode that holds bytes UTF-8 could not read, or None."""
    at = next((index for index, char in enumerate(text) if "\udc80" <= char <= "\udcff"), None)
    if at is None:
        return None
    byte = ord(text[at]) - 0xDC00
    return f"not valid UTF-8 (byte 0x{byte:02x} at character {at}); save the file as UTF-8 or set encoding=latin-1"


def read_text(path: Path, encoding: str | None = None, lenient: bool = False, option: str = "encoding") -> str:
    """A file's text (`decode`), or a `DataError` when it cannot be read at all."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DataError(
            f"cannot read {path} ({error.strerror or error}).", "check the path and its permissions."
        ) from error
    return decode(data, str(path), encoding, lenient, option)


def refuse_other_delimiter(path: Path, header: list[str]) -> None:
    """A header read as one column that holds a `;` or a `|`: the file is separated by those, not by commas or
    tabs, and every column name the user gives would be reported missing. Say so, with the header as CSV."""
    if len(header) != 1:
        return
    other = next((mark for mark in OTHER_DELIMITERS if mark in str(header[0])), None)
    if other is not None:
        raise DataError(
            f"{path} looks '{other}'-separated (header {header[0]!r}): columns are separated by commas or tabs.",
            f"save it with commas (CSV) or tabs (TSV) between the columns, e.g. {str(header[0]).replace(other, ',')}.",
        )


@dataclass(frozen=True)
class CsvRow:
    """One data row of a CSV: its line in the file (the header is line 1), its cells by column, or its error."""

    line: int
    values: dict[str, str]
    error: str = ""


def read_rows(
    path: Path, expected: str, encoding: str | None = None, lenient: bool = False, delimiter: str | None = None
) -> tuple[list[str], list[CsvRow]]:
    """The header and the data rows of a comma- or tab-separated file (`expected` says what it should hold).

    The delimiter is `delimiter`, else the header's: a tab when it has tabs and no comma, else a comma.
    `lenient` decodes as `decode` does (the caller checks the cells it uses with `undecodable`). An empty file,
    a file with no rows, a `;`-separated one or an unterminated quote stops everything with a `DataError`; a row
    whose field count differs from the header's (an unquoted comma, a shifted line) is an error of that row alone,
    never read into the wrong columns. Blank lines are skipped.
    """
    text = read_text(path, encoding, lenient)
    if not text.strip():
        raise DataError(f"{path} is empty.", f"give {expected}.")
    first = text.lstrip("\r\n").split("\n", 1)[0]
    delimiter = delimiter or ("\t" if "\t" in first and "," not in first else ",")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        lines = [(reader.line_num, fields) for fields in reader]
    except csv.Error as error:
        raise DataError(
            f"{path} is not valid CSV near line {reader.line_num} ({error}).",
            'close every quote: a field with a delimiter, a quote or a line break is written "like, ""this"""',
        ) from error
    lines = [(number, fields) for number, fields in lines if fields and any(field.strip() for field in fields)]
    if not lines:
        raise DataError(f"{path} holds no values.", f"give {expected}.")
    header = [field.strip() for field in lines[0][1]]
    refuse_other_delimiter(path, header)
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise DataError(f"{path}: the header names {', '.join(repeated)} more than once.", "give each column one name.")
    if len(lines) == 1:
        raise DataError(f"{path} has a header but no rows.", f"give {expected}.")
    rows = []
    for number, fields in lines[1:]:
        if len(fields) != len(header):
            name = DELIMITERS[delimiter]
            problem = (
                f"line {number} has {len(fields)} {name}-separated fields, the header has {len(header)}: "
                f"quote a value that holds a {name}, or fix the line"
            )
            rows.append(CsvRow(number, {}, problem))
        else:
            rows.append(CsvRow(number, dict(zip(header, fields, strict=True))))
    return header, rows
