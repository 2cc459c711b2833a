"""Vision networks and batch augmentation on tiny synthetic images: shapes, inputs, learning, whitening, TTA, the
optimiser and its schedule in a short Lightning fit, and every augmentation doing what its option says."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from lightning import Callback, Trainer
from torch.utils.data import DataLoader, TensorDataset

from projects.vision.airbench import Airbench
from projects.vision.augment import BatchAugment
from projects.vision.models import ResNet9, TorchvisionNet, one_cycle
from shared.errors import UsageError

TINY_AIRBENCH = {"block1": 8, "block2": 16, "block3": 16}
NETWORKS = {
    "resnet": (lambda **options: ResNet9(widths=(8, 16, 16, 32), **options), 32),
    "airbench": (lambda **options: Airbench(widths=TINY_AIRBENCH, **options), 16),
    "torchvision": (lambda **options: TorchvisionNet(arch="resnet18", **options), 512),
}


def images(count: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def labels(count: int = 8) -> torch.Tensor:
    return torch.arange(count) % 10


@pytest.mark.parametrize("name", NETWORKS)
def test_forward_takes_uint8_or_float_and_gives_logits_and_features(name: str) -> None:
    make, width = NETWORKS[name]
    model = make().eval()
    batch = images(4)
    with torch.no_grad():
        logits = model(batch)
        assert logits.shape == (4, 10)
        assert torch.allclose(logits, model(batch.float() / 255), atol=1e-5)
        assert model.features(batch).shape == (4, width)
    conv = next(module for module in model.modules() if isinstance(module, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("name", ["resnet", "airbench"])
def test_a_few_steps_lower_the_loss_on_a_fixed_batch(name: str) -> None:
    torch.manual_seed(0)
    model = NETWORKS[name][0]().train()
    batch, targets = images(16), labels(16)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(15):
        loss = model.loss(model(batch), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.5, losses


def test_the_torchvision_stem_is_made_for_32_pixels_and_unknown_archs_are_refused() -> None:
    model = TorchvisionNet(arch="resnet18", classes=7)
    assert model.network.conv1.stride == (1, 1) and model.network.conv1.kernel_size == (3, 3)
    assert isinstance(model.network.maxpool, torch.nn.Identity)
    assert model.network.fc.out_features == 7
    model.loss(model(images(2)), labels(2)).backward()  # in training mode too
    assert model.network.conv1.weight.grad is not None
    with pytest.raises(UsageError, match="torchvision") as refused:
        TorchvisionNet(arch="resnet1800")
    assert "resnet18" in str(refused.value)


def test_whitening_gives_the_fitted_patches_identity_covariance() -> None:
    model = Airbench(widths=TINY_AIRBENCH, whiten_images=200)
    # Smooth images (a random colour ramp plus a little noise): neighbouring pixels and channels correlate strongly.
    generator = torch.Generator().manual_seed(0)
    ramp = torch.linspace(0, 1, 32)
    slopes = torch.rand(300, 3, 2, generator=generator)
    smooth = slopes[..., 0, None, None] * ramp[:, None] + slopes[..., 1, None, None] * ramp[None, :]
    noisy = smooth * 120 + torch.rand(300, 3, 32, 32, generator=generator) * 15
    batch = noisy.clamp(0, 255).to(torch.uint8)
    model.fit_on_train(batch, labels(300).numpy())

    def second_moment(channels: torch.Tensor) -> torch.Tensor:
        vectors = channels.permute(0, 2, 3, 1).reshape(-1, channels.shape[1]).double()
        return vectors.T @ vectors / len(vectors)

    fitted = batch[:200]
    with torch.no_grad():
        raw = F.unfold(model.normalise(fitted), 2).transpose(1, 2).reshape(-1, 12).double()
        whitened = model.whiten(model.normalise(fitted))
    assert (raw.T @ raw / len(raw) - torch.eye(12)).abs().max() > 0.5  # far from white before
    moment = second_moment(whitened[:, :12])
    off_diagonal = moment - torch.diag(moment.diagonal())
    assert off_diagonal.abs().max() < 1e-3
    # λ / (λ + eps) per direction: 1 but for the faintest, which the eps keeps from being blown up
    assert ((moment.diagonal() > 0.85) & (moment.diagonal() < 1 + 1e-3)).all()
    assert torch.equal(model.whiten.weight[12:], -model.whiten.weight[:12])
    assert not model.whiten.weight.requires_grad


def test_test_time_augmentation_averages_the_mirror_images_probabilities() -> None:
    torch.manual_seed(0)
    model = Airbench(widths=TINY_AIRBENCH, tta=True).eval()
    batch = images(6)
    with torch.no_grad():
        with_tta = model.predict_step((batch,), 0)
        model.tta = False
        without = model.predict_step((batch,), 0)
        mirrored = F.softmax(model(batch.flip(-1)), dim=1)
    for probabilities in (with_tta, without):
        assert probabilities.shape == (6, 10)
        assert torch.allclose(probabilities.sum(1), torch.ones(6), atol=1e-5)
    assert not torch.allclose(with_tta, without)
    assert torch.allclose(with_tta, (without + mirrored) / 2, atol=1e-6)


def test_mirror_translate_adds_one_pixel_shifts_weighing_half() -> None:
    torch.manual_seed(0)
    model = Airbench(widths=TINY_AIRBENCH, tta="mirror_translate").eval()
    batch = images(4)
    with torch.no_grad():
        with_shifts = model.predict_step((batch,), 0)
        model.tta = "mirror"
        mirror = model.predict_step((batch,), 0)
        padded = F.pad(batch.float(), (1, 1, 1, 1), mode="reflect")
        shifted = [padded[..., :32, :32].round().to(torch.uint8), padded[..., 2:, 2:].round().to(torch.uint8)]
        shifted_mirror = sum(model.predict_step((view,), 0) for view in shifted) / 2
    assert torch.allclose(with_shifts.sum(1), torch.ones(4), atol=1e-5)
    assert torch.allclose(with_shifts, (mirror + shifted_mirror) / 2, atol=1e-5)
    assert not torch.allclose(with_shifts, mirror)


def test_an_unknown_test_time_augmentation_names_the_choices() -> None:
    with pytest.raises(UsageError, match="mirror_translate"):
        Airbench(widths=TINY_AIRBENCH, tta="rotate")


def _fit(model: torch.nn.Module, epochs: int = 2, count: int = 64, callbacks: list[Callback] | None = None) -> Trainer:
    loader = DataLoader(TensorDataset(images(count), labels(count)), batch_size=16, shuffle=True)
    trainer = Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
    )
    trainer.fit(model, train_dataloaders=loader, val_dataloaders=DataLoader(TensorDataset(images(16, 1), labels(16))))
    return trainer


class _WhiteningBias(Callback):
    """The whitening layer's bias at the end of each training epoch."""

    def __init__(self) -> None:
        self.biases: list[torch.Tensor] = []

    def on_train_epoch_end(self, trainer: Trainer, model: Airbench) -> None:
        self.biases.append(model.whiten.bias.detach().clone())


def test_airbench_trains_in_lightning_with_its_optimiser_freezing_and_lookahead() -> None:
    torch.manual_seed(0)
    augment = {"crop_padding": 2, "flip": "alternate", "seed": 0}
    model = Airbench(widths=TINY_AIRBENCH, whiten_bias_epochs=1, lookahead_from=1, augment=augment, batch_size=16)
    model.fit_on_train(images(64), labels(64).numpy())
    whitening, head = model.whiten.weight.clone(), model.head.weight.clone()
    bias = _WhiteningBias()
    trainer = _fit(model, callbacks=[bias])
    norm_biases, others = trainer.optimizers[0].param_groups
    assert norm_biases["max_lr"] == pytest.approx(64 * others["max_lr"])
    decay = norm_biases["max_lr"] * norm_biases["weight_decay"]  # torch's decay per step is lr × weight_decay
    assert decay == pytest.approx(others["max_lr"] * others["weight_decay"])
    assert others["nesterov"] and others["momentum"] == 0.85
    assert not torch.equal(model.head.weight, head)
    assert torch.equal(model.whiten.weight, whitening)  # frozen
    assert bias.biases[0].abs().sum() > 0 and torch.equal(bias.biases[1], bias.biases[0])  # trained, then frozen
    assert all(torch.equal(norm.weight, torch.ones_like(norm.weight)) for norm in _norms(model))
    state = [tensor for tensor in model.state_dict().values() if tensor.is_floating_point()]
    assert model._average is not None and all(map(torch.equal, model._average, state))  # the epoch ends on it


def test_airbench_stopped_by_max_time_ends_annealed_and_on_its_average() -> None:
    """A preset capped by trainer.max_time on a machine too slow for its epochs: the rate has fallen to its end
    and the network is the lookahead average when the Timer stops it, as after a full-length run."""
    torch.manual_seed(0)
    model = Airbench(widths=TINY_AIRBENCH, lookahead_from=0, batch_size=16)
    model.fit_on_train(images(64), labels(64).numpy())
    loader = DataLoader(TensorDataset(images(64), labels(64)), batch_size=16, shuffle=True)
    trainer = Trainer(
        max_epochs=100_000,  # by steps alone the rate would still be warming up when the time runs out
        max_time={"seconds": 2},
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, train_dataloaders=loader)
    assert trainer.current_epoch < 100_000, "stopped by the time limit"
    [schedule] = trainer.lr_scheduler_configs
    group = trainer.optimizers[0].param_groups[1]
    assert schedule.scheduler.get_last_lr()[1] == pytest.approx(group["max_lr"] * model.lr_end, rel=1e-3)
    state = [tensor for tensor in model.state_dict().values() if tensor.is_floating_point()]
    assert model._average is not None and all(map(torch.equal, model._average, state))


def test_resnet_trains_in_lightning_on_the_warmup_decay_schedule() -> None:
    torch.manual_seed(0)
    model = NETWORKS["resnet"][0](augment={"crop_padding": 2, "flip": True, "cutout": 4})
    before = [parameter.clone() for parameter in model.parameters()]
    trainer = _fit(model, epochs=1, count=32)
    assert trainer.optimizers[0].param_groups[0]["max_lr"] == model.lr
    assert all(not torch.equal(a, b) for a, b in zip(before[:3], model.parameters(), strict=False))


def test_one_cycle_warms_up_linearly_then_decays_to_the_end_factor() -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
    schedule = one_cycle(optimizer, total_steps=100, warmup=0.25, start=0.2, end=0.07)
    rates = []
    for _ in range(100):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates[0] == pytest.approx(0.4)
    assert max(rates) == pytest.approx(2.0) and rates.index(max(rates)) == 24
    assert rates[-1] == pytest.approx(0.14)


@pytest.mark.parametrize("steps", [1, 2, 3, 4, 5, 6])
def test_one_cycle_of_a_handful_of_steps_runs_and_stays_within_its_rates(steps: int) -> None:
    """A tiny dataset gives a handful of steps; OneCycleLR alone would divide by a phase of zero steps."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
    schedule = one_cycle(optimizer, total_steps=steps, warmup=0.2, start=0.2, end=0.07)
    for _ in range(steps):
        assert 0.14 - 1e-9 <= optimizer.param_groups[0]["lr"] <= 2.0 + 1e-9
        optimizer.step()
        schedule.step()


def _norms(model: torch.nn.Module) -> list[torch.nn.BatchNorm2d]:
    return [module for module in model.modules() if isinstance(module, torch.nn.BatchNorm2d)]


# --- augmentation ---------------------------------------------------------------------------------------------


def floats(count: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(count, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def test_augmentation_keeps_shape_dtype_and_range() -> None:
    augment = BatchAugment(crop_padding=4, flip=True, cutout=8, seed=0)
    for batch in (floats(), images(32)):
        out = augment(batch)
        assert out.shape == batch.shape and out.dtype == batch.dtype
        assert out.min() >= 0 and out.max() <= batch.max()  # cutout's zeros, else the image's own values


def test_the_same_seed_gives_the_same_batch_and_another_seed_another() -> None:
    batch = floats()
    first, again = BatchAugment(2, True, 8, seed=1), BatchAugment(2, True, 8, seed=1)
    assert torch.equal(first(batch), again(batch))
    assert not torch.equal(BatchAugment(2, True, 8, seed=1)(batch), BatchAugment(2, True, 8, seed=2)(batch))
    assert not torch.equal(first(batch), first(batch))  # the generator moves on from batch to batch


def test_nothing_asked_is_the_identity() -> None:
    batch = floats()
    assert torch.equal(BatchAugment(crop_padding=0, flip=False, cutout=0)(batch), batch)
    assert BatchAugment.from_config({"crop_padding": 0, "flip": False, "cutout": 0}) is None
    assert BatchAugment.from_config(None) is None


def test_flip_mirrors_about_half_the_images_and_nothing_else() -> None:
    batch = floats(64)
    out = BatchAugment(crop_padding=0, flip=True, seed=0)(batch)
    same = [torch.equal(a, b) for a, b in zip(out, batch, strict=True)]
    mirrored = [torch.equal(a, b.flip(-1)) for a, b in zip(out, batch, strict=True)]
    assert all(s or m for s, m in zip(same, mirrored, strict=True))
    assert 16 < sum(mirrored) < 48


def test_alternating_flip_mirrors_each_image_in_every_other_epoch() -> None:
    batch = images(64)
    augment = BatchAugment(crop_padding=0, flip="alternate", seed=0)
    epochs = [
        [torch.equal(a, b.flip(-1)) for a, b in zip(augment(batch, epoch), batch, strict=True)] for epoch in range(3)
    ]
    assert epochs[0] == epochs[2]
    assert all(first != second for first, second in zip(epochs[0], epochs[1], strict=True))
    assert 16 < sum(epochs[0]) < 48
    order = torch.randperm(64, generator=torch.Generator().manual_seed(1))  # the side is the image's, not its place
    shuffled = augment(batch[order])
    assert [torch.equal(shuffled[i], batch[j].flip(-1)) for i, j in enumerate(order)] == [epochs[0][j] for j in order]
    with pytest.raises(UsageError, match="alternate"):
        BatchAugment(flip="sometimes")


def test_crop_is_a_shift_of_the_reflect_padded_image() -> None:
    batch, padding = floats(32), 3
    out = BatchAugment(crop_padding=padding, flip=False, seed=0)(batch)
    padded = F.pad(batch, (padding,) * 4, mode="reflect")
    shifts = range(2 * padding + 1)
    found = [
        next((dy, dx) for dy in shifts for dx in shifts if torch.equal(crop, padded[i, :, dy : dy + 32, dx : dx + 32]))
        for i, crop in enumerate(out)
    ]
    assert len(set(found)) > 5  # images shifted independently


def test_cutout_zeroes_one_square_of_the_given_size_per_image() -> None:
    out = BatchAugment(crop_padding=0, flip=False, cutout=6, seed=0)(torch.ones(16, 3, 32, 32))
    for image in out:
        zero = image == 0
        assert torch.equal(zero[0], zero[1]) and torch.equal(zero[0], zero[2])  # every channel
        rows, columns = zero[0].nonzero(as_tuple=True)
        assert zero[0].sum() == 36
        assert rows.max() - rows.min() == 5 and columns.max() - columns.min() == 5


def test_noise_varies_per_image_up_to_its_bound_and_keeps_dtype_and_range() -> None:
    batch = torch.full((256, 3, 32, 32), 128, dtype=torch.uint8)
    augment = BatchAugment(crop_padding=0, flip=False, noise=0.1, seed=0)
    out = augment(batch)
    assert out.dtype == torch.uint8 and out.shape == batch.shape
    spreads = (out.float() - 128).flatten(1).std(dim=1) / 255  # each image's noise, in [0, 1] pixel units
    assert spreads.max() <= 0.1 * 1.05 and spreads.min() < 0.01  # up to the bound; some images nearly clean
    assert 0.04 < spreads.mean() < 0.06  # a standard deviation drawn uniformly from [0, 0.1]
    assert torch.equal(BatchAugment(crop_padding=0, flip=False, noise=0.1, seed=0)(batch), out)  # seeded
    floats_out = BatchAugment(crop_padding=0, flip=False, noise=1.0, seed=0)(floats())
    assert floats_out.dtype == torch.float32 and floats_out.min() >= 0 and floats_out.max() <= 1  # clipped
    assert BatchAugment.from_config({"crop_padding": 0, "flip": False, "noise": 0.05}) is not None
    with pytest.raises(UsageError, match="is not a standard deviation in"):
        BatchAugment(noise=1.5)


def test_the_models_cutout_is_the_mean_colour_which_normalises_to_zero() -> None:
    model = ResNet9(widths=(8, 8, 8, 8), augment={"crop_padding": 0, "flip": False, "cutout": 4, "seed": 0})
    out = model.normalise(model.augment(torch.full((2, 3, 32, 32), 255, dtype=torch.uint8)))
    assert ((out.abs() < 0.01).sum(dim=(2, 3)) == 16).all()


def test_unknown_augmentation_options_are_refused_with_the_known_ones() -> None:
    with pytest.raises(UsageError, match="crop_padding, flip, cutout, noise, seed"):
        BatchAugment.from_config({"crop": 2})
    with pytest.raises(UsageError):
        BatchAugment(crop_padding=-1)


def test_the_augmentation_generator_travels_in_the_checkpoint() -> None:
    model = ResNet9(widths=(8, 8, 8, 8), augment={"seed": 3})
    checkpoint: dict = {}
    model.on_save_checkpoint(checkpoint)
    batch = floats(8)
    drawn = model.augment(batch)
    model.on_load_checkpoint(checkpoint)
    assert torch.equal(model.augment(batch), drawn)
