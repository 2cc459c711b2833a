"""The `train` flow every project shares: seed, load data, fit, evaluate, write the run."""

from __future__ import annotations

import logging
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from lightning import seed_everything
from omegaconf import DictConfig, OmegaConf

from shared.config import save_config
from shared.evaluate import evaluate_splits, format_metrics, write_plots
from shared.fitters import fitter_for
from shared.io import write_json
from shared.project import Project
from shared.reports import write_model_card
from shared.runs import CARD_FILE, CONFIG_FILE, METRICS_FILE, environment, git_commit

log = logging.getLogger(__name__)


def train(project: Project, cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Fit `cfg.model` on `cfg.data`, evaluate on val and test, and write the run directory.

    Returns the content of `metrics.json` (empty on non-zero ranks of a multi-process run).
    """
    seed_everything(cfg.seed, workers=True, verbose=False)
    if torch.cuda.is_available():
        torch.set_float32_matmul_precision("high")
    save_config(cfg, run_dir / CONFIG_FILE)
    data = project.build_data(cfg, cfg.paths)
    data.prepare()
    started = time.perf_counter()
    model = project.build_model(cfg, data)  # may fit on train already (a vocabulary, Word2Vec): training time
    preparing = time.perf_counter() - started
    fitter = fitter_for(model)
    log.info("run %s: %s on %s", run_dir, _target(cfg.model), _target(cfg.data))
    fit = fitter.fit(model, data, cfg, run_dir)
    if not fit.is_global_zero:
        return {}
    fitter.save(model, run_dir)
    # Every held-out split the data has: a project that cross-validates on train instead has no `val`.
    evaluations = evaluate_splits(project, fitter, model, data, cfg, [s for s in data.splits if s != "train"])
    plots = write_plots(project, run_dir, evaluations["test"], data, model, fit.history)
    metrics = {
        "project": project.name,
        "model": _target(cfg.model),
        "experiment": cfg.get("experiment_name"),
        "metrics": {name: value for evaluation in evaluations.values() for name, value in evaluation.metrics.items()},
        "train_seconds": round(preparing + fit.seconds, 3),
        "samples_per_second": round(fit.samples_per_second, 1),
        "epochs": fit.epochs,
        "parameters": fitter.parameter_count(model),
        "model_details": project.model_details(model),
        "seed": cfg.seed,
        "device": fit.device,
        "precision": fit.precision,
        "data": data.describe(),
        "versions": environment(),
        "git_commit": git_commit(),
        "finished_at": datetime.now().isoformat(timespec="seconds"),
    }
    write_model_card(
        run_dir / CARD_FILE,
        project=project.name,
        summary=project.summary,
        metrics=metrics,
        card={
            "model": _target(cfg.model).rsplit(".", 1)[-1],
            "model_details": {
                "class": _target(cfg.model),
                "parameters": metrics["parameters"] if metrics["parameters"] is not None else "n/a",
                **_flat(cfg.model),
                **metrics["model_details"],
            },
            "data": {"source": _target(cfg.data), **metrics["data"]},
            "training": {
                "epochs": fit.epochs if fit.epochs is not None else "n/a",
                "train seconds": metrics["train_seconds"],
                "samples per second": metrics["samples_per_second"],
                "device": fit.device,
                "precision": fit.precision,
                "seed": cfg.seed,
                "git commit": metrics["git_commit"] or "unknown",
            },
            "intended_use": project.intended_use,
            "limitations": project.limitations,
            "plots": plots,
            "reproduce": _reproduce_command(project),
        },
    )
    write_json(run_dir / METRICS_FILE, metrics)  # last: its presence marks the run as finished
    print(format_metrics(metrics["metrics"], title=f"{project.name} run {run_dir}"))
    return metrics


def _target(node: DictConfig) -> str:
    return str(node.get("_target_", "?"))


def _flat(node: DictConfig) -> dict[str, Any]:
    values = OmegaConf.to_container(node, resolve=True)
    assert isinstance(values, dict)
    return {key: value for key, value in values.items() if key != "_target_" and not isinstance(value, dict | list)}


def _reproduce_command(project: Project) -> str:
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    return " ".join(["python -m", f"projects.{project.name}", "train", *overrides])
