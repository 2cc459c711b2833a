"""The GAN as one LightningModule: two networks, two Adam optimisers, Lightning's manual optimisation.

Each batch: one discriminator step on real and generated images, then (every `n_critic` batches) one generator
step, after which the exponential moving average of the generator's weights (`ema`) moves towards them. The
average is what evaluation, the checkpoint's `val/fd` and `sample` use: it is smoother than the last weights
(Yazıcı et al. 2019). Before it draws, its batch norms' statistics are measured on its own activations, since the
training generator's belong to other weights. Validation is the Fréchet distance of the average's samples to the
validation images in the judge's feature space, logged as `val/fd`; the checkpoint callback keeps the best.
With `truncation`, every latent it samples (validation, evaluation, grids, `sample`) lies within ±truncation;
training's latents never do.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from lightning import LightningModule
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance

from projects.gan.judge import Judge
from projects.gan.networks import (
    Discriminator,
    Generator,
    check_loss,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
)
from projects.gan.plots import save_mosaic
from shared import checks
from shared.errors import UsageError

GRID_COLUMNS = 10
PREDICT_SEED = 1_000_000  # noise seeds of evaluation batches, apart from validation's (0, 1, ...)
STANDING_SEED = 2_000_000  # noise seeds of the batches that measure the averaged generator's batch-norm statistics
STANDING_BATCHES, STANDING_BATCH_SIZE = 16, 256


def noise(
    count: int, dim: int, seed: int, device: torch.device | str = "cpu", truncation: float | None = None
) -> torch.Tensor:
    """Reproducible standard-normal noise: the same seed gives the same latents on every device.

    `truncation` t draws each entry from the normal truncated to [-t, t] (BigGAN's truncation trick, Brock et al.
    2019): the rare far-out latents the generator draws worst are not asked for, trading diversity for quality.
    """
    generator = torch.Generator().manual_seed(seed)
    if truncation is None:
        return torch.randn(count, dim, generator=generator).to(device)
    latents = torch.empty(count, dim)
    return torch.nn.init.trunc_normal_(latents, 0.0, 1.0, -truncation, truncation, generator=generator).to(device)


class Gan(LightningModule):
    """A DCGAN (`conditional: false`) or a class-conditional GAN with a projection discriminator."""

    def __init__(
        self,
        conditional: bool = False,
        loss: str = "bce",
        classes: int = 10,
        latent_dim: int = 64,
        generator_width: int = 64,
        discriminator_width: int = 32,
        embed_dim: int = 32,
        full_resolution_conv: bool = False,
        spectral_norm: bool = False,
        minibatch_stddev: bool = False,
        discriminator_batch_norm: bool = False,
        ema_decay: float = 0.999,
        ema_ramp: int = 10,
        lr: float = 2e-4,
        discriminator_lr: float | None = None,
        beta1: float = 0.5,
        beta2: float = 0.999,
        n_critic: int | None = None,
        gp_weight: float = 10.0,
        grid_seed: int = 0,
        truncation: float | None = None,
        channels_last: bool = True,
        top_k: float | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.conditional, self.classes, self.latent_dim = bool(conditional), classes, latent_dim
        self.loss_name = check_loss(loss)
        # WGAN-GP trains its critic five times per generator step (Gulrajani et al. 2017); the others once.
        self.n_critic = checks.whole(
            n_critic if n_critic is not None else (5 if loss == "wgan_gp" else 1), "model.n_critic"
        )
        if not 0 <= ema_decay < 1:
            raise UsageError(f"model.ema_decay={ema_decay} is not in [0, 1).", "use e.g. model.ema_decay=0.999.")
        self.ema_decay, self.lr, self.betas, self.gp_weight = ema_decay, lr, (beta1, beta2), gp_weight
        # the average's ramp (1 + t) / (ramp + t): a horizon of about t / (ramp - 1) steps until ema_decay caps it
        self.ema_ramp = checks.whole(ema_ramp, "model.ema_ramp", minimum=2, example=10)
        # the two-time-scale rule (Heusel et al. 2017) gives the discriminator its own rate; null: the generator's
        self.discriminator_lr = lr if discriminator_lr is None else discriminator_lr
        self.use_truncation(truncation, "model.truncation")
        # top-k training (Sinha et al. 2020): the generator learns from its best-scored fakes only, the kept share
        # annealed linearly from the whole batch to `top_k` over the planned epochs
        self.top_k = None if top_k is None else checks.fraction(top_k, "model.top_k", example=0.5)
        labels = classes if self.conditional else None
        self.generator = Generator(latent_dim, generator_width, labels, embed_dim, full_resolution_conv)
        if discriminator_batch_norm and loss == "wgan_gp":
            raise UsageError(
                "model.discriminator_batch_norm=true does not go with model.loss=wgan_gp: the gradient penalty is "
                "taken per image, and batch norm mixes the images of a batch.",
                "use model.loss=bce or hinge, or model.discriminator_batch_norm=false.",
            )
        self.discriminator = Discriminator(
            discriminator_width, labels, spectral_norm, minibatch_stddev, discriminator_batch_norm
        )
        # channels-last convolutions (oneDNN): 137 against 157 ms a batch in an alternating timing on 2 CPU cores
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.generator.to(memory_format=self.memory_format)
        self.discriminator.to(memory_format=self.memory_format)
        self.ema = copy.deepcopy(self.generator).requires_grad_(False)
        self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))
        self._ema_statistics_current = False  # the average's batch-norm statistics, measured since its last update?
        rows = classes if self.conditional else 8  # the fixed grid: one class per row for the conditional model
        self.register_buffer("grid_noise", noise(rows * GRID_COLUMNS, latent_dim, grid_seed, "cpu", self.truncation))
        self.register_buffer("grid_labels", torch.arange(rows).repeat_interleave(GRID_COLUMNS))
        self.judge: Judge | None = None  # set by the project for training; not part of the weights
        self._frechet: FrechetInceptionDistance | None = None

    # --- sampling ---------------------------------------------------------------------------------
    def labels_for(self, labels: torch.Tensor | None) -> torch.Tensor | None:
        """The class labels the networks take: the given ones when conditional, none otherwise."""
        return labels.to(self.device) if self.conditional and labels is not None else None

    @torch.no_grad()
    def generate(self, latents: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images in [-1, 1] from the averaged generator, in eval mode (batch norm's running statistics)."""
        if self.conditional and labels is None:
            raise ValueError("the conditional generator needs a label per latent")
        if not self._ema_statistics_current:
            self.measure_ema_statistics()
        was_training = self.ema.training
        self.ema.eval()
        images = self.ema(latents.to(self.device), self.labels_for(labels))
        self.ema.train(was_training)
        return images

    def use_truncation(self, truncation: object, name: str = "truncation") -> None:
        """Sample within ±`truncation` from now on (None: untruncated); the batch-norm statistics follow. A value
        that is not a positive number is a `UsageError` naming `name`, the setting it came from."""
        self.truncation = checks.positive(truncation, name, example=2.25, optional=True)
        self._ema_statistics_current = False

    def latents(self, count: int, seed: int) -> torch.Tensor:
        """Seeded latents as this model samples them: within ±`truncation` when it has one (never in training)."""
        return noise(count, self.latent_dim, seed, self.device, self.truncation)

    def sample(self, count: int, seed: int, labels: torch.Tensor | None = None) -> torch.Tensor:
        """`count` images from seeded latents; a conditional model given no labels cycles through the classes."""
        if self.conditional and labels is None:
            labels = torch.arange(count) % self.classes
        return self.generate(self.latents(count, seed), labels)

    # --- training ---------------------------------------------------------------------------------
    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        return [
            torch.optim.Adam(self.generator.parameters(), lr=self.lr, betas=self.betas),
            torch.optim.Adam(self.discriminator.parameters(), lr=self.discriminator_lr, betas=self.betas),
        ]

    def training_step(self, batch: list[torch.Tensor], batch_index: int) -> None:
        real, labels = batch[0].contiguous(memory_format=self.memory_format), self.labels_for(batch[1])
        generator_optimizer, discriminator_optimizer = self.optimizers()  # type: ignore[misc]
        fake = self.generator(torch.randn(len(real), self.latent_dim, device=self.device), labels)

        d_loss = discriminator_loss(
            self.loss_name, self.discriminator(real, labels), self.discriminator(fake.detach(), labels)
        )
        if self.loss_name == "wgan_gp":
            d_loss = d_loss + self.gp_weight * gradient_penalty(self.discriminator, real, fake.detach(), labels)
        discriminator_optimizer.zero_grad(set_to_none=True)
        self.manual_backward(d_loss)
        discriminator_optimizer.step()
        self.log("train/d_loss", d_loss.detach(), on_step=False, on_epoch=True, prog_bar=True, batch_size=len(real))

        if (batch_index + 1) % self.n_critic == 0:
            with self.toggled_optimizer(generator_optimizer):  # no gradients for the discriminator's weights
                g_loss = generator_loss(self.loss_name, self.best_scored(self.discriminator(fake, labels), batch_index))
                generator_optimizer.zero_grad(set_to_none=True)
                self.manual_backward(g_loss)
                generator_optimizer.step()
            self.update_ema()
            self.log("train/g_loss", g_loss.detach(), on_step=False, on_epoch=True, prog_bar=True, batch_size=len(real))

    def kept_share(self, batch_index: int) -> float:
        """The share of the batch's fakes the generator learns from now: 1 without `top_k`, else falling linearly
        from 1 to `top_k` over the planned epochs (over one epoch when the trainer plans in steps, not epochs; a run
        cut short by its time budget stops on the way)."""
        if self.top_k is None:
            return 1.0
        trainer = self.trainer
        batches = max(1, int(trainer.num_training_batches))
        planned = max(1, trainer.max_epochs or 1) * batches
        progress = min(1.0, (trainer.current_epoch * batches + batch_index) / planned)
        return 1.0 - (1.0 - self.top_k) * progress

    def best_scored(self, scores: torch.Tensor, batch_index: int) -> torch.Tensor:
        """The discriminator's scores of the fakes the generator learns from: the highest `kept_share`."""
        scores = scores.flatten()
        kept = max(1, round(self.kept_share(batch_index) * len(scores)))
        return scores if kept >= len(scores) else scores.topk(kept).values

    @torch.no_grad()
    def update_ema(self) -> None:
        """Move the average towards the generator at decay min(ema_decay, (1 + t) / (ema_ramp + t)) after t updates:
        early on it follows faster, so the first epochs' samples are not dominated by the random initial weights,
        and its horizon (about t / (ema_ramp - 1) steps) grows with training until `ema_decay` caps it."""
        updates = int(self.ema_updates)
        decay = min(self.ema_decay, (1 + updates) / (self.ema_ramp + updates))
        for averaged, current in zip(self.ema.parameters(), self.generator.parameters(), strict=True):
            averaged.lerp_(current, 1 - decay)
        self.ema_updates += 1
        self._ema_statistics_current = False

    @torch.no_grad()
    def measure_ema_statistics(self) -> None:
        """The averaged generator's batch-norm statistics, measured on its own activations over seeded latents
        (BigGAN's "standing statistics", SWA's `update_bn`). The training generator's running statistics belong to
        other weights: copied onto the average, they normalise its activations by the wrong mean and variance."""
        norms = [module for module in self.ema.modules() if isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d)]
        momenta = [norm.momentum for norm in norms]
        was_training = self.ema.training
        self.ema.train()
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # a plain average over the batches below
        for index in range(STANDING_BATCHES if norms else 0):
            latents = self.latents(STANDING_BATCH_SIZE, STANDING_SEED + index)  # the latents it will be asked for
            labels = torch.arange(STANDING_BATCH_SIZE, device=self.device) % self.classes
            self.ema(latents, labels if self.conditional else None)
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
        self.ema.train(was_training)
        self._ema_statistics_current = True

    # --- validation: the Fréchet distance in the judge's features ----------------------------------
    def on_validation_epoch_start(self) -> None:
        if self.judge is None:
            raise UsageError(
                "the GAN has no judge to compute val/fd with.", "train it through python -m projects.gan train."
            )
        self.judge.to(self.device)
        self._frechet = FrechetInceptionDistance(feature=self.judge.feature_module).to(self.device)

    def validation_step(self, batch: list[torch.Tensor], batch_index: int) -> None:
        assert self._frechet is not None
        real, labels = batch[0], batch[1]
        self._frechet.update(real, real=True)
        fake = self.generate(self.latents(len(real), batch_index), labels)
        self._frechet.update(fake, real=False)

    def on_validation_epoch_end(self) -> None:
        assert self._frechet is not None
        self.log("val/fd", self._frechet.compute().float(), prog_bar=True)  # torchmetrics sums the states over ranks
        self._frechet = None

    # --- evaluation and the per-epoch grid ---------------------------------------------------------
    def predict_step(self, batch: list[torch.Tensor], batch_index: int) -> torch.Tensor:
        """As many samples as the batch has images, from seeded latents; a conditional model cycles through the
        classes. Each row: the class asked for (-1 for none), then the 784 pixels in [0, 1]."""
        count = len(batch[0])
        labels = torch.arange(count) % self.classes if self.conditional else torch.full((count,), -1)
        images = self.sample(count, PREDICT_SEED + batch_index, labels if self.conditional else None)
        pixels = ((images.float() + 1) / 2).clamp(0, 1).flatten(1)
        return torch.cat([labels.to(pixels.device, pixels.dtype)[:, None], pixels], dim=1)

    def grid(self) -> torch.Tensor:
        """The fixed latent batch's images in [0, 1] (rows of GRID_COLUMNS; one class per row when conditional)."""
        return ((self.generate(self.grid_noise, self.grid_labels).float().cpu() + 1) / 2).clamp(0, 1)[:, 0]

    def on_train_epoch_end(self) -> None:
        """The fixed grid after every epoch, under `plots/epochs/`, so progress can be seen at a glance."""
        if self.trainer.is_global_zero and not self.trainer.sanity_checking:
            path = Path(self.trainer.default_root_dir) / "plots" / "epochs" / f"epoch_{self.current_epoch + 1:03d}.png"
            save_mosaic(self.grid().numpy(), path, GRID_COLUMNS)
