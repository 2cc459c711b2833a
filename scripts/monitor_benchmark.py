"""The drift monitor's benchmark: how often it cries wolf, and how often it sees a real shift.

    python scripts/benchmark.py monitor                          # every project: 100 unshifted samples of 500
    python scripts/benchmark.py monitor --project housing --samples 20 --shift-samples 5

Per project, a small run is trained on the real data (PORTFOLIO_DATA_DIR), then `monitor`'s own steps (the
project's `read_file`, `monitored_features`, the drift tests, `judge`) run on predict-format files of:

* `--samples` random unshifted samples of `--size` inputs from the run's test split: the false-alarm rate
  (target ≤ 5%);
* `--shift-samples` samples of each shift the README lists (inland districts, incomes × 1.5; digits rotated 30°,
  Fashion-MNIST; SST-2's phrases and texts cut to three words against a model trained on rt-polarity's sentences;
  new users): the detection rate (target ≥ 95%), and the features each shift was flagged on. Inverted digits are
  reported apart: mnist's predict turns them back into light ink on dark before the model (or `monitor`) sees them.

One JSON line per project. The same shifts are the demonstrations in tests/test_monitor_integration.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from shared.cli import run as run_command  # noqa: E402
from shared.config import compose_config  # noqa: E402
from shared.monitor.command import drift_of  # noqa: E402
from shared.monitor.drift import Thresholds, judge  # noqa: E402
from shared.monitor.reference import REFERENCE_FILE, load_reference  # noqa: E402
from shared.registry import load_project  # noqa: E402
from shared.runs import Run, load_run, successful_runs  # noqa: E402

Rng = np.random.Generator
Inputs = Any  # a project's raw inputs: a frame of districts or pairs, an array of images, a list of texts


def _rows(count: int, size: int, rng: Rng) -> np.ndarray:
    return rng.choice(count, size=min(size, count), replace=False)


# --- housing ---------------------------------------------------------------------------------------
def housing_test(run: Run, rng: Rng, size: int) -> pd.DataFrame:
    frame = run.prepared_data.frame("test")
    return frame.iloc[_rows(len(frame), size, rng)]


def housing_inland(run: Run, rng: Rng, size: int) -> pd.DataFrame:
    frame = run.prepared_data.frame("test")
    inland = frame[frame["ocean_proximity"] == "INLAND"]
    return inland.iloc[_rows(len(inland), size, rng)]


def housing_richer(run: Run, rng: Rng, size: int) -> pd.DataFrame:
    sample = housing_test(run, rng, size).copy()
    sample["median_income"] = (sample["median_income"] * 1.5).round(4)
    return sample


def write_csv(inputs: pd.DataFrame, folder: Path) -> Path:
    path = folder / "inputs.csv"
    inputs.to_csv(path, index=False)
    return path


# --- mnist -------------------------------------------------------------------------------------------
def mnist_test(run: Run, rng: Rng, size: int) -> np.ndarray:
    images = run.prepared_data.images("test")
    return images[_rows(len(images), size, rng)]


def mnist_rotated(run: Run, rng: Rng, size: int) -> np.ndarray:
    from scipy import ndimage

    return np.stack([ndimage.rotate(image, 30, reshape=False, order=1) for image in mnist_test(run, rng, size)])


def mnist_inverted(run: Run, rng: Rng, size: int) -> np.ndarray:
    return 255 - mnist_test(run, rng, size)


def mnist_fashion(run: Run, rng: Rng, size: int) -> np.ndarray:
    from projects.mnist.data import FashionMnist

    fashion = FashionMnist(mirror_dir=os.environ.get("PORTFOLIO_DATA_DIR"))
    fashion.prepare()
    images = fashion.images("test")
    return images[_rows(len(images), size, rng)]


def write_npy(inputs: np.ndarray, folder: Path) -> Path:
    path = folder / "inputs.npy"
    np.save(path, inputs.astype(np.uint8))
    return path


# --- sentiment (a run trained on rt-polarity's sentences) -----------------------------------------------
def sentiment_test(run: Run, rng: Rng, size: int) -> list[str]:
    texts = run.prepared_data.inputs("test")
    return [texts[i] for i in _rows(len(texts), size, rng)]


def sentiment_sst2_phrases(run: Run, rng: Rng, size: int) -> list[str]:
    from projects.sentiment.data import Sst2

    sst2 = Sst2(mirror_dir=os.environ.get("PORTFOLIO_DATA_DIR"))
    sst2.prepare()
    texts = sst2.inputs("train")
    return [texts[i] for i in _rows(len(texts), size, rng)]


def sentiment_three_words(run: Run, rng: Rng, size: int) -> list[str]:
    return [" ".join(text.split()[:3]) for text in sentiment_test(run, rng, size)]


def write_lines(inputs: list[str], folder: Path) -> Path:
    path = folder / "inputs.txt"
    path.write_text("".join(text.replace("\n", " ") + "\n" for text in inputs), encoding="utf-8")
    return path


# --- recommender ---------------------------------------------------------------------------------------
def recommender_test(run: Run, rng: Rng, size: int) -> pd.DataFrame:
    """(user, item) pairs of the test split, by raw id. Under the ranking protocol (each user's interactions split at
    random: the test pairs are drawn like the training ones) the split is a relevance matrix over its users."""
    data = run.prepared_data
    rows, items = np.nonzero(data.targets("test"))
    chosen = _rows(len(rows), size, rng)
    users = data.inputs("test")[rows[chosen]]
    return pd.DataFrame({"user": data.user_ids[users], "item": data.item_ids[items[chosen]]})


def recommender_new_users(run: Run, rng: Rng, size: int) -> pd.DataFrame:
    """Pairs of the test split with every user replaced by one the data has never seen (ids above any known)."""
    sample = recommender_test(run, rng, size)
    first = int(max(int(user) for user in run.prepared_data.user_ids)) + 1
    return sample.assign(user=first + rng.integers(0, 200, len(sample)))


@dataclass(frozen=True)
class Demo:
    """A project's benchmark: the run it trains, its unshifted sample, its shifts, and how inputs are written."""

    overrides: tuple[str, ...]
    unshifted: Callable[[Run, Rng, int], Inputs]
    shifts: dict[str, Callable[[Run, Rng, int], Inputs]]
    write: Callable[[Inputs, Path], Path]
    needs: tuple[str, ...] = field(default=())  # mirror folders
    # changes the project's own input conversion undoes before the model sees them (mnist's predict turns dark ink on
    # light paper back into light on dark): reported, not counted as shifts to detect
    undone: dict[str, Callable[[Run, Rng, int], Inputs]] = field(default_factory=dict)


DEMOS: dict[str, Demo] = {
    "housing": Demo(
        ("model=extra_trees", "model.estimator.regressor.n_estimators=40", "cv.folds=0"),
        housing_test,
        {"inland_only": housing_inland, "income_x1.5": housing_richer},
        write_csv,
        ("california-housing",),
    ),
    "mnist": Demo(
        ("experiment=quick", "trainer=cpu", "logger=csv"),
        mnist_test,
        {"rotated_30": mnist_rotated, "fashion_mnist": mnist_fashion},
        write_npy,
        ("mnist", "fashion-mnist"),
        {"inverted": mnist_inverted},
    ),
    "sentiment": Demo(
        ("data=rt_polarity", "model=tfidf_lr", "model.cv=1"),
        sentiment_test,
        {"sst2_phrases": sentiment_sst2_phrases, "three_words": sentiment_three_words},
        write_lines,
        ("rt-polarity", "sst2"),
    ),
    "recommender": Demo(
        # ranking: MovieLens' official rating folds hold out only users 1-462 in u1.test, a real shift in who asks
        ("experiment=popularity", "trainer=cpu", "logger=csv"),
        recommender_test,
        {"new_users": recommender_new_users},
        write_csv,
        ("movielens-100k",),
    ),
}


def monitored(project_name: str, run: Run, inputs: Inputs, demo: Demo, thresholds: Thresholds) -> list[str]:
    """The features `monitor` flags in `inputs`, read from a predict-format file as the command reads it."""
    project = run.project
    reference = load_reference(run.directory / REFERENCE_FILE)
    cfg = compose_config(project_name, "predict", [f"run={run.directory}"])
    with tempfile.TemporaryDirectory() as folder:
        items = project.read_file(demo.write(inputs, Path(folder)), run, cfg)
    values = [item.value for item in items if item.error is None]
    results, _ = drift_of(project, run, reference, values)
    judge(results, thresholds)
    return [f"{result.source}:{result.feature}" for result in results if result.drifted]


def train_run(project_name: str, overrides: tuple[str, ...]) -> Run:
    runs_dir = os.environ.setdefault("PORTFOLIO_RUNS_DIR", str(REPO / "runs" / "benchmark-monitor"))
    before = set(successful_runs(runs_dir, project_name))
    if run_command(load_project(project_name), ["train", *overrides]) != 0:
        raise SystemExit(f"monitor benchmark: training {project_name} failed")
    [directory] = [path for path in successful_runs(runs_dir, project_name) if path not in before]
    project = load_project(project_name)
    cfg = compose_config(project_name, "predict", [f"run={directory}"])
    return load_run(project, directory, cfg.paths)


def benchmark(project_name: str, samples: int, shift_samples: int, size: int, seed: int = 0) -> dict[str, Any]:
    demo = DEMOS[project_name]
    started = time.perf_counter()
    run = train_run(project_name, demo.overrides)
    thresholds, rng = Thresholds(), np.random.default_rng(seed)
    false_alarms = Counter[str]()
    alarms = 0
    for _ in range(samples):
        flagged = monitored(project_name, run, demo.unshifted(run, rng, size), demo, thresholds)
        alarms += bool(flagged)
        false_alarms.update(flagged)
    detected: dict[str, float] = {}
    flagged_on: dict[str, dict[str, int]] = {}
    undone: dict[str, float] = {}
    for name, change in demo.undone.items():
        flags = [monitored(project_name, run, change(run, rng, size), demo, thresholds) for _ in range(shift_samples)]
        undone[name] = sum(bool(flagged) for flagged in flags) / max(1, shift_samples)
    for name, shift in demo.shifts.items():
        counts, hits = Counter[str](), 0
        for _ in range(shift_samples):
            flagged = monitored(project_name, run, shift(run, rng, size), demo, thresholds)
            hits += bool(flagged)
            counts.update(flagged)
        detected[name], flagged_on[name] = hits / shift_samples, dict(counts.most_common())
    return {
        "project": project_name,
        "run": str(run.directory),
        "size": size,
        "unshifted_samples": samples,
        "false_alarm_rate": round(alarms / samples, 4) if samples else None,
        "false_alarms_on": dict(false_alarms.most_common()),
        "shift_samples": shift_samples,
        "detection_rate": round(sum(detected.values()) / len(detected), 4) if shift_samples else None,
        "detection_by_shift": detected,
        "flagged_on": flagged_on,
        "flag_rate_of_changes_the_conversion_undoes": undone,
        "seconds": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", action="append", choices=sorted(DEMOS), help="default: every project")
    parser.add_argument("--samples", type=int, default=100, help="unshifted samples per project")
    parser.add_argument("--shift-samples", type=int, default=20, help="samples per shift")
    parser.add_argument("--size", type=int, default=500, help="inputs per sample")
    arguments = parser.parse_args(argv)
    mirror = os.environ.get("PORTFOLIO_DATA_DIR")
    if not mirror:
        raise SystemExit("set PORTFOLIO_DATA_DIR to the data mirror: the benchmark runs on the real data")
    os.environ.setdefault("PORTFOLIO_OFFLINE", "1")
    for name in arguments.project or sorted(DEMOS):
        missing = [folder for folder in DEMOS[name].needs if not (Path(mirror) / folder).is_dir()]
        if missing:
            print(f"skipping {name}: no {', '.join(missing)} in {mirror}", file=sys.stderr)
            continue
        line = benchmark(name, arguments.samples, arguments.shift_samples, arguments.size)
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
