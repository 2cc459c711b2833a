"""The `train` flow every project shares: seed, load data, fit, evaluate, write the run."""

from __future__ import annotations

import logging
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from lightning import LightningModule, seed_everything
from omegaconf import DictConfig, OmegaConf, open_dict

from shared.capabilities import Describes
from shared.checks import seed
from shared.config import CONFIG_FILE, save_config
from shared.data import ProjectData
from shared.devices import inference_device
from shared.errors import PortfolioError, UsageError
from shared.evaluate import evaluate_splits, format_metrics, write_plots
from shared.fitters import LightningFitter, first_line, fitter_for, read_plain_checkpoint
from shared.io import write_json
from shared.metrics import Goal, Metrics
from shared.monitor.reference import write_reference
from shared.project import Evaluation, Project
from shared.provenance import environment, git_commit
from shared.reports import write_model_card
from shared.runs import CARD_FILE, METRICS_FILE, read_metrics, resolve_run
from shared.tune.trial import CV_PREFIX, TrialOptions, cross_validated_scores

log = logging.getLogger(__name__)


def train(project: Project, cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Fit `cfg.model` on `cfg.data`, evaluate on every held-out split, and write the run directory.

    Returns the content of `metrics.json` (empty on non-zero ranks of a multi-process run).
    """
    if seed(cfg.seed, "seed") >= 2**32:
        raise UsageError(f"seed={cfg.seed} is too large for the random generators.", "use a seed below 2**32.")
    seed_everything(cfg.seed, workers=True, verbose=False)
    if torch.cuda.is_available():
        torch.set_float32_matmul_precision("high")
    data = project.build_data(cfg, cfg.paths)
    declared = project.metrics_for(data)
    choose_monitor(cfg, data, declared)
    save_config(cfg, run_dir / CONFIG_FILE)
    data.prepare()
    extra_rows = add_extra_rows(data, cfg.data.get("extra"))
    started = time.perf_counter()
    model = project.build_model(cfg, data)  # may fit on train already (a vocabulary, Word2Vec): training time
    preparing = time.perf_counter() - started
    initialised_from = initialise_from(project, model, cfg)
    fitter = fitter_for(model)
    trial = TrialOptions.of(cfg)
    if trial.number is not None and isinstance(fitter, LightningFitter) and "val" not in data.splits:
        raise UsageError(
            f"a trial of a Lightning model is scored on val/{declared.headline}; this data has no validation split.",
            "give the data a validation split in the search's overrides, or tune a scikit-learn model.",
        )
    identity = run_identity()
    log.info("run %s: %s", run_dir, ", ".join(f"{k}={v}" for k, v in identity["choices"].items() if v) or "defaults")
    fit = fitter.fit(model, data, cfg, run_dir)
    if not fit.is_global_zero:
        return {}
    fitter.save(model, run_dir)
    # Every held-out split the data has (a project that cross-validates on train instead has no `val`); a trial
    # of `tune` leaves test unread.
    held_out = [split for split in data.splits if split != "train" and (trial.evaluate_test or split != "test")]
    evaluations = evaluate_splits(project, fitter, model, data, held_out, inference_device(cfg.trainer))
    scores = {name: value for evaluation in evaluations.values() for name, value in evaluation.metrics.items()}
    if trial.cv_folds:
        scores |= cross_validated_scores(project, fitter, model, data, trial.cv_folds, cfg.seed)
    # The project's plots are of the test evaluation: a trial gets its learning curves alone.
    plots = write_plots(project, run_dir, evaluations.get("test"), data, model, fit.history)
    reference = None
    if trial.number is None:  # a trial of `tune` is scored and thrown away; the retrained best gets a reference
        reference = monitoring_reference(project, model, data, evaluations.get("test"), run_dir, cfg.seed)
    details = model.details() if isinstance(model, Describes) else {}
    metrics = {
        "project": project.name,
        "model": _target(cfg.model),
        "experiment": cfg.get("experiment_name"),
        **identity,
        **({"trial": trial.record()} if trial.number is not None else {}),
        "headline": f"{_headline_split(evaluations, scores)}/{declared.headline}",
        "metrics": scores,
        "goals": {name: str(declared.goal(name)) for name in scores},
        "monitor": OmegaConf.to_container(cfg.monitor),
        "train_seconds": round(preparing + fit.seconds, 3),
        "samples_per_second": round(fit.samples_per_second, 1),
        "epochs": fit.epochs,
        "parameters": fitter.parameter_count(model),
        "model_details": details,
        "seed": cfg.seed,
        "device": fit.device,
        "precision": fit.precision,
        "data": {**data.describe(), **({"extra train rows": extra_rows} if extra_rows else {})},
        "init_from": initialised_from,
        "monitoring_reference": reference.name if reference else None,
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
            "model": identity["choices"].get("model") or _target(cfg.model).rsplit(".", 1)[-1],
            "model_details": {
                "class": _target(cfg.model),
                "parameters": metrics["parameters"] if metrics["parameters"] is not None else "n/a",
                **_flat(cfg.model),
                **details,
            },
            "identity": {
                **{f"{group}=": choice for group, choice in identity["choices"].items()},
                "overrides": " ".join(identity["overrides"]) or "none",
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
            "reproduce": _reproduce_command(project, identity["overrides"]),
        },
    )
    write_json(run_dir / METRICS_FILE, metrics)  # last: its presence marks the run as finished
    print(format_metrics(metrics["metrics"], title=f"{project.name} run {run_dir}"))
    return metrics


def add_extra_rows(data: ProjectData, extra: Any) -> int:
    """`data.extra=FILE|FOLDER`: its labelled rows appended to the (prepared) train split; how many were added. The
    data checks the form (a file of rows, a folder of labelled images)."""
    if not extra:
        return 0
    path = Path(str(extra)).expanduser()
    if not path.exists():
        raise UsageError(f"data.extra={extra} does not exist.", "pass labelled rows in the project's input format.")
    added = data.add_train_rows(path)
    log.info("data.extra: %d labelled rows from %s added to the train split", added, path)
    return added


def initialise_from(project: Project, model: Any, cfg: DictConfig) -> str | None:
    """`init_from=RUN`: load a finished run's network weights into the freshly built model before it is fitted.

    Refused for scikit-learn models (they always fit from scratch: refit on old plus new rows with `data.extra=`),
    for a run of another project, and for weights that do not fit this model (another architecture or size).
    """
    given = cfg.get("init_from")
    if not given:
        return None
    if cfg.get("resume"):
        raise UsageError("train got both resume= and init_from=.", "resume an interrupted run, or start a new one.")
    if not isinstance(model, LightningModule):
        raise UsageError(
            f"init_from= starts a network from a run's weights; {type(model).__name__} is a scikit-learn model, which "
            "always fits from scratch.",
            "drop init_from=, and refit on the old plus the new rows with data.extra=FILE.",
        )
    directory = resolve_run(str(given), cfg.paths.runs_dir, project.name)
    owner = read_metrics(directory).get("project")
    if owner != project.name:
        raise UsageError(
            f"init_from={given} is a run of '{owner}', not of {project.name}.", "pass a run of this project."
        )
    path = directory / LightningFitter.artifact
    if not path.is_file():
        raise UsageError(
            f"init_from={given} holds no network weights ({LightningFitter.artifact}): a scikit-learn run.",
            "pass a run of a Lightning model (the same model= as this one).",
        )
    checkpoint = read_plain_checkpoint(path, "started from", "pass init_from=<another finished run>.")
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except (RuntimeError, KeyError, TypeError) as error:  # missing or unexpected keys, other shapes
        raise UsageError(
            f"the weights of {directory} do not fit this model ({first_line(error)}): another architecture or size.",
            "pass init_from=<a run of the same model and options>, or drop init_from=.",
        ) from error
    log.info("initialised from the weights of %s", directory)
    return str(directory)


def monitoring_reference(
    project: Project, model: Any, data: ProjectData, test: Evaluation | None, run_dir: Path, seed: int
) -> Path | None:
    """The run's `reference.npz` for `monitor`. A failure here costs the reference, with a warning, not the run."""
    try:
        return write_reference(project, model, data, test.outputs if test is not None else None, run_dir, seed)
    except PortfolioError as error:
        log.warning("no monitoring reference: %s", error)
    except Exception as error:  # a bug in a project's features: the trained model is still worth keeping
        log.warning("no monitoring reference (%s: %s); `monitor` will ask for reference=", type(error).__name__, error)
    return None


def choose_monitor(cfg: DictConfig, data: ProjectData, declared: Metrics) -> None:
    """Set `cfg.monitor` (what checkpointing and early stopping watch): as configured, else the validation
    headline (`val/<headline>`, its declared direction), else nothing when the data has no `val` split."""
    configured = cfg.get("monitor") or {}
    metric = configured.get("metric")
    if metric is None and "val" in data.splits:
        metric = f"val/{declared.headline}"
    if metric is not None and "val" not in data.splits:
        raise UsageError(
            f"monitor.metric={metric} needs a validation split, and this data has none.",
            "drop the monitor override, or give the data a validation split.",
        )
    mode = configured.get("mode")
    if metric is not None and mode is None:
        goal = declared.goal(metric)
        if goal not in (Goal.MAX, Goal.MIN):
            raise UsageError(f"monitor.metric={metric} has no direction.", "set monitor.mode=max or monitor.mode=min.")
        mode = str(goal)
    callbacks = cfg.get("callbacks") or {}
    if metric is None and callbacks.get("early_stopping"):
        raise UsageError(
            "early stopping needs a monitored validation metric, and this data has no validation split.",
            "use callbacks=default, or give the data a validation split.",
        )
    with open_dict(cfg):
        cfg.monitor = {"metric": metric, "mode": mode or "min"}  # without a metric the mode is never read
        if metric is None and callbacks.get("model_checkpoint") and callbacks.get("last_checkpoint"):
            del cfg.callbacks["model_checkpoint"]  # nothing to choose the best by: the last checkpoint is the one


def run_identity() -> dict[str, Any]:
    """What the run is, in the user's words: the config-group choices and the command-line overrides."""
    if not HydraConfig.initialized():
        return {"choices": {}, "overrides": []}
    hydra = HydraConfig.get()
    choices = {group: choice for group, choice in hydra.runtime.choices.items() if not group.startswith("hydra")}
    return {"choices": dict(choices), "overrides": list(hydra.overrides.task)}


def _headline_split(evaluations: dict[str, Any], scores: dict[str, float]) -> str:
    """test, or for a trial (which reads no test) the cross-validation on train or else val."""
    if "test" in evaluations:
        return "test"
    return CV_PREFIX if any(name.startswith(f"{CV_PREFIX}/") for name in scores) else "val"


def _target(node: DictConfig) -> str:
    return str(node.get("_target_", "?"))


def _flat(node: DictConfig) -> dict[str, Any]:
    values = OmegaConf.to_container(node, resolve=True)
    assert isinstance(values, dict)
    return {key: value for key, value in values.items() if key != "_target_" and not isinstance(value, dict | list)}


def _reproduce_command(project: Project, overrides: list[str]) -> str:
    return " ".join(["python -m", f"projects.{project.name}", "train", *overrides])
