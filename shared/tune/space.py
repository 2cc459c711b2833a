"""Search spaces: `configs/<project>/search/<name>.yaml`, read and checked before any trial runs.

    overrides: [model=extra_trees]          # every trial, and the preset the best one becomes
    trial_overrides: [cv.folds=0]           # the trials only (what makes a trial cheaper), not the preset
    retrain_overrides: [data.val_size=0]    # the retrain of the best preset only (the full train split)
    cv_folds: 3                             # scikit-learn trials: k-fold cross-validation on train (default 5)
    metric: val/acc                         # the objective; default val/<the project's headline>, never test/...
    pruner: {_target_: optuna.pruners.MedianPruner, n_startup_trials: 4}   # default: base_tune.yaml's
    enqueue: [{model.lr: 0.1}]              # trials to run first, before the sampler chooses
    params:
      model.lr: {type: float, low: 1.0e-4, high: 0.1, log: true}
      model.hidden: {type: int, low: 8, high: 64, step: 8}
      model: {type: categorical, choices: [cnn, mlp]}     # a config group's option, or any value

Every mistake is a `UsageError` naming the file, the key and the fix: an unknown type, low above high, a log scale
from zero, a key the composed train config lacks.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from shared.errors import UsageError

TYPES = ("float", "int", "categorical")
_FIELDS = {
    "float": {"type", "low", "high", "log", "step"},
    "int": {"type", "low", "high", "log", "step"},
    "categorical": {"type", "choices"},
}
_SECTIONS = {"overrides", "trial_overrides", "retrain_overrides", "cv_folds", "metric", "pruner", "enqueue", "params"}
_PLAIN = re.compile(r"^[A-Za-z0-9_.\-/]+$")
_ABSENT = object()


@dataclass(frozen=True)
class Param:
    """One dimension of the search: a config key and the values it may take."""

    key: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()

    @property
    def stored_choices(self) -> list[Any]:
        """The choices as Optuna stores them (`optuna_choice`): what a trial's value is compared with."""
        return [optuna_choice(choice) for choice in self.choices]

    def suggest(self, trial: Any) -> Any:
        """The trial's value for this key (an `optuna.Trial`'s suggest_* under the key's own name)."""
        if self.kind == "float":
            return trial.suggest_float(self.key, self.low, self.high, log=self.log, step=self.step)
        if self.kind == "int":
            return trial.suggest_int(self.key, self.low, self.high, log=self.log, step=self.step or 1)
        return trial.suggest_categorical(self.key, self.stored_choices)

    def override(self, value: Any) -> str:
        """The Hydra override that sets this key to `value` (a list or mapping choice arrives as its text)."""
        return f"{self.key}={override_value(value)}"

    @property
    def bounds(self) -> list[Any]:
        """The values that reach the ends of the space: checked against the config before the search."""
        return list(self.choices) if self.kind == "categorical" else [self.low, self.high]


@dataclass(frozen=True)
class SearchSpace:
    """A search file, checked: what every trial sets, what the trials alone set, what the retrain of the best
    alone sets, and the dimensions."""

    name: str
    path: Path
    params: tuple[Param, ...]
    overrides: tuple[str, ...] = ()
    trial_overrides: tuple[str, ...] = ()
    retrain_overrides: tuple[str, ...] = ()
    cv_folds: int | None = None
    metric: str | None = None
    pruner: dict[str, Any] | None = None
    enqueue: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    def trial_values(self, params: dict[str, Any]) -> list[str]:
        """The overrides of a trial's sampled values (by key, in the file's order)."""
        by_key = {param.key: param for param in self.params}
        return [by_key[key].override(value) for key, value in params.items() if key in by_key]


def search_dir(config_dir: Path) -> Path:
    return config_dir / "search"


def available(config_dir: Path) -> list[str]:
    return sorted(path.stem for path in search_dir(config_dir).glob("*.yaml"))


def load_search(config_dir: Path, name: str) -> SearchSpace:
    """The search `name` of a project's config folder, checked on its own (types, bounds, sections)."""
    path = search_dir(config_dir) / f"{name}.yaml"
    names = available(config_dir)
    if Path(str(name)).name != str(name) or not path.is_file():
        raise UsageError(
            f"no search space '{name}' ({path} does not exist).",
            f"choose one of: search={', search='.join(names)}" if names else f"write one: {path}",
        )
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise UsageError(f"{path} is not readable YAML ({str(error).splitlines()[0]}).", "fix its syntax.") from error
    if not isinstance(content, dict) or not isinstance(content.get("params"), dict) or not content["params"]:
        raise UsageError(
            f"{path} has no params: section.", "list the keys to search, e.g. params: {model.lr: {type: float, ...}}"
        )
    unknown = sorted(set(content) - _SECTIONS)
    if unknown:
        raise UsageError(
            f"{path} has unknown sections: {', '.join(unknown)}.", f"use only: {', '.join(sorted(_SECTIONS))}."
        )
    params = tuple(_param(path, str(key), spec) for key, spec in content["params"].items())
    folds = content.get("cv_folds")
    if folds is not None and (isinstance(folds, bool) or not isinstance(folds, int) or folds < 2):
        raise UsageError(f"{path}: cv_folds={folds!r} is not a number of folds.", "use cv_folds: 5 (at least 2).")
    enqueue = content.get("enqueue") or []
    keys = {param.key for param in params}
    if not isinstance(enqueue, list) or not all(isinstance(item, dict) and set(item) <= keys for item in enqueue):
        raise UsageError(
            f"{path}: enqueue must be a list of mappings from searched keys to values.",
            f"e.g. enqueue: [{{{next(iter(keys))}: ...}}]",
        )
    enqueue = [_enqueued(path, params, item) for item in enqueue]
    pruner = content.get("pruner")
    if pruner is not None and not (isinstance(pruner, dict) and "_target_" in pruner):
        raise UsageError(
            f"{path}: pruner must name an Optuna pruner.", "e.g. pruner: {_target_: optuna.pruners.NopPruner}"
        )
    return SearchSpace(
        name=name,
        path=path,
        params=params,
        overrides=_strings(path, "overrides", content.get("overrides")),
        trial_overrides=_strings(path, "trial_overrides", content.get("trial_overrides")),
        retrain_overrides=_strings(path, "retrain_overrides", content.get("retrain_overrides")),
        cv_folds=folds,
        metric=content.get("metric"),
        pruner=pruner,
        enqueue=tuple(enqueue),
    )


def _strings(path: Path, section: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) and "=" in item for item in value):
        raise UsageError(f"{path}: {section} must be a list of overrides.", f"e.g. {section}: [model=cnn]")
    return tuple(value)


def _enqueued(path: Path, params: tuple[Param, ...], item: dict[str, Any]) -> dict[str, Any]:
    """An `enqueue:` trial as Optuna takes it: each categorical value as its stored choice, and one of the choices
    (Optuna would otherwise warn and sample that parameter instead, so the trial would not be the one written)."""
    params_by_key = {param.key: param for param in params}
    values = {}
    for key, value in item.items():
        param = params_by_key[key]
        if param.kind == "categorical":
            value = optuna_choice(value)
            if value not in param.stored_choices:
                raise UsageError(
                    f"{path}: enqueue gives {key}={override_value(value)}, which is not among its choices.",
                    f"use one of: {', '.join(str(choice) for choice in param.stored_choices)}.",
                )
        values[key] = value
    return values


def _param(path: Path, key: str, spec: Any) -> Param:
    where = f"{path}: {key}"
    if not isinstance(spec, dict):
        raise UsageError(f"{where} is not a mapping.", f"e.g. {key}: {{type: float, low: 0.001, high: 0.1, log: true}}")
    kind = spec.get("type")
    if kind not in TYPES:
        raise UsageError(f"{where} has an unknown type {kind!r}.", f"use type: {', type: '.join(TYPES)}.")
    extra = sorted(set(spec) - _FIELDS[kind])
    if extra:
        raise UsageError(
            f"{where}: {kind} takes no {', '.join(extra)}.", f"use only: {', '.join(sorted(_FIELDS[kind]))}."
        )
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise UsageError(f"{where} has no choices.", "give a list: choices: [a, b].")
        return Param(key, kind, choices=tuple(choices))
    low, high, log, step = spec.get("low"), spec.get("high"), bool(spec.get("log", False)), spec.get("step")
    numbers = (int,) if kind == "int" else (int, float)
    for name, value in (("low", low), ("high", high), ("step", step)):
        if (value is not None or name != "step") and (
            isinstance(value, bool) or not isinstance(value, numbers) or not math.isfinite(value)
        ):
            raise UsageError(
                f"{where}: {name}={value!r} is not {'a whole number' if kind == 'int' else 'a number'}.",
                f"set {name} to one.",
            )
    if low > high:
        raise UsageError(f"{where}: low={low} is above high={high}.", "swap them: low is the smallest value searched.")
    if log and low <= 0:
        raise UsageError(f"{where}: a log scale cannot start at {low}.", "use a low above 0, or log: false.")
    if log and step is not None:
        raise UsageError(f"{where}: log and step do not go together.", "drop one of them.")
    if step is not None and step <= 0:
        raise UsageError(f"{where}: step={step} is not positive.", "use a step above 0.")
    return Param(key, kind, low=low, high=high, log=log, step=step)


def check_keys(space: SearchSpace, composed: DictConfig, group_options: dict[str, list[str]]) -> None:
    """Every searched key must exist in the train config composed with the search's overrides (a typo would otherwise
    be a failed trial, or a silently ignored value); a config group's choices must be its options."""
    for param in space.params:
        if param.key in group_options:
            unknown = [choice for choice in param.choices if str(choice) not in group_options[param.key]]
            if param.kind != "categorical" or unknown:
                raise UsageError(
                    f"{space.path}: {param.key} is a config group; {unknown or 'a number'} is not one of its options.",
                    f"use type: categorical with choices among: {', '.join(group_options[param.key])}.",
                )
            continue
        if OmegaConf.select(composed, param.key, default=_ABSENT, throw_on_missing=False) is _ABSENT:
            parent = param.key.rpartition(".")[0]
            node = OmegaConf.select(composed, parent, default=None) if parent else composed
            known = ", ".join(sorted(str(name) for name in node)) if isinstance(node, DictConfig) else ""
            where = parent or "the top level"
            raise UsageError(
                f"{space.path}: the train config has no key {param.key} (with the search's overrides: "
                f"{' '.join(space.overrides) or 'none'}).",
                f"search a key the config has{f'; {where} has: {known}' if known else ''}.",
            )


def optuna_choice(value: Any) -> Any:
    """A categorical choice as Optuna stores it: None, bools, numbers and strings as they are, a list or a mapping as
    its override text (Optuna's choices are plain values)."""
    return value if value is None or isinstance(value, bool | int | float | str) else override_value(value)


def override_value(value: Any) -> str:
    """`value` written as a Hydra override's value: null, true, 0.01, [24,48,96], a quoted string where needed."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(override_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{key}:{override_value(item)}" for key, item in value.items()) + "}"
    text = str(value)
    if _PLAIN.match(text) or (text.startswith(("[", "{")) and text.endswith(("]", "}"))):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
