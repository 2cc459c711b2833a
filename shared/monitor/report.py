"""What `monitor` leaves in `<run>/monitoring/<timestamp>/`: `monitor.json`, `report.md`, and a reference-versus-new
histogram (PNG) for every drifted feature."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from shared.io import write_json, write_text
from shared.monitor.drift import FeatureDrift, Thresholds
from shared.reports import markdown_table, save_figure

MONITORING_DIR = "monitoring"
MONITOR_FILE = "monitor.json"
REPORT_FILE = "report.md"


def new_monitoring_dir(run_dir: Path) -> Path:
    """A fresh `<run>/monitoring/<timestamp>` folder, created exclusively (a suffix when the second is taken)."""
    stem = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    root = run_dir / MONITORING_DIR
    root.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 1000):
        candidate = root / (stem if attempt == 1 else f"{stem}.{attempt}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"no free monitoring folder name under {root}")


def plot_drift(result: FeatureDrift, reference: np.ndarray, new: np.ndarray, path: Path) -> Path:
    """The reference's and the new batch's distributions of one feature, as shares, side by side."""
    figure = Figure(figsize=(6, 3.6))
    axes = figure.add_subplot()
    if result.kind == "category":
        categories = np.union1d(reference, new)
        shares = [np.array([np.mean(values == category) for category in categories]) for values in (reference, new)]
        positions = np.arange(len(categories))
        axes.bar(positions - 0.2, shares[0], 0.4, label=f"reference ({len(reference)})")
        axes.bar(positions + 0.2, shares[1], 0.4, label=f"new ({len(new)})")
        axes.set_xticks(positions, [str(category)[:14] for category in categories], rotation=30, ha="right")
        axes.set_ylabel("share")
    else:
        reference, new = reference[np.isfinite(reference)], new[np.isfinite(new)]
        both = np.concatenate([reference, new])
        low, high = np.quantile(both, [0.005, 0.995]) if len(both) else (0.0, 1.0)
        bins = np.linspace(low, high if high > low else low + 1.0, 40)
        axes.hist(reference, bins, density=True, alpha=0.55, label=f"reference ({len(reference)})")
        axes.hist(new, bins, density=True, alpha=0.55, label=f"new ({len(new)})")
        axes.set_ylabel("density")
    size = f"AUC {result.auc:.3f}" if result.auc is not None else f"PSI {result.psi:.3f}"
    axes.set_title(f"{result.source} {result.feature}: {size}, adjusted p {result.adjusted_p_value:.2g}")
    axes.legend()
    return save_figure(figure, path)


def write_monitoring(
    folder: Path,
    summary: dict[str, Any],
    results: list[FeatureDrift],
    samples: dict[str, tuple[np.ndarray, np.ndarray]],
    thresholds: Thresholds,
) -> tuple[Path, Path]:
    """`monitor.json` (every feature's test and the verdict), the plots of the drifted ones, and `report.md`."""
    plots: dict[str, str] = {}
    for result in results:
        key = f"{result.source}:{result.feature}"
        if result.drifted and key in samples:
            name = f"{result.source}_{result.feature}".replace("/", "_").replace(" ", "_") + ".png"
            plot_drift(result, *samples[key], folder / name)
            plots[key] = name
    data = {**summary, "thresholds": thresholds.__dict__, "features": [result.as_dict() for result in results]}
    json_path = write_json(folder / MONITOR_FILE, data)
    table = pd.DataFrame(
        [
            {
                "feature": result.feature,
                "source": result.source,
                "kind": result.kind,
                "test": result.test,
                "statistic": _rounded(result.statistic),
                "p-value": _rounded(result.p_value, significant=True),
                "adjusted p": _rounded(result.adjusted_p_value, significant=True),
                "PSI": _rounded(result.psi),
                "drifted": "**yes**" if result.drifted else ("" if result.p_value is not None else result.note),
            }
            for result in results
        ]
    )
    verdict = "**drift**" if summary["drift"] else "no drift"
    drifted = [f"{result.source} `{result.feature}`" for result in results if result.drifted]
    lines = [
        f"# Monitoring: {summary['project']} run {summary['run']}",
        "",
        f"Verdict: {verdict}" + (f", in {', '.join(drifted)}." if drifted else "."),
        "",
        f"- new inputs: {summary['input']} ({summary['records']} readable of {summary['records_read']})",
        f"- reference: {summary['reference']}",
        f"- rule: a feature drifted when its Bonferroni-adjusted p-value < {thresholds.alpha} and its PSI ≥ "
        f"{thresholds.min_psi} (embedding: domain classifier AUC ≥ {thresholds.min_auc})",
        f"- at {summary['monitored_at']}",
        "",
        markdown_table(table),
    ]
    for key, name in plots.items():
        lines += [f"## {key}", "", f"![{key}]({name})", ""]
    markdown_path = write_text(folder / REPORT_FILE, "\n".join(lines) + "\n")
    return json_path, markdown_path


def _rounded(value: float | None, significant: bool = False) -> str:
    if value is None:
        return ""
    return f"{value:.3g}" if significant else f"{value:.4f}"
