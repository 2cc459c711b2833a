"""`python -m projects.<p> tune [search=NAME] [trials=N] [timeout=S] [study=NAME] [storage=URL] [workers=K]`.

Optuna drives the search directly: a TPE sampler (seeded), a pruner, an RDB study (a SQLite file by default, any
SQLAlchemy URL otherwise, so several machines can share one). Each trial is a normal `train` run of the project, in
`runs/<p>/tune/<study>/trial-NNNN/`, with the search's overrides and the trial's values, that never reads the test
split: Lightning models are scored on `val/<metric>` and pruned epoch by epoch, scikit-learn models by k-fold
cross-validation on train. Then the best trial becomes `configs/<p>/experiment/tuned_<study>.yaml`, the trials a table
and Optuna's plots, and the preset is trained once as a normal run and evaluated on test: the figure reported.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf

from shared.checks import whole
from shared.config import SHARED_CONFIGS, compose_config, hydra_set_aside, project_config_dir
from shared.errors import Interrupted, PortfolioError, UsageError
from shared.io import write_json
from shared.project import Project
from shared.runs import TUNE_DIR, read_metrics, successful_runs
from shared.tune import pruning, report
from shared.tune.space import SearchSpace, check_keys, load_search, override_value
from shared.tune.study import Tuning, create_study, objective_of, shown, storage_of
from shared.tune.trial import CV_PREFIX

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
TRIAL_DIR = "trial-{number:04d}"
STORAGE_ENV = "PORTFOLIO_TUNE_STORAGE"  # how the started workers get the study's URL (not on their command line)
# What every trial adds: no progress bars or summaries from K workers at once, no test split, and the callback that
# reports to Optuna (`shared.tune.pruning`), which a scikit-learn model never instantiates.
QUIET = ["++trainer.enable_progress_bar=false", "++callbacks.progress_bar=null", "++trainer.enable_model_summary=false"]


class TrialFailed(Exception):
    """A trial's train failed (a crash, a value the model refused): recorded as a failed trial; the search goes on."""


def tune_command(project: Project, cfg: DictConfig) -> int | None:
    """Run (or, as one of `workers=K`, take part in) a search, then report and retrain unless this is a worker."""
    trials = whole(cfg.trials, "trials", minimum=0)
    workers = whole(cfg.workers, "workers", minimum=1)
    timeout = None if cfg.timeout is None else float(cfg.timeout)
    if timeout is not None and timeout <= 0:
        raise UsageError(f"timeout={cfg.timeout} is not a positive number of seconds.", "e.g. timeout=1800.")
    tuning = prepare(project, cfg)
    if cfg.worker is not None:  # one of the processes `workers=K` started: trials only, the parent reports
        optimize(tuning, cfg, trials, timeout, worker=int(cfg.worker))
        return 0
    study = create_study(tuning, cfg)
    started = time.perf_counter()
    if trials:
        log.info(
            "tune %s: study %s (%s), %d trial(s) on %d worker(s)%s, %s %s",
            project.name,
            tuning.study,
            shown(tuning.storage),
            trials,
            workers,
            f", at most {timeout:.0f} s" if timeout else "",
            tuning.objective.direction,
            tuning.objective.label,
        )
        if workers == 1:
            optimize(tuning, cfg, trials, timeout, worker=0)
        else:
            start_workers(tuning, cfg, trials, timeout, workers)
    return finish(tuning, cfg, study, time.perf_counter() - started)


def prepare(project: Project, cfg: DictConfig) -> Tuning:
    """Everything checked before a trial runs: the search file, its keys against the composed train config, the
    objective (never a test metric), the preset's group, the study's name and storage."""
    config_dir = project_config_dir(project.name, project.config_dir)
    space = load_search(config_dir, str(cfg.search))
    study = str(cfg.study or space.name)
    if Path(study).name != study or study in (".", "..") or not study.replace("-", "").replace("_", "").isalnum():
        raise UsageError(f"study={study} is not a plain name.", "use letters, digits, '-' and '_', e.g. study=lr-1.")
    _require_experiment_group(config_dir)
    train_overrides = tuple(str(item) for item in cfg.train)
    composed = _composed(project, config_dir, space, [*space.trial_overrides, *train_overrides], "trial_overrides")
    if space.retrain_overrides:  # checked now, not after hours of trials
        _composed(project, config_dir, space, [*train_overrides, *space.retrain_overrides], "retrain_overrides")
    check_keys(space, composed, _group_options(config_dir))
    objective = objective_of(project, composed, cfg.metric or space.metric)
    runs_dir = Path(str(composed.paths.runs_dir)).expanduser().resolve()
    storage = str(cfg.storage or f"sqlite:///{runs_dir / project.name / TUNE_DIR / study}.db")
    folds = cfg.cv_folds if cfg.cv_folds is not None else (space.cv_folds or 5)
    tuning = Tuning(
        project=project,
        config_dir=config_dir,
        space=space,
        study=study,
        storage=storage,
        objective=objective,
        train_overrides=train_overrides,
        runs_dir=runs_dir,
        cv_folds=whole(folds, "cv_folds", minimum=2),
        seed=whole(cfg.seed, "seed", minimum=0),
    )
    if storage.startswith("sqlite:///"):  # only once everything is checked: a refused tune leaves no folder
        Path(storage.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return tuning


def _composed(project: Project, config_dir: Path, space: SearchSpace, extra: list[str], section: str) -> DictConfig:
    """The train config with the search's overrides and `extra` (one of its sections, and the command line's)."""
    try:
        return compose_config(project.name, "train", [*space.overrides, *extra], config_dir)
    except PortfolioError:
        raise
    except Exception as error:  # Hydra's composition errors: a search override the config does not take
        raise UsageError(
            f"{space.path}: its overrides do not compose with the train config ({str(error).splitlines()[0]}).",
            f"check overrides: and {section}: against python -m projects.{project.name} train --cfg job",
        ) from error


def _require_experiment_group(config_dir: Path) -> None:
    defaults = OmegaConf.load(config_dir / "train.yaml").get("defaults") or []
    if not any(isinstance(entry, DictConfig) and report.PRESET_GROUP in entry for entry in defaults):
        raise UsageError(
            f"{config_dir / 'train.yaml'} has no experiment group, so the tuned preset could not be trained.",
            "add '- experiment: null' to its defaults (after _self_).",
        )


def _group_options(config_dir: Path) -> dict[str, list[str]]:
    """The config groups a search may choose among (the project's and the shared ones) and their options."""
    groups: dict[str, list[str]] = {}
    for folder in (SHARED_CONFIGS, config_dir):
        for group in folder.iterdir():
            if group.is_dir() and group.name not in ("hydra", "search"):
                groups.setdefault(group.name, []).extend(sorted(path.stem for path in group.glob("*.yaml")))
    return groups


def optimize(tuning: Tuning, cfg: DictConfig, trials: int, timeout: float | None, worker: int) -> None:
    """This process's share of the trials, each a train run through the core."""
    study = create_study(tuning, cfg, worker)
    study.optimize(
        lambda trial: run_trial(tuning, trial),
        n_trials=trials,
        timeout=timeout,
        catch=(TrialFailed,),
        callbacks=[lambda study, trial: _log_trial(tuning, study, trial, worker)],
        gc_after_trial=True,
    )


def run_trial(tuning: Tuning, trial: optuna.Trial) -> float:
    """One trial: its values sampled, its train run (no test split), its objective read from the run's metrics.json.
    A trial the pruner stopped is a finished run as well, recorded as pruned."""
    from shared.cli import run

    values = {param.key: param.suggest(trial) for param in tuning.space.params}
    run_dir = tuning.folder / TRIAL_DIR.format(number=trial.number)
    if run_dir.exists():  # left by an earlier study of the same name whose database was deleted
        shutil.rmtree(run_dir)
    overrides = [
        *tuning.space.overrides,
        *tuning.space.trial_overrides,
        *tuning.train_overrides,
        *tuning.space.trial_values(values),
        f"trial.study={tuning.study}",
        f"trial.number={trial.number}",
        "trial.evaluate_test=false",
        f"trial.cv_folds={tuning.cv_folds}",
        f"hydra.run.dir={override_value(str(run_dir))}",
        "++callbacks.tune_pruning._target_=shared.tune.pruning.TrialPruning",
        f"++callbacks.tune_pruning.study={tuning.study}",
        f"++callbacks.tune_pruning.number={trial.number}",
        f"++callbacks.tune_pruning.monitor=val/{tuning.objective.name}",
        *QUIET,
    ]
    trial.set_user_attr("run", str(run_dir))
    with pruning.active(tuning.study, trial) as outcome, hydra_set_aside():
        code = run(tuning.project, ["train", *overrides])
    if code in (128 + signal.SIGINT, 128 + signal.SIGTERM):
        raise Interrupted(code - 128)
    if code == 2:  # the command line was refused: every trial would be, so the search stops here
        raise UsageError(
            f"trial {trial.number}'s train was refused (its error is above).",
            "fix the search's overrides or the values it searches, then run tune again.",
        )
    if code != 0:
        raise TrialFailed(f"trial {trial.number}: train exited with code {code}")
    metrics = read_metrics(run_dir)
    value = tuning.objective.value(metrics.get("metrics", {}))
    if value is None:
        raise UsageError(
            f"trial {trial.number}'s run has no val/{tuning.objective.name} or cv/{tuning.objective.name}.",
            "search a model whose data has a validation split, or a scikit-learn model (cross-validated on train).",
        )
    trial.set_user_attr("train_seconds", metrics.get("train_seconds"))
    if outcome.pruned_at is not None:
        trial.set_user_attr("pruned_at_epoch", outcome.pruned_at)
        raise optuna.TrialPruned(f"pruned at epoch {outcome.pruned_at} ({tuning.objective.name} {value:.4g})")
    return value


def _log_trial(tuning: Tuning, study: optuna.Study, trial: optuna.trial.FrozenTrial, worker: int) -> None:
    """One readable line per finished trial: its state, value, the best so far, its time and values."""
    seconds = (trial.datetime_complete - trial.datetime_start).total_seconds() if trial.datetime_complete else 0.0
    state = trial.state.name.lower()
    if trial.state == optuna.trial.TrialState.PRUNED:
        state += f" at epoch {trial.user_attrs.get('pruned_at_epoch')}"
    value = f" {tuning.objective.name}={trial.value:.6g}" if trial.value is not None else ""
    try:
        best = f"; best {study.best_value:.6g} (trial {study.best_trial.number})"
    except ValueError:  # no finished trial yet
        best = ""
    params = " ".join(
        f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}" for key, value in trial.params.items()
    )
    prefix = f"[worker {worker}] " if worker else ""
    log.info("%stune trial %d %s%s in %.1f s%s | %s", prefix, trial.number, state, value, seconds, best, params)


def start_workers(tuning: Tuning, cfg: DictConfig, trials: int, timeout: float | None, workers: int) -> None:
    """`workers` processes on this machine, each optimising its share of the trials in the same study (its storage
    serialises them): this one, and `workers - 1` started beside it. Ctrl-C, or a failure here, stops them all."""
    shares = [trials // workers + (index < trials % workers) for index in range(workers)]
    project_class = type(tuning.project)
    arguments = [
        f"search={tuning.space.name}",
        f"study={tuning.study}",
        f"storage=${{oc.env:{STORAGE_ENV}}}",  # the URL itself, password and all, stays out of the process list
        f"seed={tuning.seed}",
        f"cv_folds={tuning.cv_folds}",
        f"timeout={cfg.timeout if cfg.timeout is not None else 'null'}",
        f"metric={override_value(cfg.metric) if cfg.metric else 'null'}",
        "train=[" + ",".join(override_value(item) for item in tuning.train_overrides) + "]",
    ]
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        STORAGE_ENV: tuning.storage,
    }
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "shared.tune.worker",
                f"{project_class.__module__}:{project_class.__qualname__}",
                str(tuning.config_dir),
                "tune",
                *arguments,
                f"trials={share}",
                f"worker={index}",
            ],
            env=environment,
        )
        for index, share in enumerate(shares)
        if index > 0 and share > 0
    ]
    try:
        optimize(tuning, cfg, shares[0], timeout, worker=0)
        codes = [process.wait() for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
                process.wait()
    if any(codes):
        raise UsageError(
            f"{sum(1 for code in codes if code)} of {len(codes)} worker processes failed (exit codes {codes}); their "
            "errors are above.",
            "fix what they report; the study keeps every trial they finished, and runs on with the same study=.",
        )


def finish(tuning: Tuning, cfg: DictConfig, study: optuna.Study, seconds: float) -> int:
    """The table, the plots, the best trial's preset, and that preset retrained and tested: the reported figure."""
    study = optuna.load_study(study_name=tuning.study, storage=storage_of(tuning.storage))
    folder = tuning.folder
    table = report.trials_table(study)
    if table.empty:
        raise UsageError(f"the study {tuning.study} has no trials yet.", "run tune with trials=N above 0.")
    metric = f"{CV_PREFIX if _cross_validated(table) else 'val'}/{tuning.objective.name}"
    report.write_table(table, folder / "trials.csv")
    print(f"trials of {tuning.study} ({metric}, {tuning.objective.direction}):")
    print(report.format_table(table, metric))
    report.write_plots(study, folder / "plots", metric)
    counts = table["state"].value_counts().to_dict()
    summary: dict[str, Any] = {
        "project": tuning.project.name,
        "search": tuning.space.name,
        "study": tuning.study,
        "storage": shown(tuning.storage),
        "metric": metric,
        "direction": tuning.objective.direction,
        "trials": len(table),
        "states": {str(state): int(count) for state, count in counts.items()},
        "wall_seconds": round(seconds, 1),
    }
    baseline = table[(table["baseline"] == "yes") & (table["state"] == "complete")]
    if not baseline.empty:
        summary["baseline_value"] = float(baseline["value"].iloc[0])
    complete = [trial for trial in study.trials if trial.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        write_json(folder / "summary.json", summary)
        raise UsageError(
            f"none of the {len(table)} trials of {tuning.study} finished ({counts}).",
            f"see the trials' runs under {folder}; widen the search or relax the pruner.",
        )
    best = study.best_trial
    preset = report.preset_name(tuning.study)
    best_overrides = [*tuning.space.overrides, *tuning.space.trial_values(best.params)]
    path = report.write_preset(
        tuning.config_dir,
        preset,
        best_overrides,
        set(_group_options(tuning.config_dir)),
        report.preset_header(tuning.project.name, tuning.space.name, tuning.study, best, metric, len(table)),
    )
    summary |= {
        "best_trial": best.number,
        "best_value": best.value,
        "best_params": best.params,
        "best_overrides": best_overrides,
        "preset": str(path),
    }
    log.info("best: trial %d, %s = %.6g; preset %s", best.number, metric, best.value, path)
    if cfg.retrain:
        summary |= retrain(tuning, preset)
    write_json(folder / "summary.json", summary)
    print(f"study {tuning.study}: {folder} (trials.csv, plots/, summary.json); preset {path}")
    return 0


def _cross_validated(table: Any) -> bool:
    """Whether the trials were scored by cross-validation (scikit-learn) rather than on val: their runs say."""
    for run in table["run"]:
        if run and (Path(run) / "metrics.json").is_file():
            return any(name.startswith(f"{CV_PREFIX}/") for name in read_metrics(run).get("metrics", {}))
    return False


def retrain(tuning: Tuning, preset: str) -> dict[str, Any]:
    """The preset trained once more as a normal run, evaluated on test: the reported figure. With the search's
    `retrain_overrides` (the full train split, where trials needed a val split to be scored on)."""
    from shared.cli import run

    project = tuning.project
    before = set(successful_runs(tuning.runs_dir, project.name))
    command = ["train", f"experiment={preset}", *tuning.train_overrides, *tuning.space.retrain_overrides]
    log.info("retraining the best trial: python -m projects.%s %s", project.name, " ".join(command))
    with hydra_set_aside():
        code = run(project, command)
    if code != 0:
        raise PortfolioError(
            f"retraining experiment={preset} failed (exit code {code}; its error is above).",
            f"the preset is written: train it yourself, python -m projects.{project.name} {' '.join(command)}",
        )
    [run_dir] = [path for path in successful_runs(tuning.runs_dir, project.name) if path not in before]
    metrics = read_metrics(run_dir)
    headline = str(metrics.get("headline"))
    log.info("retrained: %s = %.6g (%s)", headline, metrics["metrics"].get(headline, float("nan")), run_dir)
    return {
        "retrained_overrides": list(tuning.space.retrain_overrides),
        "retrained_run": str(run_dir),
        "retrained_headline": headline,
        "retrained_value": metrics["metrics"].get(headline),
        "retrained_metrics": metrics["metrics"],
        "retrained_train_seconds": metrics.get("train_seconds"),
    }
