"""Settings checked where a data class or a model reads them: a value that cannot work (`batch_size=0`,
`test_size=1.5`, `folds=abc`) is a `UsageError` naming the key and a value that would, before any data is read,
rather than a traceback from deep inside NumPy, scikit-learn or a DataLoader, or a quietly different run.

Hydra hands an override over as it parses it: `abc` arrives as a string, `1.5` as a float, `true` as a bool.
"""

from __future__ import annotations

import math
from typing import Any

from shared.errors import UsageError


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def whole(value: Any, key: str, minimum: int = 1, example: int | None = None) -> int:
    """`value` as an int of at least `minimum` (`1.0` is 1; `1.5`, `abc` and booleans are refused)."""
    if not _is_number(value) or not math.isfinite(value) or int(value) != value or value < minimum:
        shown = example if example is not None else max(minimum, 1)
        raise UsageError(
            f"{key}={value!r} is not a whole number of at least {minimum}.", f"set {key} to one, e.g. {key}={shown}."
        )
    return int(value)


def positive(value: Any, key: str, example: float, optional: bool = False) -> float | None:
    """`value` as a finite number above 0; with `optional`, None (the setting is off) passes as None."""
    if optional and value is None:
        return None
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        off = f", or {key}=null for none" if optional else ""
        raise UsageError(f"{key}={value!r} is not a positive number.", f"set {key} to one, e.g. {key}={example}{off}.")
    return float(value)


def fraction(value: Any, key: str, example: float, zero: bool = False) -> float:
    """`value` as a share strictly between 0 and 1 (0 allowed when `zero`: the feature is off)."""
    low = "0 (off) up to" if zero else "between 0 and"
    if not _is_number(value) or not (0 <= value < 1 if zero else 0 < value < 1):
        raise UsageError(
            f"{key}={value!r} is not a fraction {low} 1 (exclusive).", f"set {key} to one, e.g. {key}={example}."
        )
    return float(value)


def share_or_count(value: Any, key: str, example: float, split: str = "validation", optional: bool = False) -> float:
    """A held-out part's size: a fraction strictly between 0 and 1, or a whole count of at least 1.

    0 means no such split where the data can do without one (`optional`: training on every example, as the retrain
    of a tuned preset does); elsewhere it is refused with its own fix, since a split the data needs cannot be off."""
    if _is_number(value) and value == 0 and optional:
        return 0
    if _is_number(value) and value == 0:
        raise UsageError(
            f"{key}=0 asks for no {split} split, which this data does not support.",
            f"use a positive {key}: a fraction like {key}={example}, or a count of examples like {key}=100.",
        )
    if _is_number(value) and math.isfinite(value) and (0 < value < 1 or (value >= 1 and int(value) == value)):
        return value
    raise UsageError(
        f"{key}={value!r} is neither a fraction between 0 and 1 nor a whole count of examples.",
        f"use a fraction like {key}={example}, or a count like {key}=100.",
    )


def seed(value: Any, key: str) -> int:
    """A random seed: any whole number of at least 0."""
    return whole(value, key, minimum=0, example=0)
