"""Data-file resolution: mirror, cache, download, checksums, and the errors a user sees."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from shared.data import DataFile, fetch_files, holdout_indices, inference_batches, tensor_loader
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


# --- members of archives ------------------------------------------------------------------------
def _archive(path: Path, kind: str, members: dict[str, bytes]) -> Path:
    import io
    import tarfile
    import zipfile

    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "zip":
        with zipfile.ZipFile(path, "w") as archive:
            for name, content in members.items():
                archive.writestr(name, content)
    else:
        with tarfile.open(path, "w:gz") as archive:
            for name, content in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
    return path


def _sha(content: bytes) -> tuple[str, ...]:
    return (hashlib.sha256(content).hexdigest(),)


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_a_member_is_read_out_of_its_checked_archive(tmp_path: Path, kind: str) -> None:
    archive_path = _archive(tmp_path / "mirror" / "toy" / f"bundle.{kind}", kind, {"inner/data.bin": CONTENT})
    archive = DataFile(f"bundle.{kind}", sha256=_sha(archive_path.read_bytes()))
    member = DataFile("data.bin", archive=archive, member="inner/data.bin")  # vouched for by the archive
    found = fetch_files("toy", [member], tmp_path / "mirror", tmp_path / "cache")
    assert found["data.bin"] == tmp_path / "cache" / "toy" / "data.bin"
    assert found["data.bin"].read_bytes() == CONTENT
    assert sorted(p.name for p in (tmp_path / "mirror" / "toy").iterdir()) == [f"bundle.{kind}"]


def test_a_member_with_its_own_checksum_is_checked_after_extraction(tmp_path: Path) -> None:
    _archive(tmp_path / "cache" / "toy" / "bundle.zip", "zip", {"data.bin": b"not what was published"})
    member = DataFile("data.bin", sha256=GOOD.sha256, archive=DataFile("bundle.zip"))
    with pytest.raises(DataError, match=r"member data\.bin \(extracted from .*bundle\.zip\) is corrupt"):
        fetch_files("toy", [member], None, tmp_path / "cache")
    assert not (tmp_path / "cache" / "toy" / "data.bin").exists()


def test_a_missing_member_or_a_broken_archive_is_an_error_naming_it(tmp_path: Path) -> None:
    archive_path = _archive(tmp_path / "mirror" / "toy" / "bundle.zip", "zip", {"other.bin": CONTENT})
    archive = DataFile("bundle.zip", sha256=_sha(archive_path.read_bytes()))
    with pytest.raises(DataError, match=r"has no readable member data\.bin"):
        fetch_files("toy", [DataFile("data.bin", archive=archive)], tmp_path / "mirror", tmp_path / "cache")
    archive_path.write_bytes(b"PK broken")
    with pytest.raises(DataError, match=r"bundle\.zip \(mirror\) is corrupt"):
        fetch_files("toy", [DataFile("data.bin", archive=archive)], tmp_path / "mirror", tmp_path / "cache")


def test_a_member_nowhere_names_its_archive_in_the_fix(tmp_path: Path) -> None:
    archive = DataFile("bundle.zip", sha256=("0" * 64,), urls=("https://example.org/bundle.zip",))
    with pytest.raises(DataError) as error:
        fetch_files("toy", [DataFile("data.bin", archive=archive)], tmp_path / "mirror", tmp_path / "cache")
    assert "or its archive bundle.zip" in str(error.value) and "https://example.org/bundle.zip" in str(error.value)


def test_a_member_needs_something_to_vouch_for_it() -> None:
    with pytest.raises(ValueError, match="needs an archive with one"):
        DataFile("data.bin", archive=DataFile("bundle.zip"))


def test_a_loose_copy_of_an_unchecked_member_is_not_trusted(tmp_path: Path) -> None:
    """Only the archive vouches for such a member: a loose file of its name (mirror or cache) is passed over."""
    archive_path = _archive(tmp_path / "mirror" / "toy" / "bundle.zip", "zip", {"data.bin": CONTENT})
    archive = DataFile("bundle.zip", sha256=_sha(archive_path.read_bytes()))
    _write(tmp_path / "mirror" / "toy", b"tampered")
    found = fetch_files("toy", [DataFile("data.bin", archive=archive)], tmp_path / "mirror", tmp_path / "cache")
    assert found["data.bin"].read_bytes() == CONTENT


def test_inference_batches_give_the_loaders_own_batches() -> None:
    """The loader-free path over a `tensor_loader` yields what iterating it does, the short last batch included;
    another loader (a shuffled one, a plain DataLoader) is iterated as it is."""
    images, labels = torch.randn(23, 1, 4, 4), torch.arange(23)
    loader = tensor_loader(images, labels, batch_size=5, collate_fn=lambda batch: (batch[0] * 2, batch[1]))
    direct, iterated = list(inference_batches(loader)), list(loader)
    assert [len(batch[1]) for batch in direct] == [5, 5, 5, 5, 3]
    for (got_images, got_labels), (want_images, want_labels) in zip(direct, iterated, strict=True):
        assert torch.equal(got_images, want_images) and torch.equal(got_labels, want_labels)
    dropping = tensor_loader(labels, batch_size=5, drop_last=True)
    assert [len(batch[0]) for batch in inference_batches(dropping)] == [5, 5, 5, 5]
    plain = DataLoader(TensorDataset(images), batch_size=10)
    assert [len(batch[0]) for batch in inference_batches(plain)] == [10, 10, 3]
    torch.manual_seed(0)
    shuffled = tensor_loader(labels, batch_size=23, shuffle=True)
    assert not torch.equal(next(inference_batches(shuffled))[0], labels)  # its sampler's order, not the rows'
