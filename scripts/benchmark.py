"""Accuracy and speed benchmarks on the real data: one JSON line per benchmarked preset.

    python scripts/benchmark.py mnist                 # the default preset
    python scripts/benchmark.py mnist trainer=gpu     # extra overrides go to every preset
    python scripts/benchmark.py recommender --preset rating/mf   # rating presets run the 5 folds

Each preset is trained through the project's own command line, exactly as a user would run it,
into a runs folder of its own (`runs/benchmark/` unless PORTFOLIO_RUNS_DIR is set); the line
is read back from the run's `metrics.json`. Targets live in the issues and the README, not in tests.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from shared.cli import run  # noqa: E402
from shared.runs import read_metrics, successful_runs  # noqa: E402

# project -> [(label, overrides)]: what `benchmark.py <project>` trains. Add a project's presets here.
_RATING_MODELS = ("global_mean", "bias", "mf", "autorec")
_RANKING_MODELS = ("popularity", "item_item", "bpr", "two_tower")
BENCHMARKS: dict[str, list[tuple[str, list[str]]]] = {
    "mnist": [("default", [])],
    "recommender": [(f"rating/{name}", [f"experiment={name}"]) for name in _RATING_MODELS]
    + [(f"ranking/{name}", [f"experiment={name}"]) for name in _RANKING_MODELS],
}
# label prefix -> one extra override per fold: such presets train once per fold and report the mean of each
# metric and the total seconds (MovieLens' official folds u1..u5, as scikit-surprise reports RMSE).
FOLDS: dict[str, list[str]] = {"rating/": [f"data.fold={fold}" for fold in range(1, 6)]}
REPORTED = ("train_seconds", "samples_per_second", "epochs", "parameters", "device", "precision")


def benchmark(project: str, label: str, overrides: list[str]) -> dict[str, object]:
    """Train one preset and return its benchmark line."""
    module = importlib.import_module(f"projects.{project}.project")
    project_object = next(
        value() for name, value in vars(module).items() if name.endswith("Project") and name != "Project"
    )
    runs_dir = os.environ.setdefault("PORTFOLIO_RUNS_DIR", str(REPO / "runs" / "benchmark"))
    before = set(successful_runs(runs_dir, project))
    started = time.perf_counter()
    code = run(project_object, ["train", *overrides])
    wall = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"benchmark {project}/{label} failed with exit code {code}")
    [run_dir] = [path for path in successful_runs(runs_dir, project) if path not in before]
    metrics = read_metrics(run_dir)
    return {
        "project": project,
        "preset": label,
        **metrics["metrics"],
        **{key: metrics.get(key) for key in REPORTED},
        "wall_seconds": round(wall, 1),
        "run": str(run_dir),
    }


def benchmark_folds(project: str, label: str, overrides: list[str]) -> dict[str, object]:
    """One preset over its folds (or once): metrics averaged, seconds summed, each fold's run listed."""
    folds = next((extra for prefix, extra in FOLDS.items() if label.startswith(prefix)), None)
    if folds is None:
        return benchmark(project, label, overrides)
    lines = [benchmark(project, label, [*overrides, fold]) for fold in folds]
    line: dict[str, object] = {**lines[0], "folds": len(lines), "run": [entry["run"] for entry in lines]}
    for key, value in lines[0].items():
        if isinstance(value, float) and key != "samples_per_second":
            total = sum(float(entry[key]) for entry in lines)  # type: ignore[arg-type]
            line[key] = round(total if key.endswith("seconds") else total / len(lines), 4)
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("project", choices=sorted(BENCHMARKS))
    parser.add_argument("overrides", nargs="*", help="Hydra overrides added to every preset (trainer=gpu ...)")
    parser.add_argument("--preset", action="append", help="only these presets (default: all of the project's)")
    arguments = parser.parse_args()
    lines = []
    for label, overrides in BENCHMARKS[arguments.project]:
        if arguments.preset and label not in arguments.preset:
            continue
        lines.append(benchmark_folds(arguments.project, label, [*overrides, *arguments.overrides]))
    for line in lines:  # together at the end, after the training logs
        print(json.dumps(line))


if __name__ == "__main__":
    main()
