"""The GAN: its losses, its measurements on hand-made data, and the command line on synthetic digits."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from unittest.mock import PropertyMock, patch

import numpy as np
import pytest
import torch
from lightning import Trainer

from projects.gan import measure
from projects.gan.data import GanImages
from projects.gan.module import STANDING_BATCH_SIZE, STANDING_BATCHES, STANDING_SEED, Gan, noise
from projects.gan.networks import LOSSES, Discriminator, Generator, MinibatchStddev
from shared.data import tensor_loader
from shared.errors import UsageError
from tests.conftest import refused, train_for_module

TINY = {"latent_dim": 8, "generator_width": 8, "discriminator_width": 8, "embed_dim": 4}


def _fit(model: Gan, images: torch.Tensor, labels: torch.Tensor, steps: int, root: Path) -> None:
    trainer = Trainer(
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        default_root_dir=str(root),
    )
    trainer.fit(model, tensor_loader(images, labels, batch_size=16, shuffle=True, drop_last=True))


@pytest.mark.parametrize("loss", LOSSES)
def test_each_loss_changes_both_networks_and_stays_finite(loss: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    options = {
        "spectral_norm": loss == "hinge",
        "discriminator_batch_norm": loss == "bce",
        "top_k": 0.5 if loss == "hinge" else None,
    }
    model = Gan(conditional=True, loss=loss, n_critic=1, discriminator_lr=4e-4, **options, **TINY)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    _fit(model, torch.rand(64, 1, 28, 28) * 2 - 1, torch.randint(0, 10, (64,)), 4, tmp_path)
    after = model.state_dict()
    for network in ("generator.", "discriminator.", "ema."):
        assert any(not torch.equal(before[k], after[k]) for k in after if k.startswith(network)), network
    for key in ("train/d_loss", "train/g_loss"):
        assert torch.isfinite(model.trainer.callback_metrics[key]), key
    assert (tmp_path / "plots" / "epochs").is_dir()  # the fixed grid after the epoch


def test_the_average_draws_with_batch_norm_statistics_of_its_own_activations() -> None:
    """The averaged generator's weights are not the training generator's, so neither are its activations: before
    it draws, its batch norms' running statistics are measured on it, over seeded latents."""
    torch.manual_seed(0)
    model = Gan(conditional=True, **TINY)
    with torch.no_grad():
        for parameter in model.ema.parameters():
            parameter.add_(torch.randn_like(parameter))  # weights apart from the generator's
    model.update_ema()  # as after a training step: the statistics are stale
    first = model.ema.project[1]
    assert torch.equal(first.running_mean, torch.zeros_like(first.running_mean))  # never measured yet
    mode = model.ema.training
    model.sample(4, seed=0)
    assert model.ema.training == mode  # the caller's mode, restored
    latents = torch.cat([noise(STANDING_BATCH_SIZE, 8, STANDING_SEED + i) for i in range(STANDING_BATCHES)])
    labels = torch.arange(STANDING_BATCH_SIZE).repeat(STANDING_BATCHES) % 10
    with torch.no_grad():
        activations = model.ema.project[0](torch.cat([latents, model.ema.embed(labels)], dim=1))
    torch.testing.assert_close(first.running_mean, activations.mean(dim=0), rtol=1e-4, atol=1e-5)
    again = model.sample(4, seed=0)
    torch.testing.assert_close(again, model.sample(4, seed=0))  # measured once, until the next update


def test_minibatch_stddev_shows_a_collapsed_batch_to_the_discriminator() -> None:
    layer = MinibatchStddev(group=4)
    same = torch.randn(1, 3, 7, 7).repeat(8, 1, 1, 1)  # one image whatever the noise: mode collapse
    spread = layer(same)[:, -1]
    assert spread.shape == (8, 7, 7) and float(spread.max()) < 1e-3
    varied = layer(torch.randn(8, 3, 7, 7))[:, -1]
    assert float(varied.min()) > 0.3  # unit-variance features spread about 0.8 within a group of 4
    assert layer(torch.randn(6, 3, 7, 7)).shape == (6, 4, 7, 7)  # a batch the group does not divide


def test_the_options_keep_the_networks_shapes_and_range() -> None:
    generator = Generator(8, 8, classes=10, embed_dim=4, full_resolution_conv=True)
    images = generator(torch.randn(5, 8), torch.arange(5))
    assert images.shape == (5, 1, 28, 28) and float(images.abs().max()) <= 1
    critic = Discriminator(8, classes=10, spectral=True, minibatch_stddev=True)
    assert critic(images, torch.arange(5)).shape == (5,)
    normed = Discriminator(8, minibatch_stddev=True, batch_norm=True)
    assert normed(images).shape == (5,) and any(isinstance(m, torch.nn.BatchNorm2d) for m in normed.modules())


def test_the_memory_layout_changes_speed_not_results() -> None:
    models = {}
    for channels_last in (True, False):
        torch.manual_seed(0)
        models[channels_last] = Gan(conditional=True, channels_last=channels_last, **TINY)
    assert models[True].generator.upsample[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert models[True].ema.upsample[0].weight.is_contiguous(memory_format=torch.channels_last)
    labels = torch.arange(6) % 10
    torch.testing.assert_close(models[True].sample(6, 0, labels), models[False].sample(6, 0, labels))
    images = models[True].sample(6, 0, labels)
    scores = [models[layout].discriminator(images, labels) for layout in (True, False)]
    torch.testing.assert_close(*scores)


def test_the_two_time_scales_and_the_refused_batch_norm() -> None:
    generator_optimizer, discriminator_optimizer = Gan(lr=1e-4, discriminator_lr=4e-4, **TINY).configure_optimizers()
    assert generator_optimizer.param_groups[0]["lr"] == 1e-4 and discriminator_optimizer.param_groups[0]["lr"] == 4e-4
    same = Gan(lr=3e-4, **TINY).configure_optimizers()
    assert [optimizer.param_groups[0]["lr"] for optimizer in same] == [3e-4, 3e-4]
    with pytest.raises(UsageError) as raised:
        Gan(loss="wgan_gp", discriminator_batch_norm=True, **TINY)
    assert "gradient penalty" in raised.value.problem and "discriminator_batch_norm=false" in raised.value.fix


def test_the_averages_ramp_sets_how_far_back_it_reaches() -> None:
    """After t updates the average moves by 1 - min(ema_decay, (1 + t) / (ema_ramp + t)) towards the generator: a
    smaller ramp follows faster at first, then averages over more steps; ema_decay caps it."""

    def decay_after(model: Gan, updates: int) -> float:
        """The decay of the update after `updates` ones, read back from how far one update moves a weight."""
        model.ema_updates.fill_(updates)
        for parameter in model.ema.parameters():
            parameter.data.zero_()
        for parameter in model.generator.parameters():
            parameter.data.fill_(1.0)
        model.update_ema()
        return 1 - float(next(model.ema.parameters()).flatten()[0])

    default, slow, capped = Gan(**TINY), Gan(ema_ramp=4, ema_decay=0.9999, **TINY), Gan(ema_ramp=4, **TINY)
    assert decay_after(default, 0) == pytest.approx(1 / 10) and decay_after(slow, 0) == pytest.approx(1 / 4)
    assert decay_after(default, 5000) == pytest.approx(5001 / 5010, abs=1e-6)
    assert decay_after(slow, 5000) == pytest.approx(5001 / 5004, abs=1e-6)  # a longer horizon late on
    assert decay_after(capped, 5000) == pytest.approx(0.999, abs=1e-6)
    for bad in (1, 0, 2.5, "ten", True):
        with pytest.raises(UsageError) as raised:
            Gan(ema_ramp=bad, **TINY)
        assert "model.ema_ramp" in raised.value.problem and "model.ema_ramp=10" in raised.value.fix


def test_top_k_keeps_the_best_scored_fakes_for_the_generator() -> None:
    """The generator's loss sees the highest-scored share of the fakes, that share falling linearly from the whole
    batch to `top_k` over the planned epochs; without `top_k`, every fake."""
    model = Gan(top_k=0.5, **TINY)
    scores = torch.tensor([0.3, -1.0, 2.0, 0.1, 1.5, -0.2, 0.7, 0.0])
    for epoch, batch, share in ((0, 0, 1.0), (2, 0, 0.75), (3, 5, 0.5625), (4, 0, 0.5)):
        place = SimpleNamespace(max_epochs=4, num_training_batches=10, current_epoch=epoch)
        with patch.object(Gan, "trainer", new_callable=PropertyMock, return_value=place):
            assert model.kept_share(batch) == pytest.approx(share)
            kept = model.best_scored(scores.unsqueeze(1), batch)
        assert torch.equal(kept.sort(descending=True).values, scores.sort(descending=True).values[: round(share * 8)])
    assert torch.equal(Gan(**TINY).best_scored(scores.unsqueeze(1), 0), scores)
    for bad in (0, 1, 1.5, "half", True):
        with pytest.raises(UsageError) as raised:
            Gan(top_k=bad, **TINY)
        assert "model.top_k" in raised.value.problem and "model.top_k=0.5" in raised.value.fix


def test_truncation_keeps_every_sampled_latent_within_its_bound() -> None:
    plain, truncated = noise(4096, 8, seed=3), noise(4096, 8, seed=3, truncation=1.5)
    assert float(plain.abs().max()) > 3 and float(truncated.abs().max()) <= 1.5  # ~13% of plain entries exceed 1.5
    torch.testing.assert_close(truncated, noise(4096, 8, seed=3, truncation=1.5))  # seeded like the rest
    assert 0.7 < float(truncated.std()) < 0.8  # a truncated normal's spread (0.74 at ±1.5), not a clipped one's
    torch.manual_seed(0)
    model = Gan(conditional=True, truncation=1.5, **TINY)
    assert float(model.latents(512, seed=0).abs().max()) <= 1.5 and float(model.grid_noise.abs().max()) <= 1.5
    labels = torch.arange(6) % 10
    torch.testing.assert_close(
        model.sample(6, seed=4, labels=labels), model.generate(noise(6, 8, 4, truncation=1.5), labels)
    )
    model.use_truncation(None)  # what `sample truncation=` does to a run; the batch-norm statistics follow
    torch.testing.assert_close(model.sample(6, seed=4, labels=labels), model.generate(noise(6, 8, 4), labels))
    for bad in (0, -1.0, "wide", True):
        with pytest.raises(UsageError) as raised:
            Gan(truncation=bad, **TINY)
        assert "model.truncation" in raised.value.problem and "model.truncation=null" in raised.value.fix
        with pytest.raises(UsageError, match="truncation="):
            model.use_truncation(bad)


def test_the_conditional_generator_obeys_its_label_on_a_toy_task(tmp_path: Path) -> None:
    """Class 0 is a bright top half, class 1 a bright bottom half: asked for each, it draws that one."""
    torch.manual_seed(0)
    labels = torch.arange(256) % 2
    images = -torch.ones(256, 1, 28, 28)
    images[labels == 0, :, :14] = 1.0
    images[labels == 1, :, 14:] = 1.0
    model = Gan(conditional=True, loss="hinge", classes=2, lr=2e-3, ema_decay=0.9, **TINY)
    _fit(model, images, labels, 120, tmp_path)
    drawn = model.sample(40, seed=1, labels=torch.arange(40) % 2)
    top, bottom = drawn[:, 0, :14].mean(dim=(1, 2)), drawn[:, 0, 14:].mean(dim=(1, 2))
    asked_top = torch.arange(40) % 2 == 0
    assert ((top > bottom) == asked_top).float().mean() >= 0.95


def test_frechet_distance_of_a_set_with_itself_is_zero_and_grows_with_noise() -> None:
    torch.manual_seed(0)

    class Pixels(torch.nn.Module):  # a tiny feature module: 16 pooled pixels
        num_features = 16

        def __init__(self) -> None:
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.zeros(1), requires_grad=False)

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.adaptive_avg_pool2d(images, 4).flatten(1)

    images = torch.rand(400, 1, 28, 28)
    noisy = {f"{scale}": images + scale * torch.randn_like(images) for scale in (0.0, 0.3, 1.0)}
    distances = measure.frechet_distances(Pixels(), images, noisy)
    assert abs(distances["0.0"]) < 1e-6
    assert distances["0.0"] < distances["0.3"] < distances["1.0"]


def test_precision_and_recall_on_hand_made_point_clouds() -> None:
    torch.manual_seed(0)
    real = torch.randn(500, 2)
    assert min(measure.precision_recall(real, torch.randn(500, 2))) > 0.8  # the same distribution
    collapsed = measure.precision_recall(real, 0.1 * torch.randn(500, 2))  # one mode: precise, no diversity
    assert collapsed[0] > 0.95 and collapsed[1] < 0.3
    far = measure.precision_recall(real, torch.randn(500, 2) + 10)  # elsewhere entirely
    assert far == (0.0, 0.0)


def test_memorisation_shows_a_generator_that_copies_training_images() -> None:
    torch.manual_seed(0)
    train, held_out = torch.rand(200, 1, 28, 28), torch.rand(200, 1, 28, 28)
    copies = measure.memorisation(train[:100], train, held_out)
    fresh = measure.memorisation(torch.rand(100, 1, 28, 28), train, held_out)
    assert copies["nn_train"] < 1e-3 and copies["closer_to_train"] == 1.0
    assert 0.9 < fresh["nn_ratio"] < 1.1


def test_conditional_accuracy_per_class() -> None:
    probabilities = np.eye(10)[[0, 0, 1, 2]]
    scores = measure.conditional_accuracy(probabilities, np.array([0, 0, 1, 1]))
    assert scores["cond_acc"] == 0.75 and scores["cond_acc_1"] == 0.5 and "cond_acc_5" not in scores


# --- the command line on synthetic digits ----------------------------------------------------------
SMOKE = ["data=synthetic", "trainer=cpu", "trainer.max_epochs=2"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    judge = train_for_module(tmp_path_factory, "mnist", "data=synthetic", "trainer=cpu", "trainer.max_epochs=2")
    judged = [f"judge={judge}"]
    return {
        "judge": judge,
        "cgan": train_for_module(tmp_path_factory, "gan", *SMOKE, *judged),
        "dcgan": train_for_module(tmp_path_factory, "gan", *SMOKE, *judged, "model=dcgan"),
    }


def test_train_writes_every_figure_and_picture(runs: dict[str, Path]) -> None:
    run = runs["cgan"]
    metrics = json.loads((run / "metrics.json").read_text())
    names = ("fd", "fd_floor", "fd_ratio", "precision", "recall", "precision_real", "recall_real", "nn_ratio")
    for name in (*names, "cond_acc", "cond_acc_9"):
        assert np.isfinite(metrics["metrics"][f"test/{name}"]), name
    assert metrics["monitor"] == {"metric": "val/fd", "mode": "min"}
    assert metrics["data"]["judge"] == str(runs["judge"])
    for picture in ("samples.png", "interpolations.png", "learning_curves.png", "epochs/epoch_002.png"):
        assert (run / "plots" / picture).is_file(), picture
    card = (run / "MODEL_CARD.md").read_text()
    assert "![samples](plots/samples.png)" in card and "NOT Inception FID" in card
    assert "test/cond_acc" not in json.loads((runs["dcgan"] / "metrics.json").read_text())["metrics"]


def test_evaluate_measures_a_run_again_with_its_recorded_judge(cli, runs: dict[str, Path]) -> None:
    result = cli("gan", "evaluate", f"run={runs['cgan']}")
    assert result.code == 0, result.err
    trained = json.loads((runs["cgan"] / "metrics.json").read_text())["metrics"]
    again = json.loads((runs["cgan"] / "evaluations" / "test" / "evaluation.json").read_text())["metrics"]
    for name in ("test/fd", "test/fd_floor", "test/cond_acc"):  # the same seeded samples and the same judge
        assert again[name] == pytest.approx(trained[name], rel=1e-3, abs=1e-6), name


@pytest.mark.parametrize("output", ["grid.png", "samples.npy", "folder/"])
def test_sample_writes_each_format(cli, runs: dict[str, Path], tmp_path: Path, output: str) -> None:
    target = tmp_path / output
    result = cli("gan", "sample", "n=12", "digit=3", f"output={target}", f"run={runs['cgan']}")
    assert result.code == 0, result.err
    if output.endswith(".npy"):
        array = np.load(target)
        assert array.shape == (12, 28, 28) and array.dtype == np.uint8
    elif output.endswith("/"):
        assert sorted(path.name for path in target.iterdir())[:2] == ["00_3.png", "01_3.png"]
        assert len(list(target.iterdir())) == 12
    else:
        assert target.stat().st_size > 100


def test_sample_draws_truncated_latents_when_asked(cli, runs: dict[str, Path], tmp_path: Path) -> None:
    drawn = {}
    for truncation in ("null", "0.5"):
        target = tmp_path / f"{truncation}.npy"
        result = cli("gan", "sample", "n=12", f"truncation={truncation}", f"output={target}", f"run={runs['cgan']}")
        assert result.code == 0, result.err
        drawn[truncation] = np.load(target).astype(np.int16)
    assert np.abs(drawn["null"] - drawn["0.5"]).max() > 0
    refused(
        cli("gan", "sample", "truncation=-1", f"output={tmp_path / 'g.png'}", f"run={runs['cgan']}"),
        2,
        "truncation=-1",
        "truncation=2.25",
        output=tmp_path / "g.png",
    )


def test_an_unconditional_run_asked_for_a_digit_is_refused(cli, runs: dict[str, Path], tmp_path: Path) -> None:
    output = tmp_path / "grid.png"
    result = cli("gan", "sample", "digit=7", f"output={output}", f"run={runs['dcgan']}")
    refused(result, 2, "unconditional", "drop digit=", output=output)


def test_a_missing_judge_says_how_to_train_one(cli, isolated: Path) -> None:
    result = cli("gan", "train", *SMOKE)
    refused(result, 1, "no judge for synthetic", "python -m projects.mnist train data=synthetic")
    assert not (isolated / "runs" / "gan").exists() or not any((isolated / "runs" / "gan").rglob("metrics.json"))


def test_the_gan_keeps_its_val_split() -> None:
    """The judge's data may go without a val split (mnist data.val_size=0); the GAN's per-epoch val/fd may not."""
    with pytest.raises(UsageError) as raised:
        GanImages(val_size=0)
    assert "data.val_size=0 asks for no validation split" in str(raised.value) and raised.value.fix
