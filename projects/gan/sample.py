"""`python -m projects.gan sample n=64 [digit=7] output=grid.png|folder/|samples.npy`: a finished run's samples.

The averaged (EMA) generator draws `n` images from seeded latents (`seed=`): a conditional run draws `digit`,
or every class in turn; the latents lie within ±`truncation=` when given, else as the run samples. `.png`: one
grid; `.npy`: an N×28×28 uint8 array (what `mnist predict` reads); a folder (a path ending in `/`, or without a
suffix): one PNG per sample, named `<index>_<class>.png`. Nothing is left half-written: files are replaced
atomically, and a folder is filled beside its place and moved in whole.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from projects.gan.module import Gan
from projects.gan.plots import save_mosaic, save_png
from shared import checks
from shared.devices import inference_device
from shared.errors import UsageError
from shared.io import OutputError, atomic_path
from shared.project import Project
from shared.runs import load_run

FORMATS = "a .png grid, a .npy array, or a folder/ of PNGs"


def output_kind(output: str | None) -> str:
    """`grid`, `array` or `folder` for an `output=` value; anything else is a `UsageError`."""
    if not output:
        raise UsageError(
            "sample needs output=.", f"pass {FORMATS}: output=grid.png, output=samples.npy or output=out/."
        )
    path = Path(output)
    if output.endswith(("/", os.sep)) or path.is_dir() or not path.suffix:
        return "folder"
    kinds = {".png": "grid", ".npy": "array"}
    if path.suffix.lower() not in kinds:
        raise UsageError(
            f"output={output} is not {FORMATS}.", "use output=grid.png, output=samples.npy or output=out/."
        )
    return kinds[path.suffix.lower()]


def asked_labels(model: Gan, digit: object, count: int, run_dir: Path) -> torch.Tensor | None:
    """The class of every sample: `digit` for all, each class in turn, or none for an unconditional run."""
    if digit is None:
        return torch.arange(count) % model.classes if model.conditional else None
    if not model.conditional:
        raise UsageError(
            f"the run {run_dir} is an unconditional GAN (model=dcgan): it cannot be asked for digit={digit}.",
            "drop digit=, or sample a conditional run: python -m projects.gan train model=cgan",
        )
    value = checks.whole(digit, "digit", minimum=0, example=7)
    if value >= model.classes:
        raise UsageError(f"digit={digit} is not a class of this run (0 to {model.classes - 1}).", "use digit=7.")
    return torch.full((count,), value)


def write_folder(images: np.ndarray, labels: torch.Tensor | None, folder: Path) -> None:
    """One PNG per image, written into a fresh folder beside `folder` and moved into place whole."""
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise UsageError(
            f"output={folder} exists and is not an empty folder.", "choose a new folder, e.g. output=samples/."
        )
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    except OSError as error:
        raise OutputError(
            f"cannot write {folder}: {error.strerror or error}.", "choose a folder you can write."
        ) from error
    try:
        width = len(str(len(images) - 1))
        for index, image in enumerate(images):
            label = "" if labels is None else f"_{int(labels[index])}"
            save_png(np.round(image * 255).astype(np.uint8), staging / f"{index:0{width}d}{label}.png")
        if folder.exists():
            folder.rmdir()
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def sample_command(project: Project, cfg: DictConfig) -> None:
    """Load the run, draw the samples, write them in the asked format."""
    count = checks.whole(cfg.n, "n", example=64)
    kind = output_kind(cfg.get("output"))
    seed = checks.seed(cfg.seed, "seed")
    run = load_run(project, cfg.get("run"), cfg.paths, inference_device(cfg.get("trainer")))
    model = run.model
    assert isinstance(model, Gan), type(model)
    model.to(run.device)
    if cfg.get("truncation") is not None:
        model.use_truncation(cfg.truncation)
    labels = asked_labels(model, cfg.get("digit"), count, run.directory)
    images = ((model.sample(count, seed, labels).float().cpu() + 1) / 2).clamp(0, 1)[:, 0].numpy()
    output = Path(str(cfg.output)).expanduser()
    if kind == "grid":
        save_mosaic(images, output, columns=math.ceil(math.sqrt(count)))
    elif kind == "array":
        with atomic_path(output) as temporary:
            np.save(temporary, np.round(images * 255).astype(np.uint8))
    else:
        write_folder(images, labels, output)
    print(f"{count} samples of {run.directory} → {output}")
