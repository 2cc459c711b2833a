"""What a study leaves: the best trial as an experiment preset, the table of trials, Optuna's plots."""

from __future__ import annotations

import logging
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser

from shared.io import atomic_path, write_text

log = logging.getLogger(__name__)

PRESET_PREFIX = "tuned_"
PRESET_GROUP = "experiment"  # the config group presets are written to, and `train experiment=...` reads


def preset_name(study: str) -> str:
    return f"{PRESET_PREFIX}{study}"


def write_preset(config_dir: Path, name: str, overrides: list[str], groups: set[str], header: list[str]) -> Path:
    """`overrides` (the search's own and the best trial's values) as a preset, `<config_dir>/experiment/<name>.yaml`,
    that `train experiment=name` takes: a config group's choice (`model=hgb`) becomes a defaults override, every other
    key a value. A search that starts from another experiment (`experiment=ensemble`) is built on it: the preset,
    itself an experiment, includes that one first and sets its own values after it (an experiment cannot override
    its own group). Atomic."""
    included: list[str] = []
    chosen: list[dict[str, str]] = []
    values: dict[str, Any] = {}
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.key_or_group
        if key == PRESET_GROUP:
            included.append(str(override.value()))
        elif key in groups:
            chosen.append({f"override /{key}": str(override.value())})
        else:
            _set_dotted(values, key, _plain(override.value()))
    defaults: list[Any] = [*included, "_self_", *chosen] if included else chosen
    content: dict[str, Any] = {"defaults": defaults} if defaults else {}
    content |= {"experiment_name": name, "name": name, **values}
    text = "# @package _global_\n" + "".join(f"# {line}\n" for line in header)
    text += yaml.safe_dump(content, sort_keys=False, default_flow_style=False, width=120)
    return write_text(config_dir / PRESET_GROUP / f"{name}.yaml", text)


def _set_dotted(values: dict[str, Any], key: str, value: Any) -> None:
    """`values[a][b][c] = value` for the key `a.b.c`, making the inner dicts on the way."""
    *parents, leaf = key.split(".")
    for parent in parents:
        values = values.setdefault(parent, {})
    values[leaf] = value


def _plain(value: Any) -> Any:
    """A parsed override value as plain YAML data (Hydra's parser returns its own list and dict types)."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, value, each parameter, seconds, pruned epoch, its run folder."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        seconds = (
            (trial.datetime_complete - trial.datetime_start).total_seconds()
            if trial.datetime_complete and trial.datetime_start
            else None
        )
        rows.append(
            {
                "trial": trial.number,
                "state": trial.state.name.lower(),
                "value": trial.value,
                **trial.params,
                "seconds": round(seconds, 1) if seconds is not None else None,
                "pruned_at_epoch": trial.user_attrs.get("pruned_at_epoch", ""),
                "baseline": "yes" if trial.user_attrs.get("baseline") else "",
                "run": trial.user_attrs.get("run", ""),
            }
        )
    return pd.DataFrame(rows)


def write_table(table: pd.DataFrame, path: Path) -> Path:
    with atomic_path(path) as temporary:
        table.to_csv(temporary, index=False)
    return path


def format_table(table: pd.DataFrame, metric: str) -> str:
    """The trials for the terminal: the value named by the metric, the run folder left out (it is in the CSV)."""
    shown = table.drop(columns=["run"]).rename(columns={"value": metric})
    leaves = {column: str(column).rsplit(".", 1)[-1] for column in shown.columns}  # model.estimator.regressor.lr: lr
    if len(set(leaves.values())) == len(leaves):
        shown = shown.rename(columns=leaves)
    return shown.to_string(index=False, float_format=lambda value: f"{value:.6g}", na_rep="")


def write_plots(study: optuna.Study, folder: Path, metric: str) -> list[Path]:
    """Optuna's optimisation history, parameter importances and parallel coordinates (its matplotlib backend). A plot
    Optuna cannot draw yet (importances need two finished trials that differ) is skipped with the reason."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as optuna_plots

    written = []
    plots = {
        "optimization_history.png": optuna_plots.plot_optimization_history,
        "param_importances.png": optuna_plots.plot_param_importances,
        "parallel_coordinate.png": optuna_plots.plot_parallel_coordinate,
    }
    for name, plot in plots.items():
        try:
            with warnings.catch_warnings():  # "experimental" warnings of the matplotlib backend
                warnings.simplefilter("ignore")
                axes = plot(study, target_name=metric)
        except (ValueError, RuntimeError, ZeroDivisionError) as error:
            log.warning("no %s: %s", name, error)
            continue
        figure = (axes.flat[0] if isinstance(axes, np.ndarray) else axes).figure  # some plots return a grid
        figure.set_size_inches(10, 6)
        with atomic_path(folder / name) as temporary:
            figure.savefig(temporary, dpi=100, bbox_inches="tight")
        plt.close(figure)
        written.append(folder / name)
    return written


def preset_header(
    project: str, search: str, study: str, best: optuna.trial.FrozenTrial, metric: str, count: int
) -> list[str]:
    return [
        f"Written by `python -m projects.{project} tune search={search} study={study}` on "
        f"{datetime.now().isoformat(timespec='seconds')}:",
        f"the best of {count} trials (trial {best.number}), {metric} = {best.value:.6g}; the test split was not read.",
        f"Train it: python -m projects.{project} train experiment={preset_name(study)}",
    ]
