"""Command dispatch: help, unknown commands, Hydra flags, any working directory."""

from __future__ import annotations

from pathlib import Path

from shared.config import SHARED_CONFIGS
from tests.conftest import run_module


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
    assert result.code != 0
    assert "metrics.json" not in result.out


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
