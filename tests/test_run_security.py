"""A run folder is data: loading one (evaluate, predict, serve) runs none of its code.

Models are stored with skops, whose loader names every type before building anything; only scikit-learn's,
safe data types and the project's own classes are accepted. A config's `_target_`s are checked too.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import skops.io
import yaml
from omegaconf import OmegaConf

from shared.errors import RunNotFoundError
from shared.runs import load_run
from tests.conftest import train_one
from tests.tiny_project.project import TinyProject

SMOKE = ["trainer=cpu", "logger=csv"]


class Payload:
    """Stands for an attacker's class: anything outside the project's own package."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("this would run",))


def _paths(isolated: Path) -> OmegaConf:
    return OmegaConf.create({"runs_dir": str(isolated / "runs"), "cache_dir": str(isolated / "cache")})


@pytest.fixture
def run(cli, isolated: Path) -> Path:
    return train_one(cli, isolated, TinyProject(), *SMOKE)


def test_models_are_saved_with_skops_and_load_back(run: Path, isolated: Path) -> None:
    assert (run / "model.skops").is_file() and not list(run.glob("*.joblib"))
    assert load_run(TinyProject(), run, _paths(isolated)).model.classes_.tolist() == [0, 1, 2]


def test_a_pickled_model_is_refused_not_loaded(run: Path, isolated: Path, capsys) -> None:
    (run / "model.skops").unlink()
    (run / "model.joblib").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(RunNotFoundError, match=r"pickle.*can run any code"):
        load_run(TinyProject(), run, _paths(isolated))
    assert "this would run" not in capsys.readouterr().out


def test_a_skops_file_with_a_foreign_type_is_refused(run: Path, isolated: Path) -> None:
    skops.io.dump({"model": Payload()}, run / "model.skops")
    with pytest.raises(RunNotFoundError, match=r"holds types this project does not load: .*Payload"):
        load_run(TinyProject(), run, _paths(isolated))


def test_a_damaged_skops_file_is_a_clear_error(run: Path, isolated: Path) -> None:
    (run / "model.skops").write_bytes(b"not a zip")
    with pytest.raises(RunNotFoundError, match="not a readable skops file"):
        load_run(TinyProject(), run, _paths(isolated))


@pytest.mark.parametrize("node", ["model", "data"])
def test_a_config_naming_foreign_code_is_refused(run: Path, isolated: Path, tmp_path: Path, node: str) -> None:
    config = yaml.safe_load((run / "config.yaml").read_text())
    victim = tmp_path / "victim"
    config[node] = {"_target_": "shutil.copyfile", "src": str(run / "config.yaml"), "dst": str(victim)}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(RunNotFoundError, match=r"names _target_ shutil\.copyfile, which a run of tiny may not"):
        load_run(TinyProject(), run, _paths(isolated))
    assert not victim.exists()


def test_a_nested_foreign_target_is_refused_too(run: Path, isolated: Path) -> None:
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["model"]["C"] = {"_target_": "os.system", "command": "true"}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(RunNotFoundError, match=r"os\.system"):
        load_run(TinyProject(), run, _paths(isolated))


def test_the_cli_reports_a_refused_run_without_a_traceback(cli, run: Path, tmp_path: Path) -> None:
    (run / "model.skops").unlink()
    (run / "model.joblib").write_bytes(pickle.dumps(Payload()))
    result = cli(TinyProject(), "evaluate", f"run={run}")
    assert result.code == 1 and "retrain the run" in result.err and "Traceback" not in result.err
