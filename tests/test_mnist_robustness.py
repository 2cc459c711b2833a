"""MNIST's robustness to real inputs: the degraded test copies, predict's normalisation, the training augmentation,
and `scripts/robustness.py` (on synthetic digits; on a quick real run with the mirror)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from scipy import ndimage

from projects.mnist.augment import Augmentation, dilate, erode2, gaussian_blur, thumbnail, zoom
from projects.mnist.data import MEAN, STD, SyntheticDigits, synthetic_digit
from projects.mnist.degrade import DEGRADATIONS, degrade
from projects.mnist.predict import looks_normalised, stretch_contrast, to_mnist
from shared.errors import UsageError
from tests.conftest import script_module, train_one

pytestmark = pytest.mark.heavy

REPO = Path(__file__).resolve().parents[1]


def mnist_style_digit() -> np.ndarray:
    """A '0' drawn the MNIST way: light on black, anti-aliased, a 20 px tall box, centred in 28×28."""
    big = Image.new("L", (112, 112))
    ImageDraw.Draw(big).ellipse((34, 18, 82, 97), outline=255, width=9)  # 4× the final size, then averaged
    digit = np.asarray(big.resize((28, 28), Image.Resampling.BOX), np.float32) / 255.0
    return digit / digit.max()


def digits(count: int = 6) -> np.ndarray:
    """A few MNIST-style digits in [0, 1], each a little different."""
    base = mnist_style_digit()
    return np.stack([np.roll(base, shift, axis=1) * (1 - 0.02 * shift) for shift in range(-1, count - 1)])


def box_side(digit: np.ndarray, threshold: float = 0.5) -> int:
    rows, columns = np.nonzero(digit > threshold * digit.max())
    return int(max(rows.max() - rows.min(), columns.max() - columns.min()) + 1)


def centre_of_mass(digit: np.ndarray) -> np.ndarray:
    return np.array(ndimage.center_of_mass(digit))


# --- the degraded copies ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(DEGRADATIONS))
def test_degradations_are_deterministic_and_keep_the_shape(name: str) -> None:
    images = (digits() * 255).astype(np.uint8)
    first, second = degrade(images, name, seed=3), degrade(images, name, seed=3)
    assert first.shape == images.shape and first.dtype == np.float32
    assert np.array_equal(first, second)
    assert first.min() >= 0.0 and first.max() <= 1.0
    assert not np.allclose(first, images / 255.0, atol=0.02), "a degradation must change the digits"


def test_random_degradations_follow_the_seed() -> None:
    images = digits()
    for name in ("offset", "shrunk", "enlarged"):
        assert not np.array_equal(degrade(images, name, seed=0), degrade(images, name, seed=1))


def test_unknown_degradation_is_named() -> None:
    with pytest.raises(KeyError, match="known: low_res_8x8"):
        degrade(digits(), "rotated")


# --- predict's normalisation --------------------------------------------------------------------------------------
def test_an_mnist_style_digit_goes_through_unchanged() -> None:
    digit = mnist_style_digit()
    assert looks_normalised(digit)
    assert np.allclose(to_mnist(digit), digit, atol=1e-6)
    almost = digit * (254 / 255)  # MNIST's own digits peak at 254 or 255
    assert np.allclose(to_mnist(almost), digit, atol=1e-5)


def _fixed(digit: np.ndarray) -> None:
    """What `to_mnist` promises for any digit: light on black, full contrast, ~20 px, centred by mass."""
    assert digit.shape == (28, 28) and digit.dtype == np.float32
    assert digit.max() > 0.95 and np.median(digit) < 0.02
    assert 18 <= box_side(digit, 0.2) <= 21
    assert np.abs(centre_of_mass(digit) - 14).max() <= 1.0


@pytest.mark.parametrize(
    "make",
    [
        lambda d: 0.3 + 0.3 * d,  # light on grey
        lambda d: 0.3 * d,  # faint
        lambda d: 0.9 - 0.4 * d,  # dark ink on light grey paper
        lambda d: np.roll(d, (6, -5), axis=(0, 1)),  # off-centre
        lambda d: degrade(d[None], "enlarged", 0)[0],  # filling the frame
        lambda d: degrade(d[None], "shrunk", 0)[0],  # tiny
        lambda d: np.kron(np.roll(0.5 + 0.2 * d, 4, axis=1), np.ones((3, 2))),  # 84×56, low contrast, off-centre
    ],
    ids=["grey", "faint", "dark-on-light", "off-centre", "frame-filling", "tiny", "big-image"],
)
def test_a_degraded_digit_is_normalised(make) -> None:
    digit = mnist_style_digit()
    _fixed(to_mnist(make(digit).astype(np.float32)))


def test_low_contrast_is_stretched_exactly() -> None:
    digit = mnist_style_digit()
    assert np.allclose(stretch_contrast(0.3 + 0.3 * digit), digit, atol=1e-5)
    assert np.allclose(to_mnist(0.3 + 0.3 * digit), digit, atol=1e-5), "size and place were right already"


def test_synthetic_digits_go_through_predict_unchanged() -> None:
    """The smoke tests' made-up classes must survive predict's normalisation, as real MNIST digits do."""
    digits = [synthetic_digit(label) / 255.0 for label in range(10)]
    assert len({digit.tobytes() for digit in digits}) == 10
    for digit in digits:
        assert looks_normalised(digit) and np.array_equal(to_mnist(digit), digit)


def test_blank_images_stay_blank() -> None:
    for value in (0.0, 0.5, 1.0):
        assert not to_mnist(np.full((28, 28), value, np.float32)).any()


# --- the training augmentation ------------------------------------------------------------------------------------
def test_augmentation_keeps_shapes_and_value_ranges() -> None:
    torch.manual_seed(0)
    images = torch.from_numpy(digits(8)).unsqueeze(1).repeat(8, 1, 1, 1)
    augmented = Augmentation(probability=1.0)(images)
    assert augmented.shape == images.shape and augmented.dtype == images.dtype
    assert augmented.min() >= 0.0 and augmented.max() <= 1.0
    assert (augmented - images).abs().amax(dim=(1, 2, 3)).min() > 0.01, "every image was degraded"
    assert torch.equal(Augmentation(probability=0.0)(images), images)
    half = Augmentation(probability=0.5)(images)
    unchanged = (half == images).flatten(1).all(dim=1).float().mean()
    assert 0.2 < unchanged < 0.8


def test_augmentation_operations() -> None:
    images = torch.from_numpy(digits(4)).unsqueeze(1)
    blurred = gaussian_blur(images, torch.tensor([0.5, 1.0, 1.5, 2.0]))
    assert blurred.shape == images.shape
    assert torch.allclose(blurred.sum(dim=(1, 2, 3)), images.sum(dim=(1, 2, 3)), rtol=0.02), "blur keeps the ink"
    assert (blurred.amax(dim=(1, 2, 3)).diff() < 0).all(), "a wider blur is fainter"
    assert thumbnail(images, 8).shape == images.shape
    assert torch.allclose(zoom(images, torch.ones(4)), images, atol=1e-5)
    planes = images[:, 0]
    for thinner, thicker in ((erode2(planes), dilate(planes, 2)), (erode2(planes), dilate(planes, 3))):
        assert thinner.shape == thicker.shape == planes.shape
        assert (thinner <= planes).all() and (thicker >= planes).all() and thinner.sum() < planes.sum() < thicker.sum()
    assert torch.allclose(dilate(planes, 3), torch.nn.functional.max_pool2d(planes, 3, 1, 1))


def test_augmentation_is_for_training_batches_only() -> None:
    data = SyntheticDigits(train_size=64, test_size=16, val_size=16, batch_size=16, max_shift=0,
                           augment={"probability": 1.0, "sigma": [0.5, 1.0]})  # fmt: skip
    data.prepare()
    torch.manual_seed(0)
    inputs, targets = data.inputs("train"), data.targets("train")
    evaluation = torch.cat([batch[0] for batch in data.loader(inputs, targets)])
    assert torch.equal(evaluation, inputs), "evaluation batches are the images as they are"
    assert torch.equal(torch.cat([batch[0] for batch in data.loader(data.inputs("val"))]), data.inputs("val"))
    [(batch, labels), *_] = list(data.loader(inputs, targets, train=True))
    assert batch.shape == (16, 1, 28, 28) and labels.shape == (16,)
    low, high = (0 - MEAN) / STD, (1 - MEAN) / STD
    assert batch.min() >= low - 1e-5 and batch.max() <= high + 1e-5
    assert not any(torch.equal(image, original) for image in batch for original in inputs)


def test_unknown_augmentation_option_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="rotation"):
        SyntheticDigits(augment={"rotation": 10})
    assert SyntheticDigits(augment=None).augment is None


# --- scripts/robustness.py ----------------------------------------------------------------------------------------
def test_script_help_names_the_sets(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        script_module("robustness").main(["--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    assert "run=PATH" in text and "--split" in text and all(name in text for name in DEGRADATIONS)


def test_script_without_runs_says_train_first(capsys: pytest.CaptureFixture[str]) -> None:
    assert script_module("robustness").main([]) == 1
    assert "train one first" in capsys.readouterr().err


def _lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_script_scores_every_set_of_a_run(cli, isolated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = train_one(cli, isolated, "mnist", "data=synthetic", "trainer=cpu", "trainer.max_epochs=1", "logger=csv")
    table = isolated / "robustness.md"
    assert script_module("robustness").main([f"run={run}", "--limit", "40", "--markdown", str(table)]) == 0
    lines = _lines(capsys.readouterr().out)
    assert [line["set"] for line in lines] == ["clean", *DEGRADATIONS]
    assert all(0.0 <= line["accuracy"] <= 1.0 and line["examples"] == 40 for line in lines)
    assert table.read_text().startswith("| set | accuracy | examples |")


@pytest.mark.integration
def test_script_on_a_quick_real_run(quick_mnist_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        script_module("robustness").main(
            [f"run={quick_mnist_run}", "--limit", "1000", "--sets", "clean", "grey_background", "offset", "enlarged"]
        )
        == 0
    )
    accuracy = {line["set"]: line["accuracy"] for line in _lines(capsys.readouterr().out)}
    assert accuracy["clean"] >= 0.95, accuracy
    assert min(accuracy.values()) >= 0.85, "predict's normalisation undoes contrast, place and size"
