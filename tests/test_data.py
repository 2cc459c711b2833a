"""Data-file resolution: mirror, cache, download, checksums, and the errors a user sees."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import numpy as np
import pytest

from shared.data import DataFile, fetch_files, holdout_indices
from shared.errors import DataError

CONTENT = b"the real file\n"
GOOD = DataFile("data.bin", sha256=(hashlib.sha256(CONTENT).hexdigest(),))


def _write(folder: Path, content: bytes = CONTENT) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data.bin").write_bytes(content)
    return folder / "data.bin"


def test_mirror_file_is_used_and_never_written(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    path = _write(mirror / "toy")
    for folder in (mirror / "toy", mirror):
        folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        found = fetch_files("toy", [GOOD], mirror, tmp_path / "cache")
    finally:
        for folder in (mirror, mirror / "toy"):
            folder.chmod(stat.S_IRWXU)
    assert found == {"data.bin": path}
    assert sorted(p.name for p in (mirror / "toy").iterdir()) == ["data.bin"]


def test_any_listed_checksum_is_accepted(tmp_path: Path) -> None:
    other = b"a lossless rebuild\n"
    file = DataFile("data.bin", sha256=(hashlib.sha256(CONTENT).hexdigest(), hashlib.sha256(other).hexdigest()))
    _write(tmp_path / "mirror" / "toy", other)
    assert fetch_files("toy", [file], tmp_path / "mirror", tmp_path / "cache")["data.bin"].read_bytes() == other


def test_corrupt_mirror_file_is_an_error_naming_it(tmp_path: Path) -> None:
    _write(tmp_path / "mirror" / "toy", b"truncated")
    with pytest.raises(DataError, match=r"data\.bin \(mirror\) is corrupt") as error:
        fetch_files("toy", [GOOD], tmp_path / "mirror", tmp_path / "cache")
    assert error.value.fix and "replace" in error.value.fix


def test_cache_is_used_when_the_mirror_lacks_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "cache" / "toy")
    assert fetch_files("toy", [GOOD], tmp_path / "mirror", tmp_path / "cache") == {"data.bin": path}


def test_missing_files_offline_name_the_files_and_both_fixes(tmp_path: Path) -> None:
    files = [GOOD, DataFile("labels.bin", sha256=("0" * 64,), urls=("https://example.org/labels.bin",))]
    with pytest.raises(DataError) as error:
        fetch_files("toy", files, tmp_path / "mirror", tmp_path / "cache")
    message = str(error.value)
    assert "data.bin, labels.bin" in message
    assert "PORTFOLIO_DATA_DIR" in message and "network" in message
    assert not (tmp_path / "cache" / "toy" / "data.bin").exists()


def test_download_verifies_and_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PORTFOLIO_OFFLINE")
    source = _write(tmp_path / "server")
    file = DataFile("data.bin", sha256=GOOD.sha256, urls=(source.as_uri(),))
    found = fetch_files("toy", [file], None, tmp_path / "cache")
    assert found["data.bin"] == tmp_path / "cache" / "toy" / "data.bin"
    assert found["data.bin"].read_bytes() == CONTENT


def test_download_with_wrong_checksum_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PORTFOLIO_OFFLINE")
    source = _write(tmp_path / "server", b"tampered")
    file = DataFile("data.bin", sha256=GOOD.sha256, urls=(source.as_uri(),))
    with pytest.raises(DataError, match="could not be downloaded"):
        fetch_files("toy", [file], None, tmp_path / "cache")
    assert list((tmp_path / "cache" / "toy").iterdir()) == []


def test_holdout_is_reproducible_disjoint_and_complete() -> None:
    kept, held = holdout_indices(100, 0.2, seed=3)
    again_kept, again_held = holdout_indices(100, 0.2, seed=3)
    assert np.array_equal(kept, again_kept) and np.array_equal(held, again_held)
    assert len(held) == 20 and not set(kept) & set(held)
    assert sorted([*kept, *held]) == list(range(100))
    assert not np.array_equal(held, holdout_indices(100, 0.2, seed=4)[1])


def test_holdout_rejects_impossible_sizes() -> None:
    with pytest.raises(DataError):
        holdout_indices(10, 10, seed=0)
