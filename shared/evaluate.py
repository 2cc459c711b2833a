"""Evaluation: a fitted model's outputs on named splits, scored by the project, then reported."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from shared.data import ProjectData
from shared.devices import inference_device
from shared.errors import UsageError
from shared.fitters import Fitter
from shared.io import OutputError, write_json
from shared.project import Evaluation, Project
from shared.reports import plot_learning_curves
from shared.runs import PLOTS_DIR, load_run

EVALUATIONS_DIR = "evaluations"  # <run>/evaluations/<split>/: evaluation.json and its plots

log = logging.getLogger(__name__)


def evaluate_splits(
    project: Project,
    fitter: Fitter,
    model: Any,
    data: ProjectData,
    splits: Sequence[str],
    device: torch.device | None = None,
) -> dict[str, Evaluation]:
    """Run the model on each split and score it; metric names get the split as prefix (`test/acc`).

    A metric the project did not declare (`Project.metrics`) is a bug in the project, and stops here.
    """
    declared = project.metrics_for(data)
    evaluations = {}
    for split in splits:
        inputs, targets = data.inputs(split), data.targets(split)
        outputs = project.outputs(fitter.predict(model, data, inputs, device))
        scores = project.score(data, split, outputs)
        scores |= corruption_scores(project, fitter, model, data, split, device)
        undeclared = declared.undeclared(list(scores))
        if undeclared:
            raise TypeError(f"{project.name} reports metrics it does not declare in `metrics`: {undeclared}")
        metrics = {f"{split}/{name}": float(value) for name, value in scores.items()}
        evaluations[split] = Evaluation(split, inputs, targets, outputs, metrics)
        log.info("%s: %s", split, ", ".join(f"{name} {value:.4f}" for name, value in metrics.items()))
    return evaluations


def corruption_scores(
    project: Project, fitter: Fitter, model: Any, data: ProjectData, split: str, device: torch.device | None
) -> dict[str, float]:
    """The headline metric on each corrupted copy of `split` the project makes (`gaussian_noise_acc`), and their
    mean (`corruption_acc`): how much of the model's score survives inputs worse than its test set."""
    headline = project.metrics_for(data).headline
    figures: dict[str, float] = {}
    for name, corrupted in project.corrupted_inputs(data, split):
        outputs = project.outputs(fitter.predict(model, data, corrupted, device))
        figures[f"{name}_{headline}"] = float(project.score(data, split, outputs)[headline])
        log.info("%s under %s: %s %.4f", split, name, headline, figures[f"{name}_{headline}"])
    if figures:
        figures[f"corruption_{headline}"] = sum(figures.values()) / len(figures)
    return figures


def write_plots(
    project: Project,
    run_dir: Path,
    evaluation: Evaluation | None,
    data: ProjectData,
    model: Any,
    history: Sequence[dict[str, float]] = (),
) -> list[str]:
    """Learning curves (when there is a history) and the project's own plots of `evaluation` (none without one: a
    trial of `tune` evaluates no test split); paths relative to the run."""
    plots_dir = run_dir / PLOTS_DIR
    written = [plot_learning_curves(history, plots_dir / "learning_curves.png")]
    if evaluation is not None:
        written += project.report(evaluation, plots_dir, data, model)
    return [str(Path(path).relative_to(run_dir)) for path in written if path]


def evaluate_command(project: Project, cfg: DictConfig) -> None:
    """`evaluate`: score a finished run's model on a split again, into `<run>/evaluations/<split>/`.

    The plots and metrics of training, which the model card shows, are left as they were. A run folder that
    cannot be written (read-only, someone else's) is scored all the same, and the result only printed.
    """
    run = load_run(project, cfg.get("run"), cfg.paths, inference_device(cfg.get("trainer")), cfg.get("data"))
    log.info("evaluating run %s", run.directory)
    data = run.prepared_data
    if cfg.split not in data.splits:
        raise UsageError(f"the run's data has no '{cfg.split}' split.", f"use split={' or split='.join(data.splits)}.")
    evaluations = evaluate_splits(project, run.fitter, run.model, data, [cfg.split], run.device)
    title = f"{project.name} {run.name} ({cfg.split})"
    destination = run.directory / EVALUATIONS_DIR / cfg.split
    try:
        if not os.access(run.directory, os.W_OK):
            raise OutputError(f"{run.directory} is read-only.")
        plots = write_plots(project, destination, evaluations[cfg.split], data, run.model)
        result = {
            "run": str(run.directory),
            "split": cfg.split,
            "metrics": evaluations[cfg.split].metrics,
            "plots": plots,
            "evaluated_at": datetime.now().isoformat(timespec="seconds"),
        }
        write_json(destination / "evaluation.json", result)
    except OutputError as error:
        log.warning("the evaluation is printed, not saved: %s", error.problem)
        print(format_metrics(evaluations[cfg.split].metrics, title=title))
        return
    print(format_metrics(evaluations[cfg.split].metrics, title=title) + f"\nsaved to {destination}")


def format_metrics(metrics: dict[str, float], title: str) -> str:
    """A small aligned table for the terminal."""
    width = max((len(name) for name in metrics), default=0)
    lines = [title, *(f"  {name:<{width}}  {value:.4f}" for name, value in metrics.items())]
    return "\n".join(lines)
