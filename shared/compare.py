"""The `compare` command: every finished run of a project in one table, from the runs themselves.

Each row says what the run was (its data, model and experiment choices and the overrides it was given) and
how it scored. Sorting follows the directions the project declares (`Project.metrics`): best first.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig

from shared.errors import RunNotFoundError, UsageError
from shared.io import atomic_path, write_text
from shared.metrics import Goal
from shared.project import Project
from shared.promotion import promoted_run
from shared.reports import markdown_table
from shared.runs import read_metrics, successful_runs

log = logging.getLogger(__name__)

IDENTITY = ("data", "model", "experiment")


def runs_table(runs_dir: str | Path, project: str) -> pd.DataFrame:
    """One row per finished run: where it is, whether `serve` uses it by default (promoted), what it trained, its
    metrics and cost."""
    root = Path(runs_dir).expanduser() / project
    promoted = _promoted_or_none(runs_dir, project)
    rows: list[dict[str, Any]] = []
    for run in successful_runs(runs_dir, project):
        metrics = read_metrics(run)
        choices = metrics.get("choices") or {}
        rows.append(
            {
                "run": run.relative_to(root).as_posix(),
                **{group: choices.get(group) or "" for group in IDENTITY},
                "overrides": " ".join(metrics.get("overrides") or []),
                "promoted": "yes" if promoted is not None and run.resolve() == promoted else "",
                **metrics.get("metrics", {}),
                "train_seconds": metrics.get("train_seconds"),
                "finished_at": metrics.get("finished_at"),
            }
        )
    return pd.DataFrame(rows)


def _promoted_or_none(runs_dir: str | Path, project: str) -> Path | None:
    """The promoted run, resolved; a broken record only costs the mark (with a warning), never the table."""
    try:
        promoted = promoted_run(runs_dir, project)
    except RunNotFoundError as error:
        log.warning("%s", error)
        return None
    return None if promoted is None else promoted.resolve()


def sort_descending(project: Project, metric: str, descending: bool | None) -> bool:
    """Whether `metric` sorts high first: as asked, else by its declared goal."""
    if descending is not None:
        return bool(descending)
    goal = project.metrics.goal(metric)
    if goal is None or goal is Goal.NEITHER:
        raise UsageError(
            f"'{metric}' has no better direction ({'not declared' if goal is None else 'a target, not a maximum'}).",
            f"say which way: compare sort={metric} descending=true (or false).",
        )
    return goal is Goal.MAX


def compare_command(project: Project, cfg: DictConfig) -> None:
    """Print the table and keep it as `runs/<project>/comparison.{md,csv}`."""
    table = runs_table(cfg.paths.runs_dir, project.name)
    if table.empty:
        raise RunNotFoundError(
            f"no finished {project.name} runs to compare under {cfg.paths.runs_dir}.",
            f"train some first: python -m projects.{project.name} train",
        )
    if cfg.get("sort"):
        if cfg.sort not in table.columns:
            metrics = [column for column in table.columns if "/" in column]
            raise UsageError(f"no metric '{cfg.sort}' in these runs.", f"sort by one of: {', '.join(metrics)}")
        descending = sort_descending(project, cfg.sort, cfg.get("descending"))
        table = table.sort_values(cfg.sort, ascending=not descending, na_position="last")
    else:
        table = table.iloc[::-1]
    root = Path(cfg.paths.runs_dir).expanduser() / project.name
    markdown = markdown_table(table)
    write_text(root / "comparison.md", markdown)
    with atomic_path(root / "comparison.csv") as temporary:
        table.to_csv(temporary, index=False)
    print(markdown + f"\n{len(table)} runs; saved to {root / 'comparison.md'} and comparison.csv")
