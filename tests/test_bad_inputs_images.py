"""Bad images for `predict`, read by the shared readers directly (no model is trained): each bad image is its own
error row and the others are read as if it were not there; a file that holds no images is a `DataError` with a fix.
NaN and infinite pixels, 16-bit greys, decompression bombs and broken files are generated here, small. MNIST's data
settings that cannot work (`data.batch_size=0`, `data.val_size=1.5`, `data.augment.probability=2`) are refused."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from projects.mnist.data import SyntheticDigits
from shared.errors import DataError, RecordError, UsageError
from shared.images import MAX_PIXELS, decode_image, image_items
from shared.project import PredictItem
from tests.conftest import finished_runs, refused


def parse(name: str, payload: Any) -> PredictItem:
    """What `shared.predict.parse_item` does with a project's `parse_record`: a value, or the row's error."""
    try:
        return PredictItem(name, decode_image(payload, "L"))
    except RecordError as error:
        return PredictItem(name, error=str(error))


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def stack(path: Path, images: np.ndarray) -> list[PredictItem]:
    np.save(path, images)
    return image_items(path, parse)


# --- NaN, infinite and out-of-range pixels -----------------------------------------------------------------------
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_pixel_is_that_images_error_and_leaves_the_others_scale(tmp_path: Path, bad: float) -> None:
    images = np.random.default_rng(0).uniform(0, 255, (3, 28, 28)).astype(np.float32)
    clean = [item.value for item in stack(tmp_path / "clean.npy", images)]
    images[1, 5, 5] = bad
    items = stack(tmp_path / "bad.npy", images)
    assert [item.error is None for item in items] == [True, False, True]
    assert "1 pixel(s) are NaN or infinite" in items[1].error
    for index in (0, 2):  # an infinite pixel elsewhere must not make the stack's scale infinite
        assert np.allclose(items[index].value, clean[index]) and items[index].value.max() <= 1.0


@pytest.mark.parametrize(
    ("pixels", "message"),
    [
        ([[0.5, float("nan")], [0.1, 0.2]], "NaN or infinite"),
        ([[0.5, -3.0], [0.1, 0.2]], "must not be negative"),
        ([[1e6, 0.0], [0.1, 0.2]], "expected 0-1, 0-255 or 0-65535"),
        ([[1, 2], [3]], "rectangular"),
        ([[[1, 2]]], "shape"),
        ("%%% not base64", "base64"),
        (b"no image at all", "not a readable image"),
    ],
)
def test_pixels_and_bytes_that_are_no_image_are_a_record_error(pixels: Any, message: str) -> None:
    with pytest.raises(RecordError, match=message):
        decode_image(pixels, "L")


def test_a_stack_on_no_known_scale_is_a_data_error_with_a_fix(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="0-65535") as raised:
        stack(tmp_path / "wide.npy", np.full((2, 4, 4), 1e7, np.float32))
    assert raised.value.fix and "save the images" in raised.value.fix


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not numpy", "not a readable .npy array"),
        (np.zeros((0, 28, 28), np.uint8), "holds no images"),
        (np.zeros((2, 3), complex), "complex"),
        (np.array([{"a": 1}], dtype=object), "not a readable .npy array"),  # a pickle: never loaded
    ],
)
def test_an_npy_file_that_holds_no_images_is_a_data_error(tmp_path: Path, content: Any, message: str) -> None:
    path = tmp_path / "images.npy"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        np.save(path, content, allow_pickle=True)
    with pytest.raises(DataError, match=message) as raised:
        image_items(path, parse)
    assert raised.value.fix


def test_an_npy_stack_of_huge_images_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.npy"
    np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(1, 7000, 7000)).flush()  # sparse on disk
    with pytest.raises(DataError, match="7000×7000 pixels, over the limit") as raised:
        image_items(path, parse)
    assert "resize" in (raised.value.fix or "")


# --- 16-bit greys ---------------------------------------------------------------------------------------------------
def test_a_16_bit_png_keeps_its_grey_levels(tmp_path: Path) -> None:
    levels = (np.arange(16 * 16, dtype=np.uint16).reshape(16, 16) * 250).astype(np.uint16)  # 0 .. 63,750
    data = png(Image.fromarray(levels))
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    grey = decode_image(data, "L")
    assert np.allclose(grey, levels / 65535.0, atol=1e-6), "scaled by its real range, not clipped at 255"
    assert len(np.unique(grey)) == 256 and decode_image(data, "RGB").shape == (16, 16, 3)


def test_16_bit_pixels_given_as_an_array_are_scaled_by_65535() -> None:
    grey = decode_image(np.array([[0, 1000], [30000, 65535]], np.uint16), "L")
    assert np.allclose(grey, np.array([[0, 1000], [30000, 65535]]) / 65535.0)


# --- decompression bombs and broken files ----------------------------------------------------------------------------
def test_a_decompression_bomb_is_its_own_row_and_the_folder_goes_on(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "bomb.png").write_bytes(png(Image.new("1", (20000, 20000))))  # ~50 KB, 400 megapixels
    (folder / "wide.png").write_bytes(png(Image.new("1", (8000, 6000))))  # over our limit, under PIL's own
    (folder / "good.png").write_bytes(png(Image.new("L", (28, 28), 200)))
    (folder / "truncated.png").write_bytes(png(Image.new("L", (64, 64), 7))[:60])
    items = {item.name: item for item in image_items(folder, parse)}
    assert sorted(items) == ["bomb.png", "good.png", "truncated.png", "wide.png"]
    assert items["bomb.png"].error == (
        f"too large: 20000×20000 pixels, the limit is {MAX_PIXELS:,} (40 megapixels); resize it first"
    )
    assert items["wide.png"].error.startswith("too large: 8000×6000 pixels")
    assert "not a readable image" in items["truncated.png"].error
    assert items["good.png"].error is None and np.allclose(items["good.png"].value, 200 / 255)


def test_pixels_past_the_limit_are_refused_too() -> None:
    with pytest.raises(RecordError, match="too large: 7000×6000 pixels"):
        decode_image(np.zeros((6000, 7000), np.uint8), "L")


# --- MNIST's data settings -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "phrase"),
    [
        ({"batch_size": 0}, "data.batch_size=0 is not a whole number of at least 1"),
        ({"batch_size": "abc"}, "data.batch_size='abc'"),
        ({"eval_batch_size": -1}, "data.eval_batch_size=-1"),
        ({"val_size": 1.5}, "data.val_size=1.5 is neither a fraction"),
        ({"val_size": -1}, "data.val_size=-1 is neither a fraction"),
        ({"max_shift": -1}, "data.max_shift=-1 is not a whole number of at least 0"),
        ({"split_seed": -1}, "data.split_seed=-1"),
        ({"test_size": 1.5}, "data.test_size=1.5"),
        ({"train_size": 0}, "data.train_size=0"),
        ({"augment": {"probability": 2}}, "data.augment.probability=2 is not a share from 0 to 1"),
        ({"augment": {"probability": "abc"}}, "data.augment.probability='abc'"),
        ({"augment": {"sigma": [2, 1]}}, "data.augment.sigma=[2, 1] is not a [least, most] pair"),
        ({"augment": {"low_res_sizes": [0, 7]}}, "data.augment.low_res_sizes=[0, 7]"),
    ],
)
def test_a_data_setting_that_cannot_work_is_a_usage_error(options: dict[str, Any], phrase: str) -> None:
    with pytest.raises(UsageError) as caught:
        SyntheticDigits(**options)
    assert phrase in str(caught.value) and caught.value.fix, str(caught.value)


def test_the_command_line_refuses_a_data_setting_before_training(cli, isolated: Path) -> None:
    refused(cli("mnist", "train", "data=synthetic", "data.batch_size=0"), 2, "data.batch_size=0", "data.batch_size=128")
    assert finished_runs(isolated, "mnist") == [] and not list((isolated / "runs" / "mnist").iterdir())
