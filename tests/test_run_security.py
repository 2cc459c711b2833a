"""A run folder is data: loading one (evaluate, predict, serve) runs none of its code.

Models are stored with skops, whose loader names every type before building anything; only scikit-learn's,
safe data types and the project's own classes are accepted. A config's `_target_`s are checked too, down to where
they are defined. A damaged folder (config, metrics, checkpoint) is a message; so is a run name that resolves to a
path or a runs folder that cannot be written. `train resume=` takes no code from a folder's saved command line.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import skops.io
import yaml
from omegaconf import OmegaConf

from shared.errors import RunNotFoundError
from shared.runs import load_run
from tests.conftest import refused, train_one
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


def test_a_target_reached_through_a_modules_imports_is_refused(run: Path, isolated: Path, tmp_path: Path) -> None:
    config = yaml.safe_load((run / "config.yaml").read_text())
    written = tmp_path / "written.npy"
    config["data"] = {"_target_": "tests.tiny_project.project.np.save", "file": str(written), "arr": [1]}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(RunNotFoundError, match=r"names _target_ tests\.tiny_project\.project\.np\.save"):
        load_run(TinyProject(), run, _paths(isolated))
    assert not written.exists(), "NumPy's function, reached through the project's module, was called"


# --- run folders that are damaged: each a message, never a traceback ------------------------------------------------
@pytest.mark.parametrize(
    ("content", "phrase"),
    [("model: [unclosed\n", "not readable YAML"), ("", "no model and no data section"), ("- a list\n", "no model")],
)
def test_a_damaged_config_is_a_clear_error(cli, run: Path, content: str, phrase: str) -> None:
    (run / "config.yaml").write_text(content)
    refused(cli(TinyProject(), "evaluate", f"run={run}"), 1, f"{run / 'config.yaml'} is damaged", phrase)


def test_metrics_that_name_no_project_are_a_clear_error(cli, run: Path) -> None:
    metrics = json.loads((run / "metrics.json").read_text())
    del metrics["project"]
    (run / "metrics.json").write_text(json.dumps(metrics))
    refused(cli(TinyProject(), "evaluate", f"run={run}"), 1, "does not say which project the run is of")


@pytest.fixture
def network(cli, isolated: Path) -> Path:
    """A finished Lightning run: `model.ckpt`, and a full `checkpoints/last.ckpt`."""
    return train_one(cli, isolated, TinyProject(), *SMOKE, "model=network", "trainer.max_epochs=2")


@pytest.mark.parametrize("content", [b"garbage", pickle.dumps(Payload())], ids=["garbage", "pickle"])
def test_a_damaged_or_pickled_checkpoint_is_a_clear_error(cli, network: Path, content: bytes) -> None:
    (network / "model.ckpt").write_bytes(content)
    result = cli(TinyProject(), "evaluate", f"run={network}")
    refused(result, 1, "model.ckpt cannot be loaded: it is damaged or holds more than weights", "retrain the run")
    assert "this would run" not in result.out


# --- the run folder itself: its name and where it goes ------------------------------------------------------------
def test_a_name_that_resolves_to_a_path_is_refused_without_a_traceback(cli, isolated: Path) -> None:
    result = cli(TinyProject(), "train", *SMOKE, "name=${oc.env:HOME}")
    refused(result, 2, "is not a plain folder name", "name=try-1")
    assert list((isolated / "runs").glob("tiny/*")) == [], "no run folder made"


def test_a_runs_folder_that_cannot_be_written_is_a_clear_error(cli, isolated: Path, monkeypatch) -> None:
    blocker = isolated / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("PORTFOLIO_RUNS_DIR", str(blocker))
    refused(cli(TinyProject(), "train", *SMOKE), 1, f"cannot create a run folder under {blocker}", "PORTFOLIO_RUNS_DIR")


# --- resume: a folder's saved command line and checkpoint are data too ---------------------------------------------
def _dropped_in(network: Path, *overrides: str) -> Path:
    """A folder put under runs/tiny/ by someone else: a resumable checkpoint and the command line it says it ran."""
    folder = network.parent / "dropped"
    shutil.copytree(network / "checkpoints", folder / "checkpoints")
    (folder / ".hydra").mkdir()
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(list(overrides)))
    return folder


def test_resume_refuses_code_named_by_a_folders_saved_overrides(cli, network: Path, tmp_path: Path) -> None:
    written = tmp_path / "written.npy"
    evil = "+callbacks.evil._target_=tests.tiny_project.project.np.save"
    _dropped_in(network, "model=network", evil, f"+callbacks.evil.file={written}", "+callbacks.evil.arr=[1]")
    result = cli(TinyProject(), "train", "resume=latest")
    refused(result, 1, "names _target_ tests.tiny_project.project.np.save", "retrain the run")
    assert not written.exists()
    shutil.rmtree(network.parent / "dropped")
    _dropped_in(network, "model=network", "+callbacks.evil._target_=os.system", "+callbacks.evil.command=true")
    refused(cli(TinyProject(), "train", "resume=latest"), 1, "names _target_ os.system")


@pytest.mark.parametrize("override", ["model=../../../../elsewhere/evil", "+hydra.callbacks.x._target_=os.system"])
def test_resume_refuses_hydra_settings_and_config_files_named_by_path(cli, network: Path, override: str) -> None:
    _dropped_in(network, "model=network", override)
    result = cli(TinyProject(), "train", "resume=latest")
    refused(result, 1, f"was started with the override {override}", "start a new run")


@pytest.mark.parametrize("content", [b"garbage", pickle.dumps(Payload())], ids=["garbage", "pickle"])
def test_resume_refuses_a_damaged_or_pickled_last_checkpoint(cli, network: Path, content: bytes) -> None:
    folder = _dropped_in(network, "model=network")
    (folder / "checkpoints" / "last.ckpt").write_bytes(content)
    result = cli(TinyProject(), "train", "resume=latest")
    refused(result, 1, "last.ckpt cannot be resumed from: it is damaged or holds more than weights", "new run")
    assert "this would run" not in result.out


@pytest.mark.parametrize(("node", "phrase"), [("model", "the model of"), ("data", "the data of")])
def test_a_config_its_classes_do_not_take_is_a_clear_error(cli, network: Path, node: str, phrase: str) -> None:
    config = yaml.safe_load((network / "config.yaml").read_text())
    config[node]["bogus"] = 1
    (network / "config.yaml").write_text(yaml.safe_dump(config))
    result = cli(TinyProject(), "evaluate", f"run={network}")
    refused(result, 1, f"{phrase} {network / 'config.yaml'} cannot be built", "unexpected keyword argument 'bogus'")


def test_a_model_file_of_another_class_than_its_config_is_refused(run: Path, isolated: Path) -> None:
    from sklearn.linear_model import LinearRegression

    skops.io.dump(LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0]), run / "model.skops")
    with pytest.raises(RunNotFoundError, match=r"holds a LinearRegression, but the run's config\.yaml trained a Logi"):
        load_run(TinyProject(), run, _paths(isolated))
