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


def progress_rows(run_dir: str) -> list[dict[str, str]]:
    """The rows of ``run_dir/progress.csv`` as written (empty if there is none): the one reader of that file."""
    try:
        with open(os.path.join(run_dir, "progress.csv"), newline="") as fh:
            return list(csv.DictReader(fh))
    except FileNotFoundError:
        return []


def load_progress(run_dir: str) -> dict[str, np.ndarray]:
    """The columns of ``run_dir/progress.csv`` as float arrays (empty dict if it has no rows)."""
    rows = progress_rows(run_dir)
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


# Two-sided 95 % quantiles of Student's t distribution, by degrees of freedom (1..30); beyond, the normal's.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """Mean and half-width of its 95 % confidence interval (Student's t; NaN for a single value)."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return float(x.mean()), float("nan")
    t = _T975[len(x) - 2] if len(x) - 1 <= len(_T975) else 1.96
    return float(x.mean()), float(t * x.std(ddof=1) / np.sqrt(len(x)))


def summary_table(finals: Mapping[str, list[tuple[str, dict[str, float]]]], out: str) -> list[tuple]:
    """One row per label: its number of runs and, per metric, the mean over them with a 95 % CI.

    ``finals`` is what :func:`aggregate` returns. Writes ``<out>_table.csv``; returns
    ``[(label, runs, {metric: (mean, ci95_halfwidth)})]``.
    """
    rows = []
    for label, items in finals.items():
        metrics = items[0][1]
        rows.append((label, len(items), {m: mean_ci95([values[m] for _, values in items]) for m in metrics}))
    metrics = list(rows[0][2]) if rows else []
    with open(out + "_table.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["algorithm", "runs"] + [f"{m}_{s}" for m in metrics for s in ("mean", "ci95")])
        for label, n, stats in rows:
            writer.writerow([label, n] + [f"{v:.4f}" for m in metrics for v in stats[m]])
    return rows
