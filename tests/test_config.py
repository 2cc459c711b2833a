"""Config composition: every project's every command, preset and shared option composes."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from shared.config import CONFIG_ROOT, SHARED_CONFIGS, compose_config
from shared.registry import project_names

PROJECTS = project_names()
EXPERIMENTS = [
    (project, preset.stem)
    for project in PROJECTS
    for preset in sorted((CONFIG_ROOT / project / "experiment").glob("*.yaml"))
]


def _options(group: str) -> list[str]:
    return sorted(path.stem for path in (SHARED_CONFIGS / group).glob("*.yaml"))


@pytest.mark.parametrize(("project", "experiment"), EXPERIMENTS)
def test_every_experiment_preset_composes(project: str, experiment: str) -> None:
    cfg = compose_config(project, "train", [f"experiment={experiment}"])
    assert cfg.experiment_name == experiment
    assert cfg.project == project
    OmegaConf.to_container(cfg.model, resolve=True)
    OmegaConf.to_container(cfg.data, resolve=True)


@pytest.mark.parametrize("project", PROJECTS)
@pytest.mark.parametrize("command", ["train", "evaluate", "predict"])
def test_every_command_composes(project: str, command: str) -> None:
    if not (CONFIG_ROOT / project / f"{command}.yaml").exists():
        pytest.skip(f"{project} has no {command}")
    cfg = compose_config(project, command)
    assert cfg.project == project
    assert OmegaConf.to_container(cfg.paths, resolve=True)["runs_dir"]


@pytest.mark.parametrize("trainer", _options("trainer"))
def test_trainer_options_compose(trainer: str) -> None:
    cfg = compose_config(PROJECTS[0], "train", [f"trainer={trainer}"])
    expected = {"auto": "auto", "default": "auto", "cpu": "cpu", "gpu": "gpu", "ddp": "gpu"}[trainer]
    assert cfg.trainer.accelerator == expected


@pytest.mark.parametrize(
    ("group", "option"),
    [("logger", o) for o in _options("logger")]
    + [("debug", o) for o in _options("debug")]
    + [("callbacks", o) for o in _options("callbacks")],
)
def test_shared_options_compose(group: str, option: str) -> None:
    cfg = compose_config(PROJECTS[0], "train", [f"{group}={option}"])
    assert cfg.get(group) is not None or group == "debug"


def test_short_overrides_reach_the_project_groups() -> None:
    cfg = compose_config("mnist", "train", ["model=mlp", "trainer=cpu", "experiment=quick", "seed=7"])
    assert cfg.model._target_.endswith("MultilayerPerceptron")
    assert (cfg.trainer.accelerator, cfg.trainer.max_epochs, cfg.seed) == ("cpu", 1, 7)


def test_environment_sets_the_paths(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTFOLIO_DATA_DIR", str(isolated / "mirror"))
    paths = OmegaConf.to_container(compose_config("mnist", "train").paths, resolve=True)
    assert paths == {
        "mirror_dir": str(isolated / "mirror"),
        "cache_dir": str(isolated / "cache"),
        "runs_dir": str(isolated / "runs"),
    }


def test_every_project_folder_has_its_configs_and_declares_its_metrics() -> None:
    """One registry: each projects/<name>/project.py registers a Project whose configs and metrics exist."""
    from shared.registry import load_project

    config_folders = sorted(path.name for path in CONFIG_ROOT.iterdir() if path.is_dir() and path != SHARED_CONFIGS)
    assert config_folders == PROJECTS
    for name in PROJECTS:
        project = load_project(name)
        assert project.name == name and project.metrics.goal(project.metrics.headline) is not None


def test_an_unknown_project_is_a_clear_error() -> None:
    from shared.errors import UsageError
    from shared.registry import load_project

    with pytest.raises(UsageError, match="no project 'nope'"):
        load_project("nope")
