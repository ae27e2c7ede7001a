"""Aggregate training runs into result curves: a CSV and a PNG (mean and spread over seeds).

    python benchmarks/plot_results.py --runs='mame=runs/mame-point_corner-seed*' \
        --runs='maml_vpg=runs/maml_vpg-point_corner-seed*' --out=results/point_corner

Writes ``<out>_curves.csv`` (per algorithm and iteration: mean, std, min and max over seeds of each
metric), ``<out>_final.csv`` (per run: the metrics averaged over its last ``--final_window``
iterations) and ``<out>.png``.
"""
from __future__ import annotations

import csv
import glob
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

flags.DEFINE_multi_string("runs", [], "label=glob of run directories (repeatable).")
flags.DEFINE_string("out", "results/point_corner", "Output path prefix.")
flags.DEFINE_list("metrics", ["post_adapt/return", "post_adapt/final_goal_distance"], "Metrics to aggregate.")
flags.DEFINE_integer("final_window", 10, "Iterations averaged for the final numbers.")
flags.DEFINE_string("title", "point_corner", "Plot title.")
FLAGS = flags.FLAGS


def load(path):
    with open(os.path.join(path, "progress.csv"), newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}


def main(argv):
    del argv
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = {}
    for spec in FLAGS.runs:
        label, pattern = spec.split("=", 1)
        dirs = sorted(d for d in glob.glob(pattern) if os.path.exists(os.path.join(d, "progress.csv")))
        if not dirs:
            raise SystemExit(f"no run directories match {pattern!r}")
        groups[label] = [(os.path.basename(d.rstrip("/")), load(d)) for d in dirs]
    os.makedirs(os.path.dirname(FLAGS.out) or ".", exist_ok=True)
    metrics = [m for m in FLAGS.metrics if all(m in data for runs in groups.values() for _, data in runs)]
    with open(FLAGS.out + "_curves.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["algorithm", "iteration", "env_steps", "seeds"] +
                        [f"{m}_{s}" for m in metrics for s in ("mean", "std", "min", "max")])
        for label, runs in groups.items():
            n = min(len(d["iteration"]) for _, d in runs)
            for i in range(n):
                vals = [[d[m][i] for _, d in runs] for m in metrics]
                stats = [f(v) for v in vals for f in (np.mean, np.std, np.min, np.max)]
                writer.writerow([label, int(runs[0][1]["iteration"][i]), int(runs[0][1]["env_steps"][i]), len(runs)]
                                + [f"{s:.6g}" for s in stats])
    with open(FLAGS.out + "_final.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["algorithm", "run", "iterations"] + [f"{m}_last{FLAGS.final_window}" for m in metrics])
        for label, runs in groups.items():
            for name, d in runs:
                writer.writerow([label, name, int(d["iteration"][-1])] +
                                [f"{d[m][-FLAGS.final_window:].mean():.4f}" for m in metrics])
    fig, axes = plt.subplots(1, len(metrics), figsize=(6 * len(metrics), 4.2), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        for label, runs in groups.items():
            n = min(len(d["iteration"]) for _, d in runs)
            it = runs[0][1]["iteration"][:n]
            vals = np.array([d[m][:n] for _, d in runs])
            ax.plot(it, vals.mean(0), label=f"{label} ({len(runs)} seeds)")
            ax.fill_between(it, vals.min(0), vals.max(0), alpha=0.2)
        ax.set_xlabel("iteration")
        ax.set_ylabel(m)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{FLAGS.title}: mean over seeds, band = min..max")
    fig.tight_layout()
    fig.savefig(FLAGS.out + ".png", dpi=110)
    print(f"wrote {FLAGS.out}_curves.csv, {FLAGS.out}_final.csv, {FLAGS.out}.png")


if __name__ == "__main__":
    app.run(main)
