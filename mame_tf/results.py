"""Aggregate run directories into result files: curves over seeds, final numbers and a plot.

``aggregate({"mame": ["runs/a_s0", "runs/a_s1"], ...}, "results/point_corner")`` writes

* ``<out>_curves.csv``: per label and iteration, the mean, std, min and max over seeds of each metric
  (up to the shortest run of the label);
* ``<out>_final.csv``: per run, each metric averaged over its last ``final_window`` iterations;
* ``<out>.png``: one panel per metric, mean over seeds with a min..max band.

Metrics missing from any run (``final_goal_distance`` exists only on the point tasks) are skipped.
Used by ``benchmarks/plot_results.py`` and ``launchers/compare.py``.
"""
from __future__ import annotations

import csv
import os
from typing import Mapping, Sequence

import numpy as np

DEFAULT_METRICS = ("post_adapt/return", "post_adapt/final_goal_distance")


def load_progress(run_dir: str) -> dict[str, np.ndarray]:
    """The columns of ``run_dir/progress.csv`` as float arrays (empty dict if it has no rows)."""
    with open(os.path.join(run_dir, "progress.csv"), newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return {}
    return {k: np.array([float(r[k]) if r[k] not in ("", None) else np.nan for r in rows]) for k in rows[0]}


def aggregate(groups: Mapping[str, Sequence[str]], out: str, metrics: Sequence[str] = DEFAULT_METRICS,
              final_window: int = 10, title: str = "") -> dict[str, list[tuple[str, dict[str, float]]]]:
    """Write the curves CSV, the final CSV and the PNG; returns ``{label: [(run, {metric: final})]}``."""
    runs = {}
    for label, dirs in groups.items():
        loaded = [(os.path.basename(os.path.normpath(d)), load_progress(d)) for d in dirs]
        loaded = [(name, data) for name, data in loaded if data]
        if not loaded:
            raise ValueError(f"{label!r}: none of its run directories has progress rows ({list(dirs)})")
        runs[label] = loaded
    metrics = [m for m in metrics if all(m in data for group in runs.values() for _, data in group)]
    if not metrics:
        raise ValueError("none of the requested metrics is logged by every run")
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)

    with open(out + "_curves.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["algorithm", "iteration", "env_steps", "seeds"] +
                        [f"{m}_{s}" for m in metrics for s in ("mean", "std", "min", "max")])
        for label, group in runs.items():
            n = min(len(d["iteration"]) for _, d in group)
            for i in range(n):
                stats = [f([d[m][i] for _, d in group]) for m in metrics for f in (np.mean, np.std, np.min, np.max)]
                writer.writerow([label, int(group[0][1]["iteration"][i]), int(group[0][1]["env_steps"][i]),
                                 len(group)] + [f"{s:.6g}" for s in stats])

    finals: dict[str, list[tuple[str, dict[str, float]]]] = {}
    with open(out + "_final.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["algorithm", "run", "iterations"] + [f"{m}_last{final_window}" for m in metrics])
        for label, group in runs.items():
            for name, d in group:
                values = {m: float(d[m][-final_window:].mean()) for m in metrics}
                finals.setdefault(label, []).append((name, values))
                writer.writerow([label, name, int(d["iteration"][-1])] + [f"{values[m]:.4f}" for m in metrics])

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(6 * len(metrics), 4.2), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        for label, group in runs.items():
            n = min(len(d["iteration"]) for _, d in group)
            vals = np.array([d[m][:n] for _, d in group])
            seeds = f"{len(group)} seed" + ("s" if len(group) > 1 else "")
            ax.plot(group[0][1]["iteration"][:n], vals.mean(0), label=f"{label} ({seeds})")
            ax.fill_between(group[0][1]["iteration"][:n], vals.min(0), vals.max(0), alpha=0.2)
        ax.set_xlabel("iteration")
        ax.set_ylabel(m)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{title}: mean over seeds, band = min..max" if title else "mean over seeds, band = min..max")
    fig.tight_layout()
    fig.savefig(out + ".png", dpi=110)
    plt.close(fig)
    return finals
