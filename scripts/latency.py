"""Per-record prediction latency of a finished run: what one HTTP request will cost, measured on the core's path.

    python scripts/latency.py mnist input=digits/                 # the latest mnist run, each image alone
    python scripts/latency.py sentiment input=reviews.txt run=runs/sentiment/<run> --repeats 200

The run is loaded once (`shared.runs.load_run`), the input's records are parsed once (`Project.read_file`),
then each record is predicted on its own through `shared.predict.predict_values`, as `serve` will, and the
median and 95th percentile of the wall time per record are printed as one JSON line. No Trainer is built.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from shared.config import compose_config  # noqa: E402
from shared.devices import inference_device  # noqa: E402
from shared.predict import predict_values, read_items  # noqa: E402
from shared.registry import load_project  # noqa: E402
from shared.runs import load_run  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("project")
    parser.add_argument("overrides", nargs="*", help="predict overrides: input=PATH (required), run=PATH, trainer=cpu")
    parser.add_argument("--repeats", type=int, default=100, help="records predicted (cycling through the input)")
    arguments = parser.parse_args()
    project = load_project(arguments.project)
    cfg = compose_config(project.name, "predict", arguments.overrides, project.config_dir)
    started = time.perf_counter()
    run = load_run(project, cfg.get("run"), cfg.paths, inference_device(cfg.get("trainer")))
    load_seconds = time.perf_counter() - started
    values = [item.value for item in read_items(project, run, cfg) if item.error is None]
    if not values:
        raise SystemExit("no readable record in the input")
    predict_values(project, run, values[:1], cfg)  # warm-up: lazy imports, first CUDA kernels
    times = []
    for index in range(arguments.repeats):
        started = time.perf_counter()
        predict_values(project, run, [values[index % len(values)]], cfg)
        times.append(time.perf_counter() - started)
    times.sort()
    line = {
        "project": project.name,
        "run": str(run.directory),
        "model": run.metrics.get("choices", {}).get("model") or run.metrics.get("model"),
        "device": str(run.device),
        "load_seconds": round(load_seconds, 3),
        "records": arguments.repeats,
        "median_ms": round(1000 * statistics.median(times), 2),
        "p95_ms": round(1000 * times[int(0.95 * (len(times) - 1))], 2),
    }
    print(json.dumps(line))


if __name__ == "__main__":
    main()
