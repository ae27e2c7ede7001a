"""MAME's training diagnostics on a MuJoCo family: collect runs into one CSV, then plot it.

    # 1. collect: one row per run and iteration, the diag/* columns of progress.csv
    python benchmarks/diagnose_collapse.py --collect \
        --runs=base_s0=runs/diag/mame_base_s0,base_s1=runs/diag/mame_base_s1 \
        --csv=results/cheetah_dir_diagnosis.csv
    # 2. plot (the committed figure is made from the committed CSV by this step alone)
    python benchmarks/diagnose_collapse.py --csv=results/cheetah_dir_diagnosis.csv \
        --out=results/cheetah_dir_diagnosis.png

A run label is ``<variant>_s<seed>``. The figure has one panel per quantity against the iteration,
one colour per run, smoothed with a centred running mean over ``--smooth`` iterations (stated in the
figure's title); the raw values are in the CSV. The plot step also prints a Markdown table per run:
iterations, the first/best/final 50-iteration window means of the post-update return and the
stability criterion (``mame_tf.stability``), and means over the final window of ‖z′ − z‖ (max over
tasks), M's error at z and at z′, and the fraction of post-update action means outside the bounds.
"""
from __future__ import annotations

import csv
import os
import sys

import numpy as np
from absl import app, flags

flags.DEFINE_bool("collect", False, "Read the run directories given by --runs and write --csv.")
flags.DEFINE_list("runs", [], "label=run_directory pairs (label: <variant>_s<seed>), for --collect.")
flags.DEFINE_string("csv", "results/cheetah_dir_diagnosis.csv", "The long-format CSV of the diagnostics.")
flags.DEFINE_string("out", "", "Figure to write (default: the CSV's name with .png).")
flags.DEFINE_integer("smooth", 10, "Window of the centred running mean drawn (1: raw).", lower_bound=1)
FLAGS = flags.FLAGS

COLUMNS = (
    "iteration", "env_steps", "pre_adapt/return", "post_adapt/return",
    "diag/z_shift_mean", "diag/z_shift_max", "diag/inner_grad_norm_mean", "diag/inner_grad_norm_max",
    "diag/z_norm", "diag/exploit_log_std", "diag/explore_log_std", "diag/post_action_out_of_bounds",
    "diag/post_mean_out_of_bounds", "grad_norm/theta", "grad_norm/beta", "grad_norm/phi", "grad_norm/z",
    "diag/inner_error_pre_mean", "diag/inner_error_post_mean", "diag/target_mean", "diag/target_std",
)
# (title, [(column, line style)]) per panel
PANELS = (
    ("post-update return", [("post_adapt/return", "-")]),
    ("‖z′ − z‖ over tasks (mean —, max --)", [("diag/z_shift_mean", "-"), ("diag/z_shift_max", "--")]),
    ("‖∇_z L_inner‖ over tasks (mean —, max --)", [("diag/inner_grad_norm_mean", "-"),
                                                  ("diag/inner_grad_norm_max", "--")]),
    ("M's error on the standardised target (at z —, at z′ --)", [("diag/inner_error_pre_mean", "-"),
                                                               ("diag/inner_error_post_mean", "--")]),
    ("post-update action means outside the bounds (fraction)", [("diag/post_mean_out_of_bounds", "-")]),
    ("exploitation policy mean log-std", [("diag/exploit_log_std", "-")]),
    ("outer gradient norm: θ —, β --", [("grad_norm/theta", "-"), ("grad_norm/beta", "--")]),
    ("outer gradient norm: φ —, z --", [("grad_norm/phi", "-"), ("grad_norm/z", "--")]),
    ("‖z‖", [("diag/z_norm", "-")]),
)


def collect(pairs: list[str], path: str) -> None:
    rows = []
    for pair in pairs:
        if "=" not in pair:
            raise SystemExit(f"--runs entry {pair!r} is not label=run_directory")
        label, logdir = pair.split("=", 1)
        variant, _, seed = label.rpartition("_s")
        if not variant or not seed.isdigit():
            raise SystemExit(f"run label {label!r} must look like <variant>_s<seed>, e.g. base_s1")
        progress = os.path.join(logdir, "progress.csv")
        if not os.path.exists(progress):
            raise SystemExit(f"{progress} does not exist")
        with open(progress) as fh:
            for row in csv.DictReader(fh):
                rows.append({"variant": variant, "seed": seed, **{c: row.get(c, "") for c in COLUMNS}})
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["variant", "seed", *COLUMNS])
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} rows of {len(pairs)} runs to {path}")


def running_mean(y: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(y) < window:
        return y
    kernel = np.ones(window) / window
    padded = np.pad(y, (window // 2, window - 1 - window // 2), mode="edge")
    return np.convolve(padded, kernel, mode="valid")


def plot(path: str, out: str, window: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise SystemExit(f"{path} has no rows")
    runs: dict[str, list[dict]] = {}
    for row in rows:
        runs.setdefault(f"{row['variant']} seed {row['seed']}", []).append(row)
    fig, axes = plt.subplots(3, 3, figsize=(15, 11), sharex=True)
    colours = plt.get_cmap("tab10")
    for ax, (title, series) in zip(axes.ravel(), PANELS):
        for i, (label, run) in enumerate(sorted(runs.items())):
            it = np.array([float(r["iteration"]) for r in run])
            for column, style in series:
                y = np.array([float(r[column]) if r[column] not in ("", None) else np.nan for r in run])
                ax.plot(it, running_mean(y, window), style, color=colours(i % 10), lw=1.2,
                        label=label if (column, style) == series[0] else None)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("iteration")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"MAME diagnostics ({os.path.basename(path)}; centred running mean over {window} iterations)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def table(path: str, window: int = 50) -> str:
    """The per-run Markdown table described in the module docstring."""
    from mame_tf.stability import is_stable, window_means

    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    runs: dict[tuple[str, int], list[dict]] = {}
    for row in rows:
        runs.setdefault((row["variant"], int(row["seed"])), []).append(row)
    lines = ["| run | iterations | first | best | final | stable | ‖z′−z‖ max | M error at z | at z′ | "
             "action means out of bounds |", "|---|---|---|---|---|---|---|---|---|---|"]
    for (variant, seed), run in sorted(runs.items()):
        col = lambda key: np.array([float(r[key]) for r in run])  # noqa: E731
        ret, last = col("post_adapt/return"), slice(-window, None)
        if len(ret) >= window:
            first, best, final = window_means(ret, window)
            cells = f"{first:.0f} | {best:.0f} | {final:.0f} | {'yes' if is_stable(ret, window) else 'no'}"
        else:
            cells = "– | – | – | (too short)"
        lines.append(
            f"| {variant} seed {seed} | {len(ret)} | {cells} | {col('diag/z_shift_max')[last].mean():.1f} | "
            f"{col('diag/inner_error_pre_mean')[last].mean():.1f} | {col('diag/inner_error_post_mean')[last].mean():.1f} | "
            f"{col('diag/post_mean_out_of_bounds')[last].mean():.2f} |")
    return "\n".join(lines)


def main(argv):
    del argv
    if FLAGS.collect:
        collect(FLAGS.runs, FLAGS.csv)
    plot(FLAGS.csv, FLAGS.out or os.path.splitext(FLAGS.csv)[0] + ".png", FLAGS.smooth)
    print(table(FLAGS.csv))


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    app.run(main)
