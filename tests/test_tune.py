"""`tune`: Optuna over the tiny project's train config. Two workers share a SQLite study and prune a Lightning trial;
a study resumes by name; a bad search space or a test metric is refused before any trial runs."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf

from shared.cli import tune_overrides
from shared.config import project_config_dir
from shared.errors import UsageError
from shared.registry import load_project, project_names
from shared.runs import successful_runs
from shared.tune.command import prepare
from shared.tune.space import load_search
from tests.conftest import refused
from tests.tiny_project.project import TinyProject

TINY_CONFIGS = Path(__file__).parent / "tiny_project" / "configs"
CPU = ["trainer=cpu", "logger=csv"]
# The network's lr: the default first (the baseline trial), then 1e-6, which cannot pass 60% val accuracy after its
# first epoch, so the threshold pruner stops it there: a real prune, decided by Optuna from the reported value. The
# trials are scored on val; the best is retrained on the full train split (no val split).
PRUNED_SEARCH = """
overrides: [model=network]
retrain_overrides: [data.val_size=0]
pruner: {_target_: optuna.pruners.ThresholdPruner, lower: 0.6}
enqueue: [{model.lr: 1.0e-6}]
params:
  model.lr: {type: float, low: 1.0e-6, high: 0.3, log: true}
"""


@pytest.fixture
def tiny(tmp_path: Path) -> TinyProject:
    """The tiny project on a copy of its configs, so the presets `tune` writes stay in the test's folder."""
    configs = tmp_path / "configs"
    shutil.copytree(TINY_CONFIGS, configs)
    project = TinyProject()
    project.config_dir = configs  # type: ignore[misc]
    return project


def _search(project: TinyProject, name: str, text: str) -> None:
    (project.config_dir / "search" / f"{name}.yaml").write_text(text)


def _study(isolated: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{isolated / 'runs' / 'tiny' / 'tune' / name}.db")


def test_two_workers_share_a_study_prune_and_write_a_preset_that_trains(cli, tiny, isolated: Path) -> None:
    _search(tiny, "pruned", PRUNED_SEARCH)
    result = cli(tiny, "tune", "search=pruned", "trials=4", "workers=2", *CPU)
    assert result.code == 0, result.out + result.err

    trials = _study(isolated, "pruned").trials
    assert [trial.number for trial in trials] == [0, 1, 2, 3], "every trial of both workers is in the one study"
    states = [trial.state for trial in trials]
    assert set(states) <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    pruned = [trial for trial in trials if trial.state == optuna.trial.TrialState.PRUNED]
    assert pruned and any(trial.params["model.lr"] == pytest.approx(1e-6) for trial in pruned)
    for trial in trials:
        metrics = json.loads((Path(trial.user_attrs["run"]) / "metrics.json").read_text())
        assert "val/acc" in metrics["metrics"] and not any(name.startswith("test/") for name in metrics["metrics"])
        assert metrics["trial"] == {"study": "pruned", "number": trial.number, "evaluate_test": False}
    for trial in pruned:  # stopped by Optuna at the epoch it reported, well before max_epochs=5
        assert trial.intermediate_values and trial.user_attrs["pruned_at_epoch"] == max(trial.intermediate_values)
        assert json.loads((Path(trial.user_attrs["run"]) / "metrics.json").read_text())["epochs"] < 5

    folder = isolated / "runs" / "tiny" / "tune" / "pruned"
    rows = list(csv.DictReader((folder / "trials.csv").open()))
    assert len(rows) == 4 and {row["state"] for row in rows} == {state.name.lower() for state in set(states)}
    assert {path.name for path in (folder / "plots").iterdir()} >= {"optimization_history.png"}

    preset = tiny.config_dir / "experiment" / "tuned_pruned.yaml"
    best = _study(isolated, "pruned").best_trial
    assert f"lr: {best.params['model.lr']}" in preset.read_text() and "val_size" not in preset.read_text()
    summary = json.loads((folder / "summary.json").read_text())
    [retrained] = successful_runs(isolated / "runs", "tiny")  # the retrained preset; trials are not the project's runs
    assert summary["retrained_run"] == str(retrained) and summary["retrained_headline"] == "test/acc"
    assert summary["retrained_overrides"] == ["data.val_size=0"]
    metrics = json.loads((retrained / "metrics.json").read_text())
    assert metrics["experiment"] == "tuned_pruned" and metrics["metrics"]["test/acc"] > 0.9
    assert not any(name.startswith("val/") for name in metrics["metrics"]), "retrained on the full train split"

    result = cli(tiny, "compare")
    assert result.code == 0 and "tuned_pruned" in result.out and "trial-" not in result.out


def test_a_study_resumes_by_name(cli, tiny, isolated: Path) -> None:
    first = cli(tiny, "tune", "search=logistic", "study=again", "trials=2", "retrain=false", *CPU)
    assert first.code == 0, first.err
    assert "cv/acc" in first.out, "a scikit-learn trial is scored by cross-validation on train"
    second = cli(tiny, "tune", "search=logistic", "study=again", "trials=1", "retrain=false", *CPU)
    assert second.code == 0, second.err
    trials = _study(isolated, "again").trials
    assert [trial.number for trial in trials] == [0, 1, 2]
    assert trials[0].user_attrs.get("baseline") and not trials[2].user_attrs.get("baseline")
    assert all(trial.state == optuna.trial.TrialState.COMPLETE for trial in trials)
    assert successful_runs(isolated / "runs", "tiny") == [], "retrain=false: no run of the project, only trials"


def test_a_search_from_an_experiment_writes_a_preset_built_on_it(cli, tiny, isolated: Path) -> None:
    """The preset is itself an experiment: it includes the one the search started from, then sets the tuned values."""
    (tiny.config_dir / "experiment").mkdir()
    (tiny.config_dir / "experiment" / "patient.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /model: logistic\nmodel:\n  max_iter: 37\n  C: 5.0\n"
    )
    _search(
        tiny,
        "from_experiment",
        "overrides: [experiment=patient]\ncv_folds: 2\nparams:\n"
        "  model.C: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}\n",
    )
    result = cli(tiny, "tune", "search=from_experiment", "trials=1", "baseline=false", *CPU)
    assert result.code == 0, result.out + result.err
    [retrained] = successful_runs(isolated / "runs", "tiny")
    config = OmegaConf.load(retrained / "config.yaml")
    best = _study(isolated, "from_experiment").best_trial
    assert config.model.max_iter == 37, "the experiment the search started from is part of the preset"
    assert best.params["model.C"] == pytest.approx(config.model.C) and config.model.C < 0.01, "the tuned value wins"


@pytest.mark.parametrize(
    ("param", "phrases"),
    [
        ("model.C: {type: loguniform, low: 0.1, high: 1}", ["unknown type 'loguniform'", "type: float"]),
        ("model.C: {type: float, low: 10, high: 1}", ["low=10 is above high=1"]),
        ("model.penalty_strength: {type: float, low: 0.1, high: 1}", ["no key model.penalty_strength", "C"]),
        ("model: {type: categorical, choices: [logistic, forest]}", ["['forest'] is not one of its options"]),
    ],
)
def test_a_bad_search_space_is_refused(cli, tiny, isolated: Path, param: str, phrases: list[str]) -> None:
    _search(tiny, "bad", f"overrides: [model=logistic]\nparams:\n  {param}\n")
    refused(cli(tiny, "tune", "search=bad", "trials=1", *CPU), 2, "bad.yaml", *phrases)
    assert not (isolated / "runs" / "tiny" / "tune" / "bad.db").exists(), "refused before any study is made"


def test_a_retrain_override_that_does_not_compose_is_refused_before_any_trial(cli, tiny, isolated: Path) -> None:
    _search(tiny, "late", "retrain_overrides: [data=nope]\nparams:\n  model.C: {type: float, low: 0.1, high: 1}\n")
    refused(cli(tiny, "tune", "search=late", "trials=1", *CPU), 2, "late.yaml", "do not compose", "retrain_overrides:")
    assert not (isolated / "runs" / "tiny" / "tune" / "late.db").exists(), "refused before any study is made"


@pytest.mark.parametrize(
    ("option", "phrase"),
    [
        ("trials=-1", "trials=-1 is not a whole number of at least 0"),
        ("workers=0", "workers=0 is not a whole number of at least 1"),
        ("timeout=-5", "timeout=-5 is not a positive number of seconds"),
        ("cv_folds=1", "cv_folds=1 is not a whole number of at least 2"),
        ("seed=-1", "seed=-1 is not a whole number of at least 0"),
    ],
)
def test_bad_tune_options_are_refused_and_leave_no_folder(cli, tiny, isolated: Path, option: str, phrase: str) -> None:
    refused(cli(tiny, "tune", "search=logistic", option, *CPU), 2, phrase)
    assert not (isolated / "runs").exists() or not list((isolated / "runs").rglob("*")), "a refused tune writes nothing"


def test_an_unknown_search_is_refused_with_the_ones_there_are(cli, tiny) -> None:
    refused(cli(tiny, "tune", "search=nope"), 2, "no search space 'nope'", "search=default", "search=logistic")


def test_a_search_on_a_test_metric_is_refused(cli, tiny, isolated: Path) -> None:
    refused(cli(tiny, "tune", "search=logistic", "metric=test/acc", *CPU), 2, "test metric", "metric=val/acc")
    _search(tiny, "peeks", "metric: test/brier\nparams:\n  model.C: {type: float, low: 0.1, high: 1}\n")
    refused(cli(tiny, "tune", "search=peeks", *CPU), 2, "test metric", "metric=val/brier")
    assert not list((isolated / "runs").rglob("*.db")), "refused before any study is made"


def test_other_overrides_go_to_the_trials_train() -> None:
    assert tune_overrides(["trials=3", "trainer=cpu", "model.C=0.5", "--cfg", "hydra.verbose=true"]) == [
        "trials=3",
        "--cfg",
        "hydra.verbose=true",
        "train=['trainer=cpu','model.C=0.5']",
    ]
    assert tune_overrides(["search=x", "workers=2"]) == ["search=x", "workers=2"]


def _search_spaces() -> list[tuple[str, str]]:
    return [
        (name, path.stem) for name in project_names() for path in sorted(project_config_dir(name).glob("search/*.yaml"))
    ]


@pytest.mark.parametrize(("name", "search"), _search_spaces(), ids=lambda value: str(value))
def test_every_shipped_search_space_composes_with_its_project(name: str, search: str, isolated: Path) -> None:
    """Each project's search files pass the checks a tune makes before its first trial: every key in the composed
    train config, every group option real, a validation objective with a declared direction."""
    # the GAN's judge is looked up only when it measures: a folder that does not exist is enough here
    train = [f"judge={isolated / 'no-judge'}"] if name == "gan" else []
    cfg = OmegaConf.create({"search": search, "study": None, "storage": None, "train": train, "metric": None})
    cfg.cv_folds, cfg.seed = None, 42
    tuning = prepare(load_project(name), cfg)
    assert tuning.space.params and tuning.objective.direction in ("maximize", "minimize")
    assert not tuning.objective.name.startswith("test")


def test_an_enqueued_trial_is_given_as_optuna_stores_it(tmp_path: Path) -> None:
    """A list choice is stored as its override text: an enqueued list must be too, or Optuna samples it instead."""
    (tmp_path / "search").mkdir()
    head = "params:\n  model.widths: {type: categorical, choices: [[8, 16], [16, 32]]}\n"
    (tmp_path / "search" / "lists.yaml").write_text(head + "enqueue: [{model.widths: [16, 32]}]\n")
    [trial] = load_search(tmp_path, "lists").enqueue
    assert trial == {"model.widths": "[16,32]"}

    (tmp_path / "search" / "stray.yaml").write_text(head + "enqueue: [{model.widths: [4, 8]}]\n")
    with pytest.raises(UsageError, match=r"model.widths=\[4,8\], which is not among its choices") as refusal:
        load_search(tmp_path, "stray")
    assert "[8,16], [16,32]" in refusal.value.fix
