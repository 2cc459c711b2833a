"""Command dispatch: help, unknown commands, Hydra flags, any working directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.config import SHARED_CONFIGS
from tests.conftest import refused, run_module


def test_no_command_lists_the_commands(cli) -> None:
    result = cli("mnist")
    assert result.code == 2
    for command in ("train", "evaluate", "predict", "compare"):
        assert f"  {command} " in result.out


def test_help_lists_the_commands_and_exits_zero(cli) -> None:
    result = cli("mnist", "--help")
    assert result.code == 0
    assert "usage: python -m projects.mnist <command>" in result.out


def test_unknown_command_names_the_valid_ones(cli) -> None:
    result = cli("mnist", "fit")
    assert result.code == 2
    assert "unknown command 'fit'" in result.err
    assert "train, evaluate, predict, compare" in result.err


def test_unknown_config_option_is_a_clean_error(cli) -> None:
    result = cli("mnist", "train", "model=transformer")
    refused(result, 2, "mnist has no model 'transformer'", "use one of: cnn, logreg, mlp.")
    assert "metrics.json" not in result.out and "Config search path" not in result.err


@pytest.mark.parametrize(
    ("command", "override", "phrases"),
    [
        ("train", "model.widht=3", ["model.widht is not a setting of mnist train", "--cfg job"]),
        ("predict", "top_k=3", ["top_k is not a setting of mnist predict"]),
        ("evaluate", "model=cnn", ["evaluate takes no model= choice", "run=<a run folder>"]),
        ("train", "data.batch_size=[1", ["an override could not be read", "quote values"]),
        ("train", "model.widths=${nothing}", ["model.widths: Interpolation key 'nothing' not found"]),
    ],
)
def test_a_command_line_that_does_not_compose_is_said_plainly(
    cli, isolated: Path, command: str, override: str, phrases: list[str]
) -> None:
    """Hydra's own words (and its advice to append the key with `+`) become an error and a fix, exit 2."""
    data = ["data=synthetic"] if command == "train" else []
    result = cli("mnist", command, *data, override)
    refused(result, 2, *phrases)
    assert "HYDRA_FULL_ERROR" not in result.err and "To append" not in result.err
    assert not (isolated / "runs").exists() or not list((isolated / "runs").rglob("*.yaml")), "no run is left"


def test_module_runs_from_any_directory_with_hydra_flags(tmp_path: Path) -> None:
    """`--cfg job` prints the composed config; configs are found although cwd is elsewhere."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run_module("projects.mnist", "train", "--cfg", "job", "model=mlp", "trainer=cpu", cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert "_target_: projects.mnist.models.MultilayerPerceptron" in result.stdout
    assert "accelerator: cpu" in result.stdout
    assert not (elsewhere / "runs").exists()


def test_hydra_flags_may_follow_the_overrides(tmp_path: Path) -> None:
    result = run_module("projects.mnist", "train", "model=mlp", "--cfg", "job", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "MultilayerPerceptron" in result.stdout


def test_hydra_help_lists_the_config_groups(tmp_path: Path) -> None:
    result = run_module("projects.mnist", "train", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "model: cnn, logreg, mlp" in result.stdout
    for group in ("trainer", "logger", "callbacks", "debug"):  # the shared groups, listed by hand in the help
        options = sorted(
            path.stem
            for path in (SHARED_CONFIGS / group).glob("*.yaml")
            if path.stem != "default" or group == "callbacks"
        )
        assert f"{group}: {', '.join(options)}" in result.stdout


@pytest.mark.parametrize("command", ["predict", "evaluate", "serve", "export", "monitor", "promote", "compare"])
def test_help_of_a_command_on_a_finished_run_lists_its_keys_not_the_train_groups(cli, command: str) -> None:
    """Those commands read a run's own model and data: offering `model=` there would only lead to an error."""
    result = cli("recommender", command, "--help")
    assert result.code == 0, result.err
    assert f"python -m projects.recommender {command}" in result.out and "== Config ==" in result.out
    assert "Configuration groups" not in result.out and "model: autorec" not in result.out
