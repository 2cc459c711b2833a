"""The vision data layer: CIFAR-10's two archives on tiny copies made here, the decode cache, the made-up images,
the splits and the loaders; and, with a mirror, the real CIFAR-10. A user's image folder: test_vision_folder.py."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import pickle
import re
import struct
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from projects.vision import archives
from projects.vision.archives import CIFAR10_CLASSES, BatchUnpickler, read_image_zip, read_python_tarball
from projects.vision.data import Cifar10, ImageFolder, SyntheticImages
from shared.data import DataFile
from shared.errors import DataError, UsageError

REPO = Path(__file__).resolve().parents[1]
TRAIN_PER_CLASS, TEST_PER_CLASS = 3, 1


# --- tiny archives in the real layouts -------------------------------------------------------------------------
def tiny_images(per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct random uint8 N×3×32×32 images, `per_class` of each class in class order, and their labels."""
    generator = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(CIFAR10_CLASSES)), per_class).astype(np.int64)
    return generator.integers(0, 256, (len(labels), 3, 32, 32), dtype=np.uint8), labels


def tiny_splits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {"train": tiny_images(TRAIN_PER_CLASS, 0), "test": tiny_images(TEST_PER_CLASS, 1)}


def write_zip(path: Path, splits: dict, image_format: str = "PNG", **save: object) -> Path:
    """`<split>/<class>/NNNN.<ext>` members, stored uncompressed like the mirror's zip."""
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = {"PNG": "png", "JPEG": "jpg"}[image_format]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for split, (images, labels) in splits.items():
            for index, (image, label) in enumerate(zip(images, labels, strict=True)):
                encoded = io.BytesIO()
                Image.fromarray(image.transpose(1, 2, 0)).save(encoded, image_format, **save)
                archive.writestr(f"{split}/{CIFAR10_CLASSES[label]}/{index:04d}.{suffix}", encoded.getvalue())
    return path


class Python2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Writes str and bytes as Python 2's str opcodes, as the canonical batches were pickled (protocol 2)."""

    dispatch = pickle._Pickler.dispatch.copy()  # type: ignore[attr-defined]

    def save_bytes(self, obj: bytes) -> None:
        head = bytes([len(obj)]) if len(obj) < 256 else struct.pack("<i", len(obj))
        self.write((pickle.SHORT_BINSTRING if len(obj) < 256 else pickle.BINSTRING) + head + obj)
        self.memoize(obj)

    def save_str(self, obj: str) -> None:
        self.save_bytes(obj.encode("latin-1"))

    dispatch[bytes] = save_bytes
    dispatch[str] = save_str


def python2_pickle(value: object) -> bytes:
    stream = io.BytesIO()
    Python2Pickler(stream, protocol=2).dump(value)
    return stream.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")  # NumPy 1's name


def write_tarball(path: Path, splits: dict, batch_payload: dict[str, bytes] | None = None) -> Path:
    """`cifar-10-batches-py/data_batch_1..5` (the training images in order) and `test_batch`, gzipped."""
    path.parent.mkdir(parents=True, exist_ok=True)
    train_images, train_labels = splits["train"]
    chunks = np.array_split(np.arange(len(train_labels)), 5)
    batches = {f"data_batch_{n + 1}": (train_images[c], train_labels[c]) for n, c in enumerate(chunks)}
    batches["test_batch"] = splits["test"]
    with tarfile.open(path, "w:gz") as archive:
        for name, (images, labels) in batches.items():
            batch = {
                b"batch_label": name.encode(),
                b"labels": labels.tolist(),
                b"data": images.reshape(len(images), -1),
            }
            payload = (batch_payload or {}).get(name) or python2_pickle(batch)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def tiny_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A mirror with a tiny `cifar10-jpg/cifar10-jpg.zip` (PNG inside) whose checksum Cifar10 expects."""
    mirror = tmp_path / "mirror"
    archive = write_zip(mirror / "cifar10-jpg" / "cifar10-jpg.zip", tiny_splits())
    monkeypatch.setattr(Cifar10, "jpeg_zip", DataFile("cifar10-jpg.zip", sha256=(sha256(archive),)))
    return mirror


def tiny_cifar(mirror: Path | None, cache: Path, **options: object) -> Cifar10:
    options.setdefault("val_size", 5)
    return Cifar10(mirror_dir=str(mirror) if mirror else None, cache_dir=str(cache), **options)  # type: ignore[arg-type]


def fail_to_decode(*_: object) -> None:
    raise AssertionError("decoded again although the cache holds the arrays")


# --- the readers ------------------------------------------------------------------------------------------------
def test_zip_and_tarball_decode_to_the_same_arrays(tmp_path: Path) -> None:
    splits = tiny_splits()
    from_zip = read_image_zip(write_zip(tmp_path / "images.zip", splits))
    from_tar = read_python_tarball(write_tarball(tmp_path / "batches.tar.gz", splits))
    for split, (images, labels) in splits.items():
        for decoded in (from_zip, from_tar):
            assert decoded[split][0].dtype == np.uint8 and decoded[split][0].flags.c_contiguous
            assert decoded[split][1].dtype == np.int64
            np.testing.assert_array_equal(decoded[split][0], images)
            np.testing.assert_array_equal(decoded[split][1], labels)


def test_jpeg_members_decode_within_jpeg_error(tmp_path: Path) -> None:
    generator = np.random.default_rng(2)
    coarse = generator.integers(0, 256, (10, 3, 4, 4), dtype=np.uint8)
    images = np.kron(coarse, np.ones((1, 1, 8, 8), np.uint8))  # flat 8×8 blocks, like a photo's smooth regions
    labels = np.arange(10, dtype=np.int64)
    splits = {"train": (images, labels), "test": (images, labels)}
    decoded = read_image_zip(write_zip(tmp_path / "images.zip", splits, "JPEG", quality=95, subsampling=0))
    difference = np.abs(decoded["test"][0].astype(int) - splits["test"][0].astype(int))
    assert difference.mean() < 3
    np.testing.assert_array_equal(decoded["test"][1], splits["test"][1])


def test_truncated_archives_are_data_errors(tmp_path: Path) -> None:
    for path in (write_zip(tmp_path / "a.zip", tiny_splits()), write_tarball(tmp_path / "b.tar.gz", tiny_splits())):
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match="not a readable zip") as zip_error:
        read_image_zip(tmp_path / "a.zip")
    with pytest.raises(DataError, match="readable") as tar_error:
        read_python_tarball(tmp_path / "b.tar.gz")
    for error in (zip_error.value, tar_error.value):
        assert error.fix and "original" in error.fix


def test_a_zip_with_an_unknown_class_or_a_broken_image_is_refused(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "a.zip", tiny_splits())
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("train/unicorn/0000.png", b"")
    with pytest.raises(DataError, match="unicorn"):
        read_image_zip(path)
    path = write_zip(tmp_path / "b.zip", tiny_splits())
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("train/cat/9999.jpg", b"not a jpeg")
    with pytest.raises(DataError, match=r"9999\.jpg is not a readable image"):
        read_image_zip(path)


class RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_would_run_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with pytest.raises(DataError, match=r"system.*refused"):
        BatchUnpickler(io.BytesIO(pickle.dumps(RunsCode(marker))), "evil").load()
    evil = {"data_batch_3": pickle.dumps({b"data": RunsCode(marker), b"labels": []}, protocol=2)}
    with pytest.raises(DataError, match="data_batch_3 asks to load") as error:
        read_python_tarball(write_tarball(tmp_path / "evil.tar.gz", tiny_splits(), evil))
    assert "md5" in (error.value.fix or "")
    assert not marker.exists()
    with pytest.raises(DataError, match=r"builtins\.eval"):
        BatchUnpickler(io.BytesIO(pickle.dumps(eval)), "evil").load()


def test_a_batch_of_the_wrong_shape_is_refused(tmp_path: Path) -> None:
    wrong = {"test_batch": python2_pickle({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]})}
    with pytest.raises(DataError, match="expected N×3072 uint8"):
        read_python_tarball(write_tarball(tmp_path / "wrong.tar.gz", tiny_splits(), wrong))


# --- Cifar10: sources, checksums, the decode cache -------------------------------------------------------------
def test_cifar10_reads_the_zip_and_decodes_it_once(tiny_mirror: Path, tmp_path: Path, monkeypatch) -> None:
    first = tiny_cifar(tiny_mirror, tmp_path / "cache")
    first.prepare()
    [cached] = (tmp_path / "cache" / "cifar10").glob("decoded-*.npz")
    assert cached.name == f"decoded-{Cifar10.jpeg_zip.sha256[0][:16]}.npz"
    assert first.describe()["source"].startswith("cifar10-jpg.zip")
    monkeypatch.setattr(Cifar10, "decode", fail_to_decode)
    second = tiny_cifar(tiny_mirror, tmp_path / "cache")
    second.prepare()
    for split in ("train", "val", "test"):
        assert torch.equal(first.inputs(split), second.inputs(split))
        np.testing.assert_array_equal(first.targets(split), second.targets(split))
    np.testing.assert_array_equal(second.inputs("test").numpy(), tiny_splits()["test"][0])


def test_a_corrupt_decode_cache_is_deleted_and_rebuilt(tiny_mirror: Path, tmp_path: Path, caplog) -> None:
    tiny_cifar(tiny_mirror, tmp_path / "cache").prepare()
    [cached] = (tmp_path / "cache" / "cifar10").glob("decoded-*.npz")
    for garbage in (cached.read_bytes()[:1000], b"not an npz at all"):
        cached.write_bytes(garbage)
        data = tiny_cifar(tiny_mirror, tmp_path / "cache")
        with caplog.at_level(logging.WARNING):
            data.prepare()
        assert "unreadable" in caplog.text and "decoding again" in caplog.text
        caplog.clear()
        np.testing.assert_array_equal(data.inputs("test").numpy(), tiny_splits()["test"][0])
        assert archives.load_decoded(cached, 10) is not None  # written again, whole


def test_without_the_zip_the_tarball_is_read(tmp_path: Path, monkeypatch) -> None:
    mirror = tmp_path / "mirror"
    tarball = write_tarball(mirror / "cifar10" / "cifar-10-python.tar.gz", tiny_splits())
    monkeypatch.setattr(Cifar10, "python_tarball", DataFile(tarball.name, sha256=(sha256(tarball),)))
    data = tiny_cifar(mirror, tmp_path / "cache")
    data.prepare()
    assert data.source_file == "cifar-10-python.tar.gz"
    np.testing.assert_array_equal(data.inputs("test").numpy(), tiny_splits()["test"][0])
    assert (tmp_path / "cache" / "cifar10" / f"decoded-{sha256(tarball)[:16]}.npz").is_file()


def test_neither_source_names_both_ways(tmp_path: Path) -> None:
    (tmp_path / "mirror").mkdir()
    with pytest.raises(DataError) as error:
        tiny_cifar(tmp_path / "mirror", tmp_path / "cache").prepare()
    message = str(error.value)
    for phrase in ("cifar-10-python.tar.gz", "cifar10-jpg.zip", "PORTFOLIO_OFFLINE", "PORTFOLIO_DATA_DIR", "kriz"):
        assert phrase in message, (phrase, message)
    with pytest.raises(DataError, match=r"cifar10-jpg\.zip not found"):
        tiny_cifar(tmp_path / "mirror", tmp_path / "cache", source="jpg").prepare()


def test_a_checksum_mismatch_is_refused(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    write_zip(mirror / "cifar10-jpg" / "cifar10-jpg.zip", tiny_splits())  # not the real file: the real sum
    with pytest.raises(DataError, match="sha256") as error:
        tiny_cifar(mirror, tmp_path / "cache").prepare()
    assert "mirror" in str(error.value) and not (tmp_path / "cache" / "cifar10").exists()
    write_tarball(mirror / "cifar10" / "cifar-10-python.tar.gz", tiny_splits())
    with pytest.raises(DataError, match="sha256"):
        tiny_cifar(mirror, tmp_path / "cache", source="python").prepare()


def test_a_truncated_archive_with_a_matching_checksum_is_a_data_error(tmp_path: Path, monkeypatch) -> None:
    archive = write_zip(tmp_path / "mirror" / "cifar10-jpg" / "cifar10-jpg.zip", tiny_splits())
    archive.write_bytes(archive.read_bytes()[:-100])
    monkeypatch.setattr(Cifar10, "jpeg_zip", DataFile(archive.name, sha256=(sha256(archive),)))
    with pytest.raises(DataError, match="not a readable zip archive") as error:
        tiny_cifar(tmp_path / "mirror", tmp_path / "cache").prepare()
    assert "Traceback" not in str(error.value) and error.value.fix


def test_options_are_checked_where_they_are_read() -> None:
    for options, key in (
        ({"source": "png"}, "data.source"),
        ({"resident": "gpu"}, "data.resident"),
        ({"batch_size": 0}, "data.batch_size"),
        ({"val_size": 0}, "data.val_size"),
        ({"split_seed": -1}, "data.split_seed"),
        ({"num_workers": 1.5}, "data.num_workers"),
    ):
        with pytest.raises(UsageError, match=re.escape(key)):
            Cifar10(**options)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=r"data\.image_size"):
        ImageFolder(path="x", image_size=2)
    with pytest.raises(UsageError, match=r"data\.test_size"):
        ImageFolder(path="x", test_size=1.5)


# --- splits and loaders --------------------------------------------------------------------------------------
def test_splits_are_sized_disjoint_and_reproducible(tiny_mirror: Path, tmp_path: Path) -> None:
    data = tiny_cifar(tiny_mirror, tmp_path / "cache", val_size=0.2)
    data.prepare()
    assert [len(data.targets(split)) for split in data.splits] == [24, 6, 10]
    rows = {split: {image.tobytes() for image in data.inputs(split).numpy()} for split in data.splits}
    assert not rows["train"] & rows["val"] and not (rows["train"] | rows["val"]) & rows["test"]
    assert rows["train"] | rows["val"] == {image.tobytes() for image in tiny_splits()["train"][0]}
    again = tiny_cifar(tiny_mirror, tmp_path / "cache", val_size=0.2)
    again.prepare()
    assert torch.equal(data.inputs("val"), again.inputs("val"))
    other = tiny_cifar(tiny_mirror, tmp_path / "cache", val_size=0.2, split_seed=1)
    other.prepare()
    assert not torch.equal(data.inputs("val"), other.inputs("val"))
    assert torch.equal(data.inputs("test"), other.inputs("test"))
    for split in data.splits:
        inputs = data.inputs(split)
        assert inputs.dtype == torch.uint8 and inputs.shape[1:] == (3, 32, 32) and inputs.is_contiguous()
        assert data.targets(split).dtype == np.int64


def test_synthetic_images_are_seeded_and_sized() -> None:
    data, again = SyntheticImages(), SyntheticImages()
    data.prepare()
    again.prepare()
    assert [len(data.targets(split)) for split in data.splits] == [480, 120, 200]
    assert len(data.class_names) == 10 and data.image_size == 32
    assert data.inputs("train").dtype == torch.uint8 and data.inputs("train").shape[1:] == (3, 32, 32)
    assert torch.equal(data.inputs("test"), again.inputs("test"))
    assert set(np.unique(data.targets("train"))) == set(range(10))
    means = [data.inputs("train")[data.targets("train") == label].float().mean((0, 2, 3)) for label in range(10)]
    assert means[0][0] > means[0][2] and means[5][2] > means[5][0]  # red classes, then blue ones
    assert data.describe()["train examples"] == 480
    different = SyntheticImages(seed=1)
    different.prepare()
    assert not torch.equal(data.inputs("test"), different.inputs("test"))


def test_loaders_slice_uint8_batches(monkeypatch) -> None:
    data = SyntheticImages(batch_size=64, eval_batch_size=100, resident="cpu")
    data.prepare()
    batches = list(data.loader(data.inputs("train"), data.targets("train"), train=True))
    assert [len(batch[0]) for batch in batches] == [64] * 7 + [32]  # drop_last=False: the last one kept
    images, labels = batches[0]
    assert images.dtype == torch.uint8 and images.shape[1:] == (3, 32, 32) and labels.dtype == torch.long
    seen = torch.cat([batch[1] for batch in batches])
    assert sorted(seen.tolist()) == sorted(data.targets("train").tolist())
    assert not torch.equal(seen, torch.as_tensor(data.targets("train")))  # shuffled
    [first, last] = list(data.loader(data.inputs("val")))
    assert len(first) == 1 and torch.equal(torch.cat([first[0], last[0]]), data.inputs("val"))  # in order
    assert [len(b[0]) for b in data.loader(data.inputs("test"), data.targets("test"))] == [100, 100]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert data.resident_device() is None  # resident=cpu
    assert SyntheticImages(resident="auto").resident_device() == torch.device("cuda", 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_resident_auto_slices_batches_on_the_gpu() -> None:
    data = SyntheticImages()
    data.prepare()
    loader = data.loader(data.inputs("train"), data.targets("train"), train=True)
    images, labels = next(iter(loader))
    assert images.is_cuda and labels.is_cuda and images.dtype == torch.uint8
    assert data.loader(data.inputs("train")).dataset is not None and len(data._on_device) == 1  # copied once


# --- a user's image folder -----------------------------------------------------------------------------------


# --- the real CIFAR-10 ---------------------------------------------------------------------------------------
@pytest.mark.integration
def test_real_cifar10_from_the_mirror(mirror: Path, cifar10_cache: Path, monkeypatch) -> None:
    """The suite's decoded copy (the `cifar10_cache` fixture decodes the mirror's zip once): the published split,
    and a second `prepare` that reads the decoded file instead of decoding again."""
    data = Cifar10(mirror_dir=str(mirror), cache_dir=str(cifar10_cache))
    data.prepare()
    assert [len(data.targets(split)) for split in data.splits] == [45_000, 5_000, 10_000]
    assert data.class_names == CIFAR10_CLASSES
    counts = np.bincount(np.concatenate([data.targets("train"), data.targets("val")]), minlength=10)
    assert counts.tolist() == [5_000] * 10
    assert np.bincount(data.targets("test")).tolist() == [1_000] * 10
    mean = data.inputs("test").numpy().mean(axis=(0, 2, 3)) / 255
    np.testing.assert_allclose(mean, (0.494, 0.485, 0.450), atol=0.01)
    monkeypatch.setattr(Cifar10, "decode", fail_to_decode)
    again = Cifar10(mirror_dir=str(mirror), cache_dir=str(cifar10_cache))
    started = time.perf_counter()
    again.prepare()
    assert time.perf_counter() - started < 5  # well under a second alone; slack for a busy machine
    assert torch.equal(again.inputs("test"), data.inputs("test"))
