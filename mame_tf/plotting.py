"""The project's figures and result tables: one style for every algorithm, metric and task family.

Input is the *long format*, one row per run and iteration::

    algo,seed,iteration,env_steps,pre_adapt/return,post_adapt/return[,more metric columns]

(``results/<name>_runs.csv``; ``runs_to_long_csv`` writes it from run directories). From it:

* ``plot_curves``: one panel per metric against environment steps; a line is the mean over seeds, its
  band the 95% percentile-bootstrap confidence interval of that mean (seeded, ``n_boot`` resamples);
  optional trailing moving average per seed, stated in the caption; reference levels of the task
  family; y limits from the 1st..99th percentile of what is drawn after the first 5% of the x range,
  so an early spike cannot stretch the axis.
* ``final_table``: per algorithm, each seed's mean over its last ``window`` iterations, then the mean
  over seeds and its 95% bootstrap CI; ``write_final_table`` writes it as ``<out>_table.csv`` and ``<out>_table.md``.

Every algorithm and MAME ablation has one colour and one display name here (``STYLES``), used by
every figure of the project. Legacy aggregates (``<name>_curves.csv`` with mean/std/min/max over seeds
per iteration, from runs whose per-seed curves were not kept) are read by ``load_aggregate_csv``: with
up to three seeds, the seeds' values at each iteration are recovered exactly from min, mean and max,
which is all an unsmoothed per-iteration bootstrap needs (their order across iterations is unknown,
so such curves cannot be smoothed).
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np

from mame_tf.registry import ALGO_ORDER, FAMILIES

# key -> (display name, colour). Algorithms, then MAME's ablations (paper Fig. 3), then MAME variants.
STYLES: dict[str, tuple[str, str]] = {
    "mame": ("MAME", "#d62728"),
    "maml_vpg": ("MAML-VPG", "#1f77b4"),
    "maml_trpo": ("MAML-TRPO", "#2ca02c"),
    "promp": ("ProMP", "#9467bd"),
    "emaml": ("E-MAML", "#ff7f0e"),
    "vpg_inner_loop": ("VPG-Inner loop", "#8c564b"),
    "reward_self_supervision": ("Reward Self-Supervision", "#17becf"),
    "vanilla_dice": ("Vanilla DiCE", "#7f7f7f"),
    "emaml_based": ("E-MAML Based", "#e377c2"),
    "mame_alpha1": ("MAME, α = 1", "#bcbd22"),
    "mame_alpha30": ("MAME, α = 30", "#393b79"),
}
# Colours for keys not in STYLES, given in order of first use (never one of STYLES' colours).
_SPARE_COLOURS = ("#000000", "#637939", "#843c39", "#7b4173", "#3182bd", "#e6550d")

METRIC_NAMES: dict[str, str] = {
    "post_adapt/return": "post-update return",
    "pre_adapt/return": "pre-update return",
    "post_adapt/final_goal_distance": "post-update final distance to the goal",
    "pre_adapt/final_goal_distance": "pre-update final distance to the goal",
    "env_steps": "environment steps",
    "iteration": "iteration",
}

# family -> metric -> [(level, label)]
REFERENCE_LEVELS: dict[str, dict[str, list[tuple[float, str]]]] = {
    "point_corner_strict": {
        "post_adapt/return": [(2.55, "optimum ≈ 2.55"), (0.64, "task-blind ≤ 0.64")],
        "pre_adapt/return": [(2.55, "optimum ≈ 2.55"), (0.64, "task-blind ≤ 0.64")],
        "post_adapt/final_goal_distance": [(0.5, "at the goal (< 0.5)")],
    },
    "point_corner": {
        "post_adapt/return": [(2.55, "straight run to the goal ≈ 2.55")],
        "post_adapt/final_goal_distance": [(0.5, "at the goal (< 0.5)")],
    },
}

LONG_KEYS = ("algo", "seed", "iteration", "env_steps")
DEFAULT_N_BOOT = 10_000


def display_name(key: str) -> str:
    return STYLES.get(key, (key, ""))[0]


def metric_name(key: str) -> str:
    return METRIC_NAMES.get(key, key)


def colours(keys: Iterable[str]) -> dict[str, str]:
    """The fixed colour of every key; keys outside ``STYLES`` get spare colours in order."""
    out, spare = {}, iter(_SPARE_COLOURS)
    for k in keys:
        out[k] = STYLES[k][1] if k in STYLES else next(spare, "#444444")
    return out


def family_of(name: str) -> str | None:
    """The task family a file or title starts with (``point_corner_strict_runs.csv`` -> that family)."""
    base = os.path.basename(name)
    for fam in sorted(FAMILIES, key=len, reverse=True):  # point_corner_strict before point_corner
        if base.startswith(fam):
            return fam
    return None


@dataclass
class Group:
    """One algorithm's runs: ``values[metric]`` has shape (seeds, iterations) on the common iterations.

    ``finals[metric]`` holds each seed's final number when it is known directly (legacy files);
    ``ordered`` is False when a seed's values are not linked across iterations (legacy aggregates).
    """
    seeds: list[str]
    iteration: np.ndarray
    env_steps: np.ndarray
    values: dict[str, np.ndarray]
    full: list[dict[str, np.ndarray]] = field(default_factory=list)  # per seed, every iteration it has
    ordered: bool = True
    final_window: int | None = None  # legacy: the window the final numbers were averaged over


# ------------------------------------------------------------------------------------------------
# Reading and writing.
# ------------------------------------------------------------------------------------------------
def _float(s) -> float:
    return float(s) if s not in ("", None) else np.nan


def load_long_csv(path: str, algos: Sequence[str] | None = None) -> dict[str, Group]:
    """Read a long-format CSV into ``{algo: Group}`` (file order, or the order of ``algos``)."""
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [k for k in LONG_KEYS if k not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; a long-format CSV has "
                             f"{', '.join(LONG_KEYS)} and metric columns")
        metrics = [k for k in reader.fieldnames if k not in LONG_KEYS]
        runs: dict[str, dict[str, list[dict]]] = {}
        for row in reader:
            runs.setdefault(row["algo"], {}).setdefault(row["seed"], []).append(row)
    if not runs:
        raise ValueError(f"{path}: no rows")
    if algos:
        unknown = [a for a in algos if a not in runs]
        if unknown:
            raise ValueError(f"{path}: no rows for {', '.join(unknown)}; it has {', '.join(runs)}")
        runs = {a: runs[a] for a in algos}
    groups = {}
    for algo, by_seed in runs.items():
        full = []
        for seed in by_seed:
            rows = sorted(by_seed[seed], key=lambda r: int(float(r["iteration"])))
            full.append({k: np.array([_float(r[k]) for r in rows]) for k in ("iteration", "env_steps", *metrics)})
        groups[algo] = _group(list(by_seed), full, metrics)
    return groups


def _group(seeds: list[str], full: list[dict[str, np.ndarray]], metrics: Sequence[str]) -> Group:
    common = full[0]["iteration"]
    for run in full[1:]:
        common = np.intersect1d(common, run["iteration"])
    masks = [np.isin(run["iteration"], common) for run in full]
    steps = np.mean([run["env_steps"][m] for run, m in zip(full, masks)], axis=0)
    values = {k: np.array([run[k][m] for run, m in zip(full, masks)]) for k in metrics}
    return Group(seeds, common, steps, values, full)


def runs_to_long_csv(groups: Mapping[str, Sequence[str]], out: str, metrics: Sequence[str] | None = None) -> str:
    """Write the long-format CSV of ``{algo: [run_dir, ...]}`` (seed from each run's ``config.json``).

    ``metrics`` default: the returns and, where logged, the final goal distances.
    """
    from mame_tf.results import load_progress

    loaded = []
    for algo, dirs in groups.items():
        for d in dirs:
            data = load_progress(d)
            if not data:
                continue
            seed = _run_seed(d)
            loaded.append((algo, seed, data))
    if not loaded:
        raise ValueError("none of the run directories has progress rows")
    if metrics is None:
        metrics = [m for m in ("pre_adapt/return", "post_adapt/return", "pre_adapt/final_goal_distance",
                               "post_adapt/final_goal_distance") if all(m in d for _, _, d in loaded)]
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([*LONG_KEYS, *metrics])
        for algo, seed, d in loaded:
            for i in range(len(d["iteration"])):
                writer.writerow([algo, seed, int(d["iteration"][i]), int(d["env_steps"][i])] +
                                [f"{d[m][i]:.6g}" if m in d else "" for m in metrics])
    return out


def _run_seed(run_dir: str) -> str:
    path = os.path.join(run_dir, "config.json")
    if os.path.exists(path):
        with open(path) as fh:
            cfg = json.load(fh)
        seed = cfg.get("seed", cfg.get("train", {}).get("seed") if isinstance(cfg.get("train"), dict) else None)
        if seed is not None:
            return str(seed)
    name = os.path.basename(os.path.normpath(run_dir))
    return name.rsplit("_s", 1)[-1] if "_s" in name else name


def load_aggregate_csv(prefix: str, labels: Mapping[str, str]) -> dict[str, Group]:
    """Read legacy ``<prefix>_curves.csv`` (mean/std/min/max over seeds) and ``<prefix>_final.csv``.

    ``labels`` maps the files' algorithm labels to ``STYLES`` keys (labels not in it are dropped).
    The seeds' values at each iteration are recovered from min, mean and max (1 to 3 seeds).
    """
    with open(prefix + "_curves.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    metrics = [c[:-5] for c in rows[0] if c.endswith("_mean")]
    by_label: dict[str, list[dict]] = {}
    for r in rows:
        if r["algorithm"] in labels:
            by_label.setdefault(r["algorithm"], []).append(r)
    unknown = [lab for lab in labels if lab not in by_label]
    if unknown:
        raise ValueError(f"{prefix}_curves.csv: no rows for {', '.join(map(repr, unknown))}")
    finals: dict[str, list[tuple[str, dict[str, float]]]] = {}
    with open(prefix + "_final.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        windows = {k.rsplit("_last", 1)[1] for k in reader.fieldnames if "_last" in k}
        for r in reader:
            vals = {m: float(v) for k, v in r.items() for m in metrics if k.startswith(m + "_last")}
            finals.setdefault(r["algorithm"], []).append((r["run"].rsplit("_s", 1)[-1], vals))
    groups = {}
    for label, key in labels.items():
        rs = by_label[label]
        n = int(rs[0]["seeds"])
        if n > 3:
            raise ValueError(f"{prefix}_curves.csv: {label!r} has {n} seeds; only up to 3 can be recovered")
        values = {}
        for m in metrics:
            lo, mean, hi = (np.array([float(r[f"{m}_{s}"]) for r in rs]) for s in ("min", "mean", "max"))
            values[m] = {1: lambda: mean[None], 2: lambda: np.stack([lo, hi]),
                         3: lambda: np.stack([lo, 3 * mean - lo - hi, hi])}[n]()
        seeds = [s for s, _ in finals.get(label, [])] or [str(i) for i in range(n)]
        full = [{m: np.full(1, v[m]) for m in v} for _, v in finals.get(label, [])]  # final numbers only
        groups[key] = Group(seeds, np.array([float(r["iteration"]) for r in rs]),
                            np.array([float(r["env_steps"]) for r in rs]), values, full, ordered=False,
                            final_window=int(windows.pop()) if len(windows) == 1 else None)
    return groups


# ------------------------------------------------------------------------------------------------
# Statistics.
# ------------------------------------------------------------------------------------------------
def bootstrap_ci(samples: np.ndarray, n_boot: int = DEFAULT_N_BOOT, seed: int = 0,
                 confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile-bootstrap CI of the mean over axis 0 of ``samples`` (seeds x points), seeded."""
    samples = np.asarray(samples, dtype=np.float64)
    squeeze = samples.ndim == 1
    if squeeze:
        samples = samples[:, None]
    n = samples.shape[0]
    if n < 2:
        lo = hi = samples[0]
    else:
        rng = np.random.default_rng(seed)
        weights = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot) / n  # (n_boot, n)
        q = [50 * (1 - confidence), 50 * (1 + confidence)]
        lo, hi = np.empty(samples.shape[1]), np.empty(samples.shape[1])
        for start in range(0, samples.shape[1], 256):  # bounded memory for long curves
            means = weights @ samples[:, start:start + 256]
            lo[start:start + 256], hi[start:start + 256] = np.percentile(means, q, axis=0)
    return (lo[0], hi[0]) if squeeze else (lo, hi)


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average over ``window`` points along the last axis (shorter at the start)."""
    if window <= 1:
        return values
    csum = np.cumsum(np.nan_to_num(values), axis=-1)
    out = csum.copy()
    out[..., window:] = csum[..., window:] - csum[..., :-window]
    counts = np.minimum(np.arange(1, values.shape[-1] + 1), window)
    return out / counts


def final_table(groups: Mapping[str, Group], metrics: Sequence[str], window: int,
                n_boot: int = DEFAULT_N_BOOT, seed: int = 0) -> list[dict]:
    """Per algorithm: each seed's mean over its last ``window`` iterations, mean over seeds, 95% CI."""
    rows = []
    for key, g in groups.items():
        row = {"algo": key, "name": display_name(key), "seeds": g.seeds}
        for m in metrics:
            if not g.full or m not in g.full[0]:
                raise ValueError(f"{key}: no per-seed values of {m}")
            per_seed = np.array([np.nanmean(run[m][-window:]) for run in g.full])
            lo, hi = bootstrap_ci(per_seed, n_boot, seed)
            row[m] = {"per_seed": per_seed, "mean": float(per_seed.mean()), "ci": (float(lo), float(hi))}
        rows.append(row)
    return rows


def write_final_table(rows: list[dict], metrics: Sequence[str], out: str, caption: str) -> list[str]:
    """``<out>_table.csv`` (mean, CI, per-seed values) and ``<out>_table.md`` (a Markdown table)."""
    with open(out + "_table.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["algo", "name", "seeds"] +
                        [f"{m}_{s}" for m in metrics for s in ("mean", "ci_low", "ci_high", "per_seed")])
        for r in rows:
            writer.writerow([r["algo"], r["name"], len(r["seeds"])] + [
                x for m in metrics for x in (f"{r[m]['mean']:.4g}", f"{r[m]['ci'][0]:.4g}", f"{r[m]['ci'][1]:.4g}",
                                             " ".join(f"{s}:{v:.4g}" for s, v in zip(r["seeds"], r[m]["per_seed"])))])
    lines = [f"| algorithm | seeds | " + " | ".join(f"{metric_name(m)}, mean [95% CI] | per seed" for m in metrics)
             + " |", "|---|---:|" + "---:|---|" * len(metrics)]
    for r in rows:
        cells = []
        for m in metrics:
            digits = _digits(max(abs(r[m]["mean"]), *map(abs, r[m]["ci"])))
            ci = "(1 seed, no CI)" if len(r["seeds"]) < 2 else \
                f"[{r[m]['ci'][0]:.{digits}f}, {r[m]['ci'][1]:.{digits}f}]"
            per_seed = ", ".join(f"{seed_label(s)} {v:.{digits}f}" for s, v in zip(r["seeds"], r[m]["per_seed"]))
            cells.append(f"{r[m]['mean']:.{digits}f} {ci} | {per_seed}")
        lines.append(f"| {r['name']} | {len(r['seeds'])} | " + " | ".join(cells) + " |")
    lines += ["", caption]
    with open(out + "_table.md", "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return lines


def seed_label(seed: str) -> str:
    """``s0`` for seed ``0``; any other label (a legacy run name) as it is."""
    return f"s{seed}" if str(seed).isdigit() else str(seed)


def stability_rows(groups: Mapping[str, Group], metric: str, window: int, tolerance: float = 0.25) -> list[dict]:
    """Per algorithm and seed: the ``first``, ``best`` and ``final`` window means of ``metric`` and
    whether ``final ≥ best − tolerance·(best − first)`` (``mame_tf.stability``)."""
    from mame_tf.stability import is_stable, window_means

    rows = []
    for key, g in groups.items():
        for seed, run in zip(g.seeds, g.full):
            curve = run[metric][~np.isnan(run[metric])]
            first, best, final = window_means(curve, window)
            rows.append({"algo": key, "name": display_name(key), "seed": seed, "iterations": len(curve),
                         "first": first, "best": best, "final": final,
                         "stable": is_stable(curve, window, tolerance)})
    return rows


def write_stability_table(rows: list[dict], out: str, caption: str) -> list[str]:
    """``<out>_stability.csv`` and ``<out>_stability.md`` from :func:`stability_rows`."""
    keys = ("algo", "seed", "iterations", "first", "best", "final", "stable")
    with open(out + "_stability.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(keys)
        for r in rows:
            writer.writerow([f"{r[k]:.4g}" if isinstance(r[k], float) else r[k] for k in keys])
    lines = ["| algorithm | seed | iterations | first | best | final | stable |", "|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        digits = _digits(max(abs(r["first"]), abs(r["best"]), abs(r["final"])))
        lines.append(f"| {r['name']} | {seed_label(r['seed'])} | {r['iterations']} | {r['first']:.{digits}f} | "
                     f"{r['best']:.{digits}f} | {r['final']:.{digits}f} | {'yes' if r['stable'] else 'no'} |")
    lines += ["", caption]
    with open(out + "_stability.md", "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return lines


def _digits(x: float) -> int:
    return 0 if x >= 100 else 1 if x >= 10 else 2


# ------------------------------------------------------------------------------------------------
# Figures.
# ------------------------------------------------------------------------------------------------
def robust_limits(arrays: Iterable[np.ndarray], levels: Sequence[float] = (), skip: float = 0.05,
                  pct: tuple[float, float] = (1.0, 99.0), pad: float = 0.08) -> tuple[float, float]:
    """y limits covering the 1st..99th percentile of the values after the first ``skip`` of each curve,
    and the reference levels, with a margin."""
    kept = [a[..., int(skip * a.shape[-1]):].ravel() for a in arrays]
    vals = np.concatenate([v[np.isfinite(v)] for v in kept] + [np.asarray(levels, dtype=float)])
    lo, hi = np.percentile(vals, pct)
    lo, hi = min(lo, *levels) if levels else lo, max(hi, *levels) if levels else hi
    span = hi - lo if hi > lo else max(abs(hi), 1.0)
    return lo - pad * span, hi + pad * span


def _draw_panel(ax, groups: Mapping[str, Group], metric: str, cols: dict[str, str], refs: dict,
                smooth_window: int, n_boot: int, seed: int) -> None:
    """One metric's panel: each group's mean over seeds (a bootstrap CI band when it has several) and the
    family's reference levels."""
    drawn = []
    for key, g in groups.items():
        vals = smooth(g.values[metric], smooth_window)
        mean = np.nanmean(vals, axis=0)
        n = vals.shape[0]
        label = f"{display_name(key)} ({n} seed{'s' if n > 1 else ''})"
        ax.plot(g.env_steps, mean, color=cols[key], lw=1.6 if n > 1 else 1.1, ls="-" if n > 1 else "--",
                label=label)
        drawn.append(mean)
        if n > 1:
            lo, hi = bootstrap_ci(vals, n_boot, seed)
            ax.fill_between(g.env_steps, lo, hi, color=cols[key], alpha=0.18, lw=0)
            drawn += [lo, hi]
    levels = [lvl for lvl, _ in refs.get(metric, [])]
    for lvl, text in refs.get(metric, []):
        ax.axhline(lvl, color="black", ls=":", lw=1)
        ax.annotate(text, (0.01, lvl), xycoords=("axes fraction", "data"), xytext=(0, 2),
                    textcoords="offset points", fontsize=7.5, va="bottom")
    ax.set_ylim(*robust_limits(drawn, levels))
    ax.set_xlabel(metric_name("env_steps"))
    ax.set_ylabel(metric_name(metric))
    ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0), useMathText=True)
    ax.grid(alpha=0.3)


def _caption(groups: Mapping[str, Group], first_metric: str, title: str, smooth_window: int, n_boot: int,
             seed: int, budget: str) -> str:
    """The text under the figure: what the lines and bands are, the smoothing and the budget."""
    any_ci = any(g.values[first_metric].shape[0] > 1 for g in groups.values())
    parts = [f"{title}." if title else "", "Lines: mean over seeds"]
    if any_ci:
        parts.append(f"; bands: 95% percentile-bootstrap CI of the mean over seeds ({n_boot:,} resamples, "
                     f"seed {seed})")
    if any(g.values[first_metric].shape[0] == 1 for g in groups.values()):
        parts.append("; dashed: a single seed (no CI)")
    parts.append(f"; each seed smoothed by a trailing moving average over {smooth_window} iterations"
                 if smooth_window > 1 else "; unsmoothed")
    if budget:
        parts.append(f". {budget}")
    return (" ".join(p for p in parts[:1] if p) + " " + "".join(parts[1:])).strip() + "."


def plot_curves(groups: Mapping[str, Group], metrics: Sequence[str], out_png: str, title: str = "",
                family: str | None = None, smooth_window: int = 1, n_boot: int = DEFAULT_N_BOOT,
                seed: int = 0, budget: str = "") -> str:
    """One panel per metric against environment steps; returns the caption written under the figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if smooth_window > 1 and not all(g.ordered for g in groups.values()):
        raise ValueError("these curves come from aggregates whose seeds are not linked across iterations; "
                         "they cannot be smoothed (use smooth_window=1)")
    refs = REFERENCE_LEVELS.get(family or "", {})
    cols = colours(groups)
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.6 * len(metrics), 4.2), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        _draw_panel(ax, groups, m, cols, refs, smooth_window, n_boot, seed)
    handles, labels = axes[0][0].get_legend_handles_labels()
    ncol = len(labels) if len(labels) <= 5 else -(-len(labels) // 2)
    fig.legend(handles, labels, loc="upper center", ncol=ncol, fontsize=8.5, frameon=False,
               bbox_to_anchor=(0.5, 1.0))
    caption = _caption(groups, metrics[0], title, smooth_window, n_boot, seed, budget)
    fig.text(0.5, 0.005, _wrap(caption, 150 if len(metrics) > 1 else 95), ha="center", va="bottom", fontsize=8)
    rows = 1 if len(labels) <= 5 else 2
    fig.tight_layout(rect=(0, 0.06, 1, 0.94 if rows == 1 else 0.9))
    os.makedirs(os.path.dirname(out_png) or ".", exist_ok=True)
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return caption


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))
