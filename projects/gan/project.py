"""The GAN as the core sees it: its description, declared metrics, data with a judge, plots, and `sample`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, open_dict

from projects.gan import evaluate
from projects.gan.data import GanImages
from projects.gan.judge import find_judge
from projects.gan.measure import GAN_METRICS, Samples, samples_from_rows
from projects.gan.module import Gan
from shared.config import build
from shared.data import ProjectData, data_options
from shared.project import Command, Evaluation, Project


class GanProject(Project):
    name = "gan"
    summary = (
        "Generative adversarial networks on 28×28 images: a DCGAN and a class-conditional GAN (MNIST, Fashion-MNIST)."
    )
    intended_use = (
        "Teaching and benchmarking how GANs are trained and measured: samples (`sample n=64 digit=7`), a grid "
        "after every epoch, and figures measured by a classifier this repository trained on the same data (the "
        "judge, an `mnist` run): a Fréchet distance in the judge's features beside its real-versus-real floor, "
        "precision and recall, conditional accuracy, and a memorisation check."
    )
    limitations = (
        "The Fréchet distance is computed in the judge's penultimate-layer features: it is NOT Inception FID "
        "(Inception-v3's), and its numbers do not compare with published FIDs. It depends on the judge and on "
        "the number of samples; compare it with the floor beside it, measured with the same judge and sample "
        "count. The images are 28×28 grey digits or clothes like the training data's; they are not for passing "
        "off as real data or handwriting."
    )
    metrics = GAN_METRICS

    def build_data(self, cfg: DictConfig, paths: DictConfig) -> ProjectData:
        """The data with its judge: `judge=` or the latest mnist run on the same dataset, written into the config
        before it is saved, so the run records (and `evaluate` reuses) the judge it was measured by."""
        judge = find_judge(cfg.data.get("judge"), paths.runs_dir, str(cfg.data.dataset))
        with open_dict(cfg):
            cfg.data.judge = str(judge)
            if "judge" in cfg:
                cfg.judge = str(judge)
        options = data_options(cfg.data)
        return build(options, mirror_dir=paths.get("mirror_dir"), cache_dir=paths.cache_dir, runs_dir=paths.runs_dir)

    def model_options(self, data: ProjectData) -> dict[str, Any]:
        assert isinstance(data, GanImages)
        return {"classes": len(data.class_names)}

    def build_model(self, cfg: DictConfig, data: ProjectData) -> Any:
        model = super().build_model(cfg, data)
        assert isinstance(model, Gan) and isinstance(data, GanImages)
        model.judge = data.judge  # for val/fd during training; not saved with the weights
        return model

    def outputs(self, raw: np.ndarray) -> Samples:
        return samples_from_rows(raw)

    def score(self, data: ProjectData, split: str, outputs: Samples) -> dict[str, float]:
        assert isinstance(data, GanImages)
        return evaluate.score(data, split, outputs)

    def report(self, evaluation: Evaluation, plots_dir: Path, data: ProjectData, model: Any) -> list[Path]:
        assert isinstance(data, GanImages) and isinstance(model, Gan)
        return evaluate.report(model, data, evaluation.outputs, plots_dir)

    def commands(self) -> dict[str, Command]:
        from projects.gan.sample import sample_command

        return {
            "sample": Command(
                "sample", "write generated images: n=64 [digit=7] output=grid.png|folder/|samples.npy", sample_command
            )
        }
