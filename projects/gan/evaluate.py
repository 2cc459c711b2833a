"""The GAN's scores of one held-out split, and its pictures: the final grid, one class per row, interpolations,
and samples beside their nearest training images."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from projects.gan import measure
from projects.gan.data import GanImages
from projects.gan.measure import Samples
from projects.gan.module import GRID_COLUMNS, Gan
from projects.gan.plots import interpolation_latents, save_mosaic

log = logging.getLogger(__name__)
INTERPOLATION_ROWS, INTERPOLATION_STEPS = 8, 10


def score(data: GanImages, split: str, samples: Samples) -> dict[str, float]:
    """Every figure of `measure` for the samples against `split`, with the floor and the ratio beside the distance."""
    judge = data.judge
    held_out, reference = data.inputs(split), data.reference(split)
    fake = measure.to_gan_images(samples.images)
    distances = measure.frechet_distances(judge.feature_module, held_out, {"fd": fake, "fd_floor": reference})
    scores = {**distances, "fd_ratio": distances["fd"] / max(distances["fd_floor"], 1e-12)}
    count = min(data.measure_samples, len(fake), len(held_out))
    chosen = torch.from_numpy(np.random.default_rng(0).permutation(len(fake))[:count])
    real_features = judge.features(held_out[:count])
    fake_features = judge.features(fake[chosen])
    scores["precision"], scores["recall"] = measure.precision_recall(real_features, fake_features)
    # their ceiling: as many real training images in place of the samples (a perfect generator's figures)
    reference_features = judge.features(reference[:count])
    scores["precision_real"], scores["recall_real"] = measure.precision_recall(real_features, reference_features)
    scores |= measure.memorisation(fake[chosen], reference[:count], held_out[:count])
    probabilities = judge.probabilities(fake)
    scores["judge_confidence"] = float(probabilities.max(axis=1).mean())
    scores["judge_acc"] = float((judge.probabilities(held_out).argmax(axis=1) == data.targets(split)).mean())
    if samples.labels is not None:
        scores |= measure.conditional_accuracy(probabilities, samples.labels)
    log.info(
        "%s: Fréchet distance %.3f, floor %.3f (%.2f× the floor), in the judge's features (not Inception FID)",
        split,
        scores["fd"],
        scores["fd_floor"],
        scores["fd_ratio"],
    )
    return scores


def report(model: Gan, data: GanImages, samples: Samples, plots_dir: Path) -> list[Path]:
    """The final fixed grid (one class per row for the conditional model), interpolations, and the nearest
    training image under each of a row of samples."""
    written = [save_mosaic(model.grid().numpy(), plots_dir / "samples.png", GRID_COLUMNS)]
    written.append(interpolations(model, plots_dir / "interpolations.png"))
    written.append(nearest_training_images(data, samples, plots_dir / "nearest_training_images.png"))
    return written


def interpolations(model: Gan, path: Path) -> Path:
    """Each row walks the latent space between two fixed latents (the same class along a conditional row)."""
    start, end = model.latents(INTERPOLATION_ROWS, seed=7).cpu(), model.latents(INTERPOLATION_ROWS, seed=8).cpu()
    latents = interpolation_latents(start, end, INTERPOLATION_STEPS)
    labels = (torch.arange(INTERPOLATION_ROWS) % model.classes).repeat_interleave(INTERPOLATION_STEPS)
    images = ((model.generate(latents, labels if model.conditional else None).float().cpu() + 1) / 2).clamp(0, 1)
    return save_mosaic(images[:, 0].numpy(), path, INTERPOLATION_STEPS)


def nearest_training_images(data: GanImages, samples: Samples, path: Path, count: int = GRID_COLUMNS) -> Path:
    """Odd rows: samples; even rows: the nearest training image (pixels) to the sample above it."""
    fake = measure.to_gan_images(samples.images[:count])
    train = data.inputs("train")
    nearest = torch.stack([_nearest(image, train) for image in fake])
    rows = np.concatenate([(fake[:, 0].numpy() + 1) / 2, (nearest[:, 0].numpy() + 1) / 2])
    return save_mosaic(rows, path, count)


def _nearest(image: torch.Tensor, train: torch.Tensor) -> torch.Tensor:
    distances = torch.cat([(chunk - image).flatten(1).norm(dim=1) for chunk in train.split(10_000)])
    return train[int(distances.argmin())]
