"""The judge: a classifier this repository trained (an `mnist` run) that measures the generated images.

Its penultimate layer (`ExtractsFeatures.features`) is the space the Fréchet distance, precision and recall are
computed in, and its softmax says which class a sample looks like. It is loaded through the core's `load_run`
like any finished run. It is not Inception-v3: its distances do not compare with published FIDs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import nn

from shared.capabilities import ExtractsFeatures
from shared.data import ImageSplits
from shared.errors import RunNotFoundError, UsageError
from shared.registry import load_project
from shared.runs import Run, load_run, read_metrics, successful_runs

JUDGE_PROJECT = "mnist"


def train_judge_command(dataset: str) -> str:
    """The command that trains a judge for `dataset` (a data config of the mnist project of the same name)."""
    return f"python -m projects.{JUDGE_PROJECT} train" + ("" if dataset == "mnist" else f" data={dataset}")


def find_judge(asked: str | None, runs_dir: str | Path, dataset: str) -> Path:
    """The judge's run folder: `asked` when given, else the latest finished mnist run trained on `dataset` whose
    network extracts features. None found is a `RunNotFoundError` whose fix is the command that trains one."""
    if asked:
        return Path(asked).expanduser()
    for directory in reversed(successful_runs(runs_dir, JUDGE_PROJECT)):
        metrics = read_metrics(directory)
        if (metrics.get("data") or {}).get("dataset id") == dataset and (directory / "model.ckpt").is_file():
            return directory
    raise RunNotFoundError(
        f"no judge for {dataset}: the GAN is measured by a classifier trained on the same data, and there is no "
        f"finished {JUDGE_PROJECT} run on {dataset} under {Path(runs_dir).expanduser() / JUDGE_PROJECT}.",
        f"train one first: {train_judge_command(dataset)}  (or pass judge=<an mnist run folder>)",
    )


class JudgeFeatures(nn.Module):
    """The judge's `features(x)` on GAN images in [-1, 1]: the custom feature module torchmetrics'
    `FrechetInceptionDistance` takes (it reads `num_features` rather than probing with a 299×299 image).
    `to_inputs` turns GAN images into the judge's inputs, as its own data normalises its images."""

    def __init__(self, network: ExtractsFeatures, to_inputs: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        assert isinstance(network, nn.Module)
        self.network = network.eval().requires_grad_(False)
        self.to_inputs = to_inputs
        with torch.no_grad():
            self.num_features = int(network.features(torch.zeros(1, 1, 28, 28)).shape[1])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network.features(self.to_inputs(images.float())).float()

    def train(self, mode: bool = True) -> JudgeFeatures:
        return super().train(False)  # always measured in eval mode (batch norm's running statistics, no dropout)


class Judge:
    """A loaded mnist run as a measuring instrument: features and class probabilities of GAN images."""

    def __init__(self, run: Run) -> None:
        if not isinstance(run.model, ExtractsFeatures):
            raise UsageError(
                f"the judge {run.directory} is a {type(run.model).__name__}, which gives no features to measure in.",
                "pass judge=<an mnist run of the default CNN>, or train one: python -m projects.mnist train",
            )
        data = run.data
        if not isinstance(data, ImageSplits):
            raise UsageError(
                f"the judge {run.directory} was trained on {type(data).__name__}, which holds no images to learn.",
                "pass judge=<an mnist run folder>.",
            )
        self.directory = run.directory
        self.dataset = (run.metrics.get("data") or {}).get("dataset id")
        self.test_accuracy = (run.metrics.get("metrics") or {}).get("test/acc")
        self.data = data  # the images the GAN learns, split as the GAN's config asks
        self.feature_module = JudgeFeatures(run.model, self.to_inputs)

    def to_inputs(self, images: torch.Tensor) -> torch.Tensor:
        """GAN images in [-1, 1] as the judge's inputs: [0, 1] pixels, normalised as its data does."""
        return self.data.model_inputs((images + 1) / 2)

    def to(self, device: torch.device) -> Judge:
        self.feature_module.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.feature_module.parameters()).device

    @torch.no_grad()
    def features(self, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """(N, D) features of N×1×28×28 images in [-1, 1], on the CPU."""
        parts = [self.feature_module(batch.to(self.device)).cpu() for batch in images.split(batch_size)]
        return torch.cat(parts)

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor, batch_size: int = 1000) -> np.ndarray:
        """(N, classes) softmax of the judge for images in [-1, 1]."""
        network = self.feature_module.network
        parts = [
            torch.softmax(network(self.to_inputs(batch.to(self.device))).float(), dim=1).cpu()
            for batch in images.split(batch_size)
        ]
        return torch.cat(parts).numpy()


def load_judge(
    directory: str | Path, paths: Mapping[str, Any], dataset: str, data_patches: Mapping[str, Any] | None = None
) -> Judge:
    """The judge of `directory`, loaded through the core's run object, its data config patched by `data_patches`
    (the GAN's own split); one trained on other data is refused. `paths`: runs_dir, mirror_dir, cache_dir."""
    try:  # the judge's project through the registry; its data read from the mirror and cache named by `paths`
        patches = OmegaConf.create(dict(data_patches)) if data_patches else None
        run = load_run(load_project(JUDGE_PROJECT), str(directory), OmegaConf.create(dict(paths)), data=patches)
    except RunNotFoundError as error:
        raise RunNotFoundError(
            f"the judge {directory} cannot be used: {error.problem}",
            f"pass judge=<an mnist run folder>, or train one: {train_judge_command(dataset)}",
        ) from error
    trained_on = (run.metrics.get("data") or {}).get("dataset id")
    if trained_on != dataset:  # checked before its data are built with this GAN's patches
        raise UsageError(
            f"the judge {directory} was trained on {trained_on or 'unrecorded data'}, and this GAN learns "
            f"{dataset}: its features would measure the wrong thing.",
            f"pass judge=<an mnist run on {dataset}>, or train one: {train_judge_command(dataset)}",
        )
    return Judge(run)
