"""The two networks and the three losses, kept small enough to read in one sitting.

`Generator`: DCGAN's (Radford et al. 2016) scaled to 28×28: a linear layer to a 7×7 map, two transposed
convolutions (7→14→28) with batch norm and ReLU, tanh out. Conditional: the class's embedding is concatenated
to the noise. `Discriminator`: two strided convolutions (28→14→7) with leaky ReLU and, by default, no batch norm
(the gradient penalty and spectral norm both want a per-sample function; `batch_norm` adds DCGAN's after the
second convolution), a linear score, and, when conditional,
Miyato & Koyama's (2018) projection: the score plus the inner product of the class's embedding with the
features. Images are N×1×28×28 in [-1, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from shared.errors import UsageError

LOSSES = ("bce", "hinge", "wgan_gp")


class Generator(nn.Module):
    """Noise (and a class) → a 28×28 image in [-1, 1]."""

    def __init__(
        self,
        latent_dim: int,
        width: int,
        classes: int | None = None,
        embed_dim: int = 32,
        full_resolution_conv: bool = False,
    ) -> None:
        super().__init__()
        self.latent_dim, self.classes = latent_dim, classes
        self.embed = nn.Embedding(classes, embed_dim) if classes else None
        inputs = latent_dim + (embed_dim if classes else 0)
        self.project = nn.Sequential(
            nn.Linear(inputs, 2 * width * 7 * 7, bias=False), nn.BatchNorm1d(2 * width * 7 * 7), nn.ReLU(True)
        )
        self.width = width
        # The last transposed convolution's stride leaves a checkerboard in its output (Odena et al. 2016); with
        # `full_resolution_conv` it keeps `width // 2` channels and a 3×3 convolution at 28×28 draws the image.
        last = (
            [
                nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False),  # 14 → 28
                nn.BatchNorm2d(width // 2),
                nn.ReLU(True),
                nn.Conv2d(width // 2, 1, 3, 1, 1),
            ]
            if full_resolution_conv
            else [nn.ConvTranspose2d(width, 1, 4, 2, 1)]  # 14 → 28
        )
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1, bias=False),  # 7 → 14
            nn.BatchNorm2d(width),
            nn.ReLU(True),
            *last,
            nn.Tanh(),
        )

    def forward(self, noise: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            noise = torch.cat([noise, self.embed(labels)], dim=1)
        return self.upsample(self.project(noise).view(-1, 2 * self.width, 7, 7))


class Discriminator(nn.Module):
    """A 28×28 image (and its class) → one realness score per image (a logit for `bce`, a critic value otherwise)."""

    def __init__(
        self,
        width: int,
        classes: int | None = None,
        spectral: bool = False,
        minibatch_stddev: bool = False,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        norm = spectral_norm if spectral else (lambda layer: layer)
        self.convolutions = nn.Sequential(
            norm(nn.Conv2d(1, width, 4, 2, 1)),  # 28 → 14
            nn.LeakyReLU(0.2, True),
            norm(nn.Conv2d(width, 2 * width, 4, 2, 1, bias=not batch_norm)),  # 14 → 7
            # DCGAN's batch norm after every convolution but the first: each batch is all real or all generated
            *([nn.BatchNorm2d(2 * width)] if batch_norm else []),
            nn.LeakyReLU(0.2, True),
        )
        self.stddev = MinibatchStddev() if minibatch_stddev else None
        size = (2 * width + (1 if minibatch_stddev else 0)) * 7 * 7
        self.score = norm(nn.Linear(size, 1))
        self.embed = norm(nn.Embedding(classes, size)) if classes else None

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        features = self.convolutions(images)
        if self.stddev is not None:
            features = self.stddev(features)
        features = features.flatten(1)
        score = self.score(features).squeeze(1)
        if self.embed is not None:
            score = score + (self.embed(labels) * features).sum(dim=1)
        return score


class MinibatchStddev(nn.Module):
    """Karras et al. 2018 (ProGAN): one more feature map holding how much the images of a small group differ.
    A generator that draws the same image whatever its noise gives groups with no spread, which the
    discriminator then sees directly: the cure for the mode collapse where each class has one face."""

    def __init__(self, group: int = 4) -> None:
        super().__init__()
        self.group = group

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        count, channels, height, width = features.shape
        group = min(self.group, count)
        while count % group:  # a last batch that the group size does not divide
            group -= 1
        grouped = features.view(group, -1, channels, height, width)
        # the variance across each group, written out: torch's var over the leading dimension is ~6x slower on a CPU
        variance = (grouped - grouped.mean(dim=0)).square().mean(dim=0)
        spread = variance.add(1e-8).sqrt().mean(dim=(1, 2, 3))  # one figure per group
        spread = spread.view(-1, 1, 1, 1).repeat(group, 1, height, width)
        return torch.cat([features, spread], dim=1)


def check_loss(loss: str) -> str:
    """The loss named by `model.loss`, or a `UsageError` listing the three."""
    if loss not in LOSSES:
        raise UsageError(f"model.loss={loss!r} is not a GAN loss here.", f"use one of: model.loss={', '.join(LOSSES)}.")
    return loss


def discriminator_loss(loss: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """What the discriminator minimises, from its scores of real and generated images (without the penalty)."""
    if loss == "bce":  # -log D(x) - log(1 - D(G(z))), D = sigmoid of the logit
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if loss == "hinge":  # Lim & Ye 2017, as in SN-GAN and BigGAN
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    return fake.mean() - real.mean()  # WGAN's critic (Arjovsky et al. 2017)


def generator_loss(loss: str, fake: torch.Tensor) -> torch.Tensor:
    """What the generator minimises: the non-saturating -log D(G(z)) for `bce`, the negated score otherwise."""
    return F.softplus(-fake).mean() if loss == "bce" else -fake.mean()


def gradient_penalty(
    critic: Discriminator, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor | None
) -> torch.Tensor:
    """Gulrajani et al. 2017: (‖∇D(x̂)‖ - 1)² at random points x̂ between real and generated images."""
    mix = torch.rand(real.shape[0], 1, 1, 1, device=real.device)
    between = (mix * real + (1 - mix) * fake).requires_grad_(True)
    (gradient,) = torch.autograd.grad(critic(between, labels).sum(), between, create_graph=True)
    return ((gradient.flatten(1).norm(dim=1) - 1) ** 2).mean()
