"""How good the samples are, measured with the judge rather than eyeballed.

- **Fréchet distance** (Heusel et al. 2017's FID, computed by torchmetrics) between samples and real held-out
  images in the judge's penultimate-layer features. It is *not* Inception FID: the numbers do not compare with
  published FIDs. Beside it, the **floor**: the same distance between as many real training images and the same
  held-out images (what a perfect generator would score with this many samples), and the ratio of the two.
- **Precision and recall** (Kynkäänniemi et al. 2019): the share of samples inside the real images' k-nearest-
  neighbour manifold in judge features (quality), and of real images inside the samples' (diversity).
- **Memorisation**: each sample's pixel distance to its nearest training image against its nearest held-out image
  (as many of each). A generator that copies training images is much nearer the training set.
- **Conditional accuracy**: how often the judge recognises the class a sample was asked to be, per class and
  overall, and the judge's mean confidence; beside it, the judge's own accuracy on the real held-out images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance

from shared.metrics import MAX, MIN, NEITHER, Goal, Metrics

K_NEAREST = 3  # Kynkäänniemi et al.'s choice
CHUNK = 1024  # rows of a distance matrix computed at once
CLASSES = 10
GOALS: dict[str, Goal] = {
    "fd": MIN,
    "fd_floor": NEITHER,  # a property of the data and the sample size, not of the model
    "fd_ratio": MIN,
    "precision": MAX,
    "recall": MAX,
    "precision_real": NEITHER,  # real training images in place of the samples: what a perfect generator scores
    "recall_real": NEITHER,
    "nn_train": NEITHER,
    "nn_held_out": NEITHER,
    "nn_ratio": NEITHER,  # about 1 for a generator that does not copy; near 0 for one that does
    "closer_to_train": NEITHER,  # about 0.5 for one that does not copy; near 1 for one that does
    "judge_confidence": MAX,
    "judge_acc": NEITHER,
    "cond_acc": MAX,
    **{f"cond_acc_{index}": MAX for index in range(CLASSES)},
}
GAN_METRICS = Metrics("fd", GOALS)


@dataclass
class Samples:
    """Generated images (N×28×28 in [0, 1]) and the class each was asked to be (None: unconditional)."""

    images: np.ndarray
    labels: np.ndarray | None


def samples_from_rows(raw: np.ndarray) -> Samples:
    """`Gan.predict_step`'s rows (the class asked for, -1 for none, then 784 pixels) as `Samples`."""
    labels = raw[:, 0].round().astype(np.int64)
    return Samples(raw[:, 1:].reshape(-1, 28, 28).astype(np.float32), None if (labels < 0).all() else labels)


def to_gan_images(images: np.ndarray) -> torch.Tensor:
    """[0, 1] N×28×28 arrays to N×1×28×28 tensors in [-1, 1]."""
    return torch.from_numpy(np.asarray(images, np.float32) * 2 - 1).unsqueeze(1)


def frechet_distances(
    features: nn.Module, held_out: torch.Tensor, candidates: dict[str, torch.Tensor], batch_size: int = 1000
) -> dict[str, float]:
    """The Fréchet distance of each candidate set to `held_out`, in `features` (a module with `num_features`),
    by torchmetrics; the held-out statistics are computed once and kept across candidates."""
    metric = FrechetInceptionDistance(feature=features, reset_real_features=False).to(
        next(features.parameters()).device
    )
    device = metric.device
    with torch.no_grad():
        for batch in held_out.split(batch_size):
            metric.update(batch.to(device), real=True)
        distances = {}
        for name, images in candidates.items():
            metric.reset()
            for batch in images.split(batch_size):
                metric.update(batch.to(device), real=False)
            distances[name] = float(metric.compute())
    return distances


def _pairwise(points: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
    return torch.cdist(points.double(), others.double())


def knn_radii(points: torch.Tensor, k: int = K_NEAREST) -> torch.Tensor:
    """Each point's distance to its k-th nearest other point: the radius of its ball in the manifold estimate."""
    radii = [_pairwise(chunk, points).kthvalue(k + 1, dim=1).values for chunk in points.split(CHUNK)]  # +1: itself
    return torch.cat(radii)


def share_inside(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> float:
    """The share of `points` inside at least one ball (a centre with its radius)."""
    inside = [(_pairwise(chunk, centres) <= radii[None]).any(dim=1) for chunk in points.split(CHUNK)]
    return float(torch.cat(inside).double().mean())


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = K_NEAREST) -> tuple[float, float]:
    """Kynkäänniemi et al. 2019: precision = share of fake points in the real manifold, recall = share of real
    points in the fake manifold; each manifold the union of balls reaching every point's k-th neighbour."""
    return share_inside(fake, real, knn_radii(real, k)), share_inside(real, fake, knn_radii(fake, k))


def nearest_distances(points: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
    """Each point's Euclidean distance to its nearest row of `others` (rows flattened)."""
    points, others = points.flatten(1), others.flatten(1)
    return torch.cat([_pairwise(chunk, others).min(dim=1).values for chunk in points.split(CHUNK)]).float()


def memorisation(samples: torch.Tensor, train: torch.Tensor, held_out: torch.Tensor) -> dict[str, float]:
    """Nearest-training-image against nearest-held-out-image distances (pixels in [0, 1]), with as many of each."""
    to_train, to_held_out = nearest_distances(samples, train), nearest_distances(samples, held_out)
    return {
        "nn_train": float(to_train.mean()),
        "nn_held_out": float(to_held_out.mean()),
        "nn_ratio": float(to_train.mean() / to_held_out.mean().clamp_min(1e-12)),
        "closer_to_train": float((to_train < to_held_out).double().mean()),
    }


def conditional_accuracy(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """How often the judge's top class is the one asked for: overall and per class (`cond_acc_<k>`)."""
    correct = probabilities.argmax(axis=1) == labels
    scores = {"cond_acc": float(correct.mean())}
    for index in range(probabilities.shape[1]):
        asked = labels == index
        if asked.any():
            scores[f"cond_acc_{index}"] = float(correct[asked].mean())
    return scores
