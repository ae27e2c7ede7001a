"""Aggregate training runs into result curves: a CSV and a PNG (mean and spread over seeds).

    python benchmarks/plot_results.py --runs='mame=runs/mame-point_corner-seed*' \
        --runs='maml_vpg=runs/maml_vpg-point_corner-seed*' --out=results/point_corner

Writes ``<out>_curves.csv`` (per algorithm and iteration: mean, std, min and max over seeds of each
metric), ``<out>_final.csv`` (per run: the metrics averaged over its last ``--final_window``
iterations) and ``<out>.png`` (see ``mame_tf.results``).
"""
from __future__ import annotations

import glob
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from mame_tf.results import DEFAULT_METRICS, aggregate  # noqa: E402

flags.DEFINE_multi_string("runs", [], "label=glob of run directories (repeatable).")
flags.DEFINE_string("out", "results/point_corner", "Output path prefix.")
flags.DEFINE_list("metrics", list(DEFAULT_METRICS), "Metrics to aggregate.")
flags.DEFINE_integer("final_window", 10, "Iterations averaged for the final numbers.", lower_bound=1)
flags.DEFINE_string("title", "point_corner", "Plot title.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    if not FLAGS.runs:
        raise app.UsageError("give at least one --runs=label=glob")
    groups = {}
    for spec in FLAGS.runs:
        if "=" not in spec:
            raise app.UsageError(f"--runs={spec!r} is invalid; expected label=glob")
        label, pattern = spec.split("=", 1)
        dirs = sorted(d for d in glob.glob(pattern) if os.path.exists(os.path.join(d, "progress.csv")))
        if not dirs:
            raise app.UsageError(f"--runs: no run directory with a progress.csv matches {pattern!r}")
        groups[label] = dirs
    aggregate(groups, FLAGS.out, FLAGS.metrics, FLAGS.final_window, FLAGS.title)
    print(f"wrote {FLAGS.out}_curves.csv, {FLAGS.out}_final.csv, {FLAGS.out}.png")


if __name__ == "__main__":
    app.run(main)
