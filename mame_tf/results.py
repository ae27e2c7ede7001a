"""Aggregate run directories into result files: curves over seeds, final numbers and a plot.

``aggregate({"mame": ["runs/a_s0", "runs/a_s1"], ...}, "results/point_corner")`` writes

* ``<out>_curves.csv``: per label and iteration, the mean, std, min and max over seeds of each metric
  (up to the shortest run of the label);
* ``<out>_final.csv``: per run, each metric averaged over its last ``final_window`` iterations;
* ``<out>_runs.csv``: every run's metrics per iteration in the long format of ``mame_tf.plotting``;
* ``<out>.png``: one panel per metric against environment steps, mean over seeds with a 95% bootstrap
  band, in the project's figure style (``mame_tf.plotting``; ``benchmarks/plot_results.py`` redraws it
  from ``<out>_runs.csv`` with other settings and writes the final table with confidence intervals).

Metrics missing from any run (``final_goal_distance`` exists only on the point tasks) are skipped.
Used by ``benchmarks/plot_results.py`` and ``launchers/compare.py``.
"""
from __future__ import annotations

import csv
import os
from typing import Mapping, Sequence

import numpy as np

DEFAULT_METRICS = ("post_adapt/return", "post_adapt/final_goal_distance")


def load_progress_rows(path: str) -> list[dict[str, str]]:
    """The rows of a ``progress.csv`` (empty if it does not exist)."""
    if not os.path.exists(path):
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def load_progress(run_dir: str) -> dict[str, np.ndarray]:
    """The columns of ``run_dir/progress.csv`` as float arrays (empty dict if it has no rows)."""
    rows = load_progress_rows(os.path.join(run_dir, "progress.csv"))
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

    from mame_tf import plotting

    pre = [m for m in ("pre_adapt/return",) if m not in metrics and all(m in d for g in runs.values() for _, d in g)]
    plotting.runs_to_long_csv(groups, out + "_runs.csv", pre + list(metrics))
    plotting.plot_curves(plotting.load_long_csv(out + "_runs.csv"), metrics, out + ".png", title,
                         plotting.family_of(title), smooth_window=1)
    return finals
