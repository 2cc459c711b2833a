"""The `compare` command: every finished run of a project in one table, from the runs themselves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig

from shared.errors import RunNotFoundError, UsageError
from shared.io import atomic_path, write_text
from shared.project import Project
from shared.runs import read_metrics, successful_runs

LOWER_IS_BETTER = ("loss", "nll", "rmse", "mae", "error", "seconds")


def runs_table(runs_dir: str | Path, project: str) -> pd.DataFrame:
    """One row per finished run: where it is, what it trained, its metrics and cost."""
    root = Path(runs_dir).expanduser() / project
    rows: list[dict[str, Any]] = []
    for run in successful_runs(runs_dir, project):
        metrics = read_metrics(run)
        rows.append(
            {
                "run": run.relative_to(root).as_posix(),
                "model": str(metrics.get("model", "")).rsplit(".", 1)[-1],
                "experiment": metrics.get("experiment") or "",
                **metrics.get("metrics", {}),
                "train_seconds": metrics.get("train_seconds"),
                "finished_at": metrics.get("finished_at"),
            }
        )
    return pd.DataFrame(rows)


def to_markdown(table: pd.DataFrame) -> str:
    """A Markdown table (numbers to 4 decimals), without extra dependencies."""

    def cell(value: Any) -> str:
        return f"{value:.4f}" if isinstance(value, float) else ("" if value is None else str(value))

    lines = ["| " + " | ".join(table.columns) + " |", "|" + " --- |" * len(table.columns)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


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
        descending = cfg.get("descending")
        if descending is None:
            descending = not any(word in cfg.sort for word in LOWER_IS_BETTER)
        table = table.sort_values(cfg.sort, ascending=not descending, na_position="last")
    else:
        table = table.iloc[::-1]
    root = Path(cfg.paths.runs_dir).expanduser() / project.name
    markdown = to_markdown(table)
    write_text(root / "comparison.md", markdown)
    with atomic_path(root / "comparison.csv") as temporary:
        table.to_csv(temporary, index=False)
    print(markdown + f"\n{len(table)} runs; saved to {root / 'comparison.md'} and comparison.csv")
