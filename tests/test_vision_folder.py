"""The vision project's `data=folder`: a user's own image folder in any mode and size, its broken files listed and
skipped, a held-out test set when it has none, and the clear errors of a folder that cannot be used."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from projects.vision.data import Cifar10, ImageFolder, SyntheticImages
from shared.config import build
from shared.errors import DataError

REPO = Path(__file__).resolve().parents[1]


def save(path: Path, image: Image.Image) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def colour_image(size: tuple[int, int], colour: tuple[int, int, int]) -> Image.Image:
    return Image.new("RGB", size, colour)


def image_folder(root: Path, classes: dict[str, int], split: str = "train") -> Path:
    """`count` plain RGB images of each class, red for the first class, blue for the rest."""
    for index, (name, count) in enumerate(classes.items()):
        for number in range(count):
            save(
                root / split / name / f"{number}.png",
                colour_image((40, 24), (200, 0, 0) if index == 0 else (0, 0, 200)),
            )
    return root


def test_folder_reads_any_mode_and_size_and_lists_broken_files(tmp_path: Path, caplog) -> None:
    root = image_folder(tmp_path / "pictures", {"dog": 4}, "train")
    cats = root / "train" / "cat"
    save(cats / "rgba.png", Image.new("RGBA", (40, 30), (255, 0, 0, 128)))
    save(cats / "grey.jpg", Image.new("L", (32, 32), 128))
    save(cats / "palette.png", colour_image((20, 50), (0, 255, 0)).convert("P"))
    save(cats / "deep.png", Image.fromarray(np.full((16, 16), 65535, np.uint16)))
    (cats / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (cats / "notes.txt").write_text("not an image")
    image_folder(root, {"cat": 1, "dog": 1}, "test")
    data = ImageFolder(path=str(root), image_size=16, val_size=1, resident="cpu")
    with caplog.at_level(logging.WARNING):
        data.prepare()
    assert data.class_names == ("cat", "dog") and data.image_size == 16
    assert "skipped 1 unreadable" in caplog.text and "broken.jpg" in caplog.text and ".txt" in caplog.text
    assert [len(data.targets(split)) for split in data.splits] == [7, 1, 2]
    everything = torch.cat([data.inputs("train"), data.inputs("val")])
    assert everything.dtype == torch.uint8 and everything.shape[1:] == (3, 16, 16)
    labels = np.concatenate([data.targets("train"), data.targets("val")])
    assert sorted(labels.tolist()) == [0, 0, 0, 0, 1, 1, 1, 1]
    pixels = {tuple(image[:, 8, 8].tolist()) for image in everything.numpy()}
    assert {(128, 128, 128), (255, 255, 255), (0, 255, 0), (255, 0, 0), (200, 0, 0)} <= pixels
    facts = data.describe()
    assert facts["unreadable files skipped"] == 1 and facts["test split"] == "test/"


def test_folder_without_test_holds_out_a_fixed_test_set(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "pictures", {"cat": 10, "dog": 10})
    first, second = (ImageFolder(path=str(root), split_seed=seed) for seed in (0, 1))
    first.prepare()
    second.prepare()
    assert [len(first.targets(split)) for split in first.splits] == [14, 2, 4]
    assert np.array_equal(first.targets("test"), second.targets("test"))
    assert "of train/" in first.describe()["test split"]


def test_folder_test_classes_must_match(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "pictures", {"cat": 3, "dog": 3})
    image_folder(root, {"cat": 1, "bird": 1}, "test")
    with pytest.raises(DataError, match=r"missing dog; not in train/: bird") as error:
        ImageFolder(path=str(root)).prepare()
    assert "test/" in (error.value.fix or "")


def test_folder_problems_are_clear(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="needs a folder") as error:
        ImageFolder().prepare()
    assert "data.path=" in (error.value.fix or "")
    with pytest.raises(DataError, match="does not exist"):
        ImageFolder(path=str(tmp_path / "nowhere")).prepare()
    (tmp_path / "flat").mkdir()
    with pytest.raises(DataError, match="no train/ folder"):
        ImageFolder(path=str(tmp_path / "flat")).prepare()
    with pytest.raises(DataError, match="1 class folder"):
        ImageFolder(path=str(image_folder(tmp_path / "one", {"cat": 3}))).prepare()
    broken = tmp_path / "broken" / "train"
    for name in ("cat", "dog"):
        (broken / name).mkdir(parents=True)
        (broken / name / "a.png").write_bytes(b"nothing")
    with pytest.raises(DataError, match="no readable images"):
        ImageFolder(path=str(broken.parent)).prepare()
    (broken / "dog" / "a.png").unlink()
    save(broken / "dog" / "b.png", colour_image((8, 8), (0, 0, 0)))
    with pytest.raises(DataError, match="no readable images of cat"):
        ImageFolder(path=str(broken.parent)).prepare()


# --- the configs ---------------------------------------------------------------------------------------------


def test_data_configs_build(tmp_path: Path) -> None:
    folder = image_folder(tmp_path / "pictures", {"cat": 1, "dog": 1})
    for name, kind in (("cifar10", Cifar10), ("folder", ImageFolder), ("synthetic", SyntheticImages)):
        node = OmegaConf.load(REPO / "configs" / "vision" / "data" / f"{name}.yaml")
        if name == "folder":  # required, but null rather than ???: a missing value would be Hydra's traceback
            with pytest.raises(DataError, match=r"data\.path="):
                build(node, mirror_dir=None, cache_dir=str(tmp_path / "cache")).prepare()
            node.path = str(folder)
        data = build(node, mirror_dir=None, cache_dir=str(tmp_path / "cache"))
        assert type(data) is kind and data.resident == "auto"
