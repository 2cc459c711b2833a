"""Declared metrics: which way each metric is better, and the one a project leads with.

A project declares its metrics once (`Metrics(headline="acc", goals={"acc": MAX, "nll": MIN})`). The core
reads the declaration to sort `compare`, to choose the checkpoint `monitor` (`val/<headline>`), and to
record the headline and each direction in `metrics.json`, where the site finds them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Goal(StrEnum):
    """Which way a metric is better. `NEITHER` for figures with a target rather than a direction
    (the coverage of a 90% interval should be 0.9, not as high as possible)."""

    MAX = "max"
    MIN = "min"
    NEITHER = "neither"


MAX, MIN, NEITHER = Goal.MAX, Goal.MIN, Goal.NEITHER

# What the core itself records for every run, beside the project's metrics.
CORE_GOALS: dict[str, Goal] = {"train_seconds": MIN, "samples_per_second": MAX, "parameters": NEITHER}


@dataclass(frozen=True)
class Metrics:
    """A project's metric names (unprefixed: `acc`, not `test/acc`) with their goals, and its headline."""

    headline: str
    goals: Mapping[str, Goal] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.headline not in self.goals:
            raise ValueError(f"the headline metric '{self.headline}' has no declared goal")

    def goal(self, name: str) -> Goal | None:
        """The goal of `name`, with or without its split prefix (`test/acc`, `val/nll`); None if undeclared."""
        bare = name.split("/", 1)[1] if "/" in name else name
        return self.goals.get(bare, CORE_GOALS.get(bare))

    def with_headline(self, headline: str) -> Metrics:
        """The same declaration led by another metric (a recommender scored by ratings or by ranking)."""
        return Metrics(headline, self.goals)

    def undeclared(self, names: list[str]) -> list[str]:
        """The names among `names` that have no goal: a project must declare every metric it reports."""
        return [name for name in names if self.goal(name) is None]
