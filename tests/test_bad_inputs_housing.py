"""Bad input to housing, each refused with a message and a fix (or kept to its own row), never a traceback or a
quiet wrong answer: empty coordinates (imputed, as the README says), CSVs that are not UTF-8 or not CSV, rows that
do not fit their header, and settings that cannot work (`cv.coverage=2`, `cv.folds=abc`, `data.test_size=1.5`)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from projects.housing.data import FEATURES, TARGET, SyntheticHousing
from tests.conftest import Result, finished_runs, refused, train_for_module

SMOKE = ["data=synthetic", "model=ridge", "cv.folds=3"]
NAMES = [column.name for column in FEATURES]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run trained for the whole module (predict reads it with run=PATH)."""
    return train_for_module(tmp_path_factory, "housing", *SMOKE)


def districts(count: int = 3) -> list[list[str]]:
    """Test districts of the synthetic data as CSV cells (an empty cell where the data has a gap)."""
    data = SyntheticHousing()
    data.prepare()
    frame = data.frame("test").head(count)[NAMES].astype(object).where(lambda f: f.notna(), "")
    return [[str(value) for value in row] for row in frame.to_numpy()]


def write(path: Path, cells: list[list[str]], header: list[str] = NAMES, encoding: str = "utf-8") -> Path:
    text = "\n".join(",".join(row) for row in [header, *cells]) + "\n"
    path.write_bytes(text.encode(encoding))
    return path


def predict(cli, trained: Path, source: Path, *extra: str) -> tuple[Result, Path]:
    output = source.with_name(f"{source.stem}-predictions.csv")
    return cli("housing", "predict", f"run={trained}", f"input={source}", f"output={output}", *extra), output


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


# --- predict input ----------------------------------------------------------------------------------------------
def test_empty_coordinates_are_imputed_not_a_crash_of_the_batch(cli, trained: Path, tmp_path: Path) -> None:
    cells = districts(4)
    cells[0][NAMES.index("latitude")] = ""
    cells[1][NAMES.index("longitude")] = ""
    cells[2][NAMES.index("latitude")] = cells[2][NAMES.index("longitude")] = ""
    result, output = predict(cli, trained, write(tmp_path / "gaps.csv", cells))
    assert result.code == 0, result.out + result.err
    values = [float(row[TARGET]) for row in rows(output)]
    assert len(values) == 4 and all(np.isfinite(values)) and min(values) > 0


def test_a_row_with_extra_cells_is_its_own_error(cli, trained: Path, tmp_path: Path) -> None:
    cells = districts(3)
    cells[1] = [*cells[1], "7", "8"]
    cells[2] = cells[2][:4]
    result, output = predict(cli, trained, write(tmp_path / "shifted.csv", cells))
    assert result.code == 3 and "Traceback" not in result.out + result.err
    written = rows(output)
    assert [row["input"] for row in written] == ["0", "1", "2"], "complete: one row per district"
    assert "11 comma-separated fields, the header has 9" in written[1]["error"] and not written[1][TARGET]
    assert "4 comma-separated fields" in written[2]["error"], "a short row is not imputed into a district"
    assert float(written[0][TARGET]) > 0 and not written[0]["error"]


def test_utf16_with_a_mark_is_read_and_latin1_when_named(cli, trained: Path, tmp_path: Path) -> None:
    cells = districts(2)
    source = write(tmp_path / "utf16.csv", cells, encoding="utf-16")
    result, output = predict(cli, trained, source)
    assert result.code == 0 and len(rows(output)) == 2, result.err
    named = [[*row, "Cañada"] for row in cells]
    source = write(tmp_path / "latin1.csv", named, [*NAMES, "place"], encoding="latin-1")
    result, output = predict(cli, trained, source)
    refused(result, 1, "not UTF-8 text (byte 0xf1 on line 2)", "encoding=latin-1", output=output)
    result, output = predict(cli, trained, source, "encoding=latin-1")
    assert result.code == 0 and len(rows(output)) == 2, result.err


@pytest.mark.parametrize(
    ("content", "phrases"),
    [
        (b"", ("is empty", "one district per row")),
        (",".join(NAMES).encode() + b"\n", ("header but no rows",)),
        (",".join(NAMES).encode("utf-16-le"), ("NUL bytes", "encoding=utf-16-le")),
        (bytes(range(256)) * 4, ("NUL bytes", "not a text file")),
        ((",".join(NAMES) + '\n"-122.2,37.8\n').encode(), ("not valid CSV", "close every quote")),
        ((";".join(NAMES) + "\n1;2\n").encode(), ("';'-separated", "commas")),
        (b"longitude,latitude\n-122.2,37.8\n", ("lacks the column(s) housing_median_age",)),
    ],
    ids=["empty", "header-only", "utf16-no-bom", "binary", "open-quote", "semicolons", "missing-columns"],
)
def test_an_unreadable_csv_is_a_data_error(cli, trained: Path, tmp_path: Path, content: bytes, phrases) -> None:
    source = tmp_path / "districts.csv"
    source.write_bytes(content)
    result, output = predict(cli, trained, source)
    refused(result, 1, *phrases, output=output)


# --- settings -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("settings", "phrases"),
    [
        (["cv.coverage=2"], ("cv.coverage=2 is not a fraction between 0 and 1", "cv.coverage=0.9")),
        (["cv.coverage=0"], ("cv.coverage=0 is not a fraction",)),
        (["cv.folds=abc"], ("cv.folds='abc'", "cv.folds=0")),
        (["cv.folds=-3"], ("cv.folds=-3",)),
        (["cv.folds=1"], ("cv.folds=1",)),
        (["data.test_size=1.5"], ("data.test_size=1.5 is not a fraction", "data.test_size=0.2")),
        (["data.batch_size=0"], ("data.batch_size=0 is not a whole number of at least 1",)),
        (["data.validation_size=1"], ("data.validation_size=1 is not a fraction",)),
        (["data.split_seed=-1"], ("data.split_seed=-1",)),
        (["data.size=10"], ("data.size=10 is not a whole number of at least 50",)),
        (["data.size=60", "cv.folds=100"], ("cv.folds=100 is more folds than the 48 training rows",)),
    ],
)
def test_a_setting_that_cannot_work_is_a_usage_error(cli, isolated: Path, settings: list[str], phrases) -> None:
    refused(cli("housing", "train", *SMOKE, *settings), 2, *phrases)
    assert finished_runs(isolated, "housing") == [], "a refused train leaves no run"


def test_too_few_districts_to_split_say_so(cli, isolated: Path) -> None:
    result = cli("housing", "train", *SMOKE, "data.size=50", "data.test_size=0.02")
    refused(result, 1, "50 districts cannot be split", "give more districts")


def test_an_output_that_is_the_input_is_refused_and_the_input_kept(cli, trained: Path, tmp_path: Path) -> None:
    source = write(tmp_path / "districts.csv", districts(2))
    before = source.read_bytes()
    for output in (source, tmp_path / "." / "districts.csv"):
        result = cli("housing", "predict", f"run={trained}", f"input={source}", f"output={output}")
        refused(result, 2, "is the input file: predicting would overwrite it", "name another output=")
    assert source.read_bytes() == before
