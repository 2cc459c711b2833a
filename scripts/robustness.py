"""Accuracy of a finished MNIST run on out-of-domain copies of its test digits, through predict's own path.

    python scripts/robustness.py                              # the latest mnist run, the 10,000 test digits
    python scripts/robustness.py run=runs/mnist/<run>         # a given run
    python scripts/robustness.py --split val                  # the validation digits: for choosing augmentation
    python scripts/robustness.py --limit 1000 --sets blur thin --markdown robustness.md

Each set is a degraded copy of every digit of the split, made with a fixed seed (`projects/mnist/degrade.py`):
low_res_8x8 (down-sampled to 8×8 and back), blur (Gaussian, sigma 1.5), grey_background (values in
[0.3, 0.6]), faint (×0.3), thick (3×3 grey dilation), thin (2×2 erosion), offset (moved 4-6 px), shrunk
(×0.5-0.7) and enlarged (×1.25-1.4, filling the frame); `clean` is the split as it is. Each degraded image is
quantised to 8 bits (as a PNG would be), read by the project's `parse_record` (the conversion of a user's image:
contrast stretch, re-fitting to 20×20 and centring), and predicted by `Run.predict`, as `predict` does.
One JSON line per set is printed, then a Markdown table. Choose training options on `--split val`; report
the test figures once.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from projects.mnist.data import DigitImages  # noqa: E402
from projects.mnist.degrade import DEGRADATIONS, degrade  # noqa: E402
from shared.config import compose_config  # noqa: E402
from shared.devices import inference_device  # noqa: E402
from shared.errors import PortfolioError, UsageError  # noqa: E402
from shared.project import Project  # noqa: E402
from shared.registry import load_project  # noqa: E402
from shared.runs import Run, load_run  # noqa: E402

SETS = ("clean", *DEGRADATIONS)
CHUNK = 1000  # records predicted at once: the eval batch size


def accuracy_on(project: Project, run: Run, cfg: DictConfig, images: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy on 8-bit images, each parsed by the project's `parse_record` and predicted by `run.predict`."""
    correct = 0
    for start in range(0, len(images), CHUNK):
        values = [project.parse_record(image, run, cfg) for image in images[start : start + CHUNK]]
        probabilities = np.asarray(run.predict(values))
        correct += int((probabilities.argmax(axis=1) == labels[start : start + CHUNK]).sum())
    return correct / len(images)


def markdown(lines: list[dict[str, object]]) -> str:
    """The lines as a Markdown table, one row per set."""
    rows = ["| set | accuracy | examples |", "| --- | ---: | ---: |"]
    rows += [f"| {line['set']} | {100 * float(line['accuracy']):.2f}% | {line['examples']} |" for line in lines]  # type: ignore[arg-type]
    return "\n".join(rows)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive count")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/robustness.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        help="predict overrides: run=PATH (default: the latest mnist run), trainer=cpu, data.<key>=VALUE",
    )
    parser.add_argument("--split", choices=("test", "val"), default="test", help="the digits degraded (default test)")
    parser.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS), metavar="SET", help=", ".join(SETS))
    parser.add_argument(
        "--limit", type=_positive, default=None, help="only the first N digits of the split (a quick look)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random degradations (default 0)")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table to this file")
    arguments = parser.parse_intermixed_args(argv)
    project = load_project("mnist")
    try:
        cfg = compose_config(project.name, "predict", arguments.overrides, project.config_dir)
        device = inference_device(cfg.get("trainer"))
        run = load_run(project, cfg.get("run"), cfg.paths, device, cfg.get("data"))
        data = run.prepared_data
        if not isinstance(data, DigitImages):
            raise UsageError(f"{run.directory} was trained on data without raw digit images.", "pass an mnist run.")
        images, labels = data.images(arguments.split), data.targets(arguments.split)
    except PortfolioError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    if arguments.limit:
        images, labels = images[: arguments.limit], labels[: arguments.limit]
    lines: list[dict[str, object]] = []
    for name in arguments.sets:
        started = time.perf_counter()
        degraded = images if name == "clean" else np.round(255 * degrade(images, name, arguments.seed))
        accuracy = accuracy_on(project, run, cfg, degraded.astype(np.uint8), labels)
        line = {
            "set": name,
            "split": arguments.split,
            "accuracy": round(accuracy, 4),
            "examples": len(labels),
            "seconds": round(time.perf_counter() - started, 1),
            "run": str(run.directory),
        }
        lines.append(line)
        print(json.dumps(line), flush=True)
    table = markdown(lines)
    print(f"\n{table}")
    if arguments.markdown:
        arguments.markdown.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
