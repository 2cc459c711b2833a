"""Evaluation: a fitted model's outputs on named splits, scored by the project, then reported."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from shared.data import ProjectData
from shared.fitters import Fitter, LightningFitter, SklearnFitter
from shared.io import write_json
from shared.project import Evaluation, Project
from shared.reports import plot_learning_curves
from shared.runs import PLOTS_DIR, resolve_run

log = logging.getLogger(__name__)


def evaluate_splits(
    project: Project, fitter: Fitter, model: Any, data: ProjectData, cfg: DictConfig, splits: Sequence[str]
) -> dict[str, Evaluation]:
    """Run the model on each split and score it; metric names get the split as prefix (`test/acc`)."""
    evaluations = {}
    for split in splits:
        inputs, targets = data.inputs(split), data.targets(split)
        outputs = fitter.predict(model, data, inputs, cfg)
        scores = project.score(targets, outputs)
        metrics = {f"{split}/{name}": float(value) for name, value in scores.items()}
        evaluations[split] = Evaluation(split, inputs, targets, outputs, metrics)
        log.info("%s: %s", split, ", ".join(f"{name} {value:.4f}" for name, value in metrics.items()))
    return evaluations


def write_plots(
    project: Project,
    run_dir: Path,
    evaluation: Evaluation,
    data: ProjectData,
    model: Any,
    history: Sequence[dict[str, float]] = (),
) -> list[str]:
    """Learning curves (when there is a history) and the project's own plots; paths relative to the run."""
    plots_dir = run_dir / PLOTS_DIR
    written = [plot_learning_curves(history, plots_dir / "learning_curves.png")]
    written += project.report(evaluation, plots_dir, data, model)
    return [str(Path(path).relative_to(run_dir)) for path in written if path]


def fitter_of_run(run_dir: Path) -> Fitter:
    """The fitter that saved the run's model, known from the artifact it left."""
    for fitter in (LightningFitter(), SklearnFitter()):
        if (run_dir / fitter.artifact).is_file():
            return fitter
    raise FileNotFoundError(f"no saved model in {run_dir}")


def evaluate_command(project: Project, cfg: DictConfig) -> None:
    """`evaluate`: score a finished run's model on a split again and refresh its plots."""
    from shared.config import load_run_config

    run_dir = resolve_run(cfg.get("run"), cfg.paths.runs_dir, project.name)
    log.info("evaluating run %s", run_dir)
    train_cfg = load_run_config(run_dir)
    fitter = fitter_of_run(run_dir)
    model = fitter.load(train_cfg.model, run_dir)
    data = project.build_data(train_cfg, cfg.paths)
    data.prepare()
    evaluations = evaluate_splits(project, fitter, model, data, cfg, [cfg.split])
    plots = write_plots(project, run_dir, evaluations[cfg.split], data, model)
    result = {
        "run": str(run_dir),
        "split": cfg.split,
        "metrics": evaluations[cfg.split].metrics,
        "plots": plots,
        "evaluated_at": datetime.now().isoformat(timespec="seconds"),
    }
    write_json(run_dir / "evaluation.json", result)
    print(format_metrics(evaluations[cfg.split].metrics, title=f"{project.name} {run_dir.name} ({cfg.split})"))


def format_metrics(metrics: dict[str, float], title: str) -> str:
    """A small aligned table for the terminal."""
    width = max((len(name) for name in metrics), default=0)
    lines = [title, *(f"  {name:<{width}}  {value:.4f}" for name, value in metrics.items())]
    return "\n".join(lines)
