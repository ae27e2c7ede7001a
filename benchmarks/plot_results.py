"""Paper figures and final tables from per-seed training curves (the style of ``mame_tf/plotting.py``).

From a long-format CSV (one row per run and iteration; columns ``algo, seed, iteration, env_steps,
pre_adapt/return, post_adapt/return`` and optionally more metrics, e.g. the goal distances)::

    python benchmarks/plot_results.py --csv=results/cheetah_dir_runs.csv
    python benchmarks/plot_results.py --csv=results/point_corner_strict_runs.csv \
        --algos=mame,vpg_inner_loop,reward_self_supervision,vanilla_dice,emaml_based \
        --out=results/point_corner_strict_ablations --final_window=10

From run directories (writes the long-format ``<out>_runs.csv`` first, then the same)::

    python benchmarks/plot_results.py --runs='mame=runs/cmp/mame_s*' --runs='promp=runs/cmp/promp_s*' \
        --out=results/point_corner_strict

Writes, for ``--out=P`` (default: the CSV's path without ``_runs.csv``):

* ``P.png``: one panel per metric (post-update return, pre-update return and, on the point tasks, the
  post-update final distance to the goal) against environment steps. Line: mean over seeds; band: 95%
  percentile-bootstrap CI of the mean over seeds (``--n_boot`` resamples, ``--boot_seed``); each seed
  smoothed by a trailing moving average over ``--smooth`` iterations (1: none); the caption under
  the figure states all of this; reference levels of the task family (from the file name or
  ``--family``); y limits robust to early spikes.
* ``P_table.csv`` and ``P_table.md``: per algorithm, each seed's mean over its last
  ``--final_window`` iterations (default 50), the mean over seeds and its 95% bootstrap CI.

Algorithm keys (``--algos`` order is the legend's): mame, maml_vpg, maml_trpo, promp, emaml, and MAME's
ablations vpg_inner_loop, reward_self_supervision, vanilla_dice, emaml_based; each has one colour and
display name in every figure of the project. ``--aggregate=PREFIX --labels=...`` redraws legacy
results kept only as ``PREFIX_curves.csv`` (mean/min/max over seeds) and ``PREFIX_final.csv``.
"""
from __future__ import annotations

import glob
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from mame_tf import plotting  # noqa: E402
from mame_tf.registry import FAMILIES  # noqa: E402

flags.DEFINE_string("csv", "", "Long-format CSV: algo, seed, iteration, env_steps and metric columns.")
flags.DEFINE_multi_string("runs", [], "algo=glob of run directories (repeatable); writes <out>_runs.csv.")
flags.DEFINE_string("aggregate", "", "Prefix of legacy <prefix>_curves.csv / <prefix>_final.csv files.")
flags.DEFINE_list("labels", [], "With --aggregate: file label=algorithm key pairs, in legend order.")
flags.DEFINE_string("out", "", "Output prefix (default: the CSV path without '_runs.csv').")
flags.DEFINE_list("algos", [], "Algorithm keys to draw, in legend order (default: all in the file).")
flags.DEFINE_list("metrics", [], "Metrics (default: post_adapt/return, pre_adapt/return and "
                  "post_adapt/final_goal_distance, those present).")
flags.DEFINE_integer("final_window", 50, "Last iterations averaged per seed for the final table.", lower_bound=1)
flags.DEFINE_integer("smooth", 10, "Trailing moving average over this many iterations per seed (1: none).",
                     lower_bound=1)
flags.DEFINE_integer("n_boot", plotting.DEFAULT_N_BOOT, "Bootstrap resamples.", lower_bound=100)
flags.DEFINE_integer("boot_seed", 0, "Seed of the bootstrap.")
flags.DEFINE_string("family", "", f"Task family for reference levels (default: from the file name): "
                    f"one of {', '.join(FAMILIES)}.")
flags.DEFINE_string("title", "", "Figure title (default: the output name).")
flags.DEFINE_string("budget", "", "Budget sentence for the caption, e.g. '300 iterations of 40 tasks x 20 "
                    "episodes, horizon 100'.")
flags.DEFINE_list("stability", ["mame"], "Algorithms whose runs get the stability table <out>_stability.md "
                  "(first, best and final window means of the post-update return; empty: none).")
flags.DEFINE_integer("stability_window", 50, "Window of the stability criterion, in iterations.", lower_bound=1)
FLAGS = flags.FLAGS

DEFAULT_METRICS = ("post_adapt/return", "pre_adapt/return", "post_adapt/final_goal_distance")


def main(argv):
    del argv
    sources = [bool(FLAGS.csv), bool(FLAGS.runs), bool(FLAGS.aggregate)]
    if sum(sources) != 1:
        raise app.UsageError("give exactly one of --csv, --runs or --aggregate")
    if FLAGS.family and FLAGS.family not in FAMILIES:
        raise app.UsageError(f"--family={FLAGS.family!r} is invalid; valid choices: {', '.join(FAMILIES)}")
    out = FLAGS.out
    if FLAGS.runs:
        if not out:
            raise app.UsageError("--runs needs --out")
        groups = {}
        for spec in FLAGS.runs:
            if "=" not in spec:
                raise app.UsageError(f"--runs={spec!r} is invalid; expected algo=glob")
            key, pattern = spec.split("=", 1)
            dirs = sorted(d for d in glob.glob(pattern) if os.path.exists(os.path.join(d, "progress.csv")))
            if not dirs:
                raise app.UsageError(f"--runs: no run directory with a progress.csv matches {pattern!r}")
            groups[key] = dirs
        csv_path = plotting.runs_to_long_csv(groups, out + "_runs.csv")
        print(f"wrote {csv_path}")
    else:
        csv_path = FLAGS.csv
    if FLAGS.aggregate:
        if not out:
            out = FLAGS.aggregate
        pairs = [p.split("=", 1) for p in FLAGS.labels]
        if not pairs or any(len(p) != 2 for p in pairs):
            raise app.UsageError(f"--labels={','.join(FLAGS.labels)!r} is invalid; expected label=key pairs")
        for path in (FLAGS.aggregate + "_curves.csv", FLAGS.aggregate + "_final.csv"):
            if not os.path.exists(path):
                raise app.UsageError(f"--aggregate={FLAGS.aggregate!r}: {path} does not exist")
        groups = plotting.load_aggregate_csv(FLAGS.aggregate, dict(pairs))
        smooth = 1
    else:
        if not os.path.exists(csv_path):
            raise app.UsageError(f"--csv={csv_path!r}: no such file")
        if not out:
            out = csv_path[:-len("_runs.csv")] if csv_path.endswith("_runs.csv") else os.path.splitext(csv_path)[0]
        try:
            groups = plotting.load_long_csv(csv_path, FLAGS.algos or None)
        except ValueError as e:
            raise app.UsageError(str(e))
        smooth = FLAGS.smooth
    available = next(iter(groups.values())).values
    metrics = FLAGS.metrics or [m for m in DEFAULT_METRICS if m in available]
    bad = [m for m in metrics if m not in available]
    if bad:
        raise app.UsageError(f"--metrics: {', '.join(bad)} not in the data; it has {', '.join(available)}")
    family = FLAGS.family or plotting.family_of(out)
    title = FLAGS.title or os.path.basename(out)
    caption = plotting.plot_curves(groups, metrics, out + ".png", title, family, smooth, FLAGS.n_boot,
                                   FLAGS.boot_seed, FLAGS.budget)
    window = FLAGS.final_window
    rows = plotting.final_table(groups, metrics, window, FLAGS.n_boot, FLAGS.boot_seed)
    if FLAGS.aggregate:
        window = next(iter(groups.values())).final_window
        how = f"the mean over its last {window} iterations (from {os.path.basename(FLAGS.aggregate)}_final.csv)"
    else:
        how = f"the mean over its last {window} iterations"
    lines = plotting.write_final_table(
        rows, metrics, out,
        f"Per seed, {how}; then the mean over seeds and its 95% percentile-bootstrap CI "
        f"({FLAGS.n_boot:,} resamples, seed {FLAGS.boot_seed}).")
    print(f"wrote {out}.png, {out}_table.csv, {out}_table.md")
    print(caption)
    print("\n".join(lines))
    if not FLAGS.aggregate:
        write_stability(groups, out)


def write_stability(groups, out: str) -> None:
    """The stability table of the ``--stability`` algorithms that are in the data (with long-enough runs)."""
    metric, window = "post_adapt/return", FLAGS.stability_window
    chosen = {k: g for k, g in groups.items() if k in FLAGS.stability and metric in g.values}
    chosen = {k: g for k, g in chosen.items() if min(len(run["iteration"]) for run in g.full) >= window}
    if not chosen:
        return
    rows = plotting.stability_rows(chosen, metric, window)
    lines = plotting.write_stability_table(
        rows, out, f"first, best, final: the means of the first, the best (highest sliding) and the last "
        f"{window}-iteration windows of each seed's post-update return (unsmoothed); stable: final >= best "
        f"- 0.25 (best - first).")
    print(f"wrote {out}_stability.csv, {out}_stability.md")
    print("\n".join(lines))


if __name__ == "__main__":
    app.run(main)
