"""Figures and tables: bootstrap intervals, legacy aggregates, robust limits, the plotting script."""
import csv
import os
import subprocess
import sys

import numpy as np
import pytest

from mame_tf import plotting
from mame_tf.experiment import ABLATIONS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_bootstrap_ci_is_seeded_and_brackets_the_mean():
    rng = np.random.default_rng(1)
    samples = rng.normal(size=(5, 300))
    lo, hi = plotting.bootstrap_ci(samples, n_boot=2000, seed=3)
    lo2, hi2 = plotting.bootstrap_ci(samples, n_boot=2000, seed=3)
    assert np.array_equal(lo, lo2) and np.array_equal(hi, hi2)
    mean = samples.mean(0)
    assert np.all(lo <= mean + 1e-12) and np.all(mean <= hi + 1e-12) and np.all(hi - lo > 0)
    # resampled means of 5 values lie inside their range
    assert np.all(lo >= samples.min(0) - 1e-12) and np.all(hi <= samples.max(0) + 1e-12)
    lo1, hi1 = plotting.bootstrap_ci(np.array([2.0]))
    assert lo1 == hi1 == 2.0


def test_smooth_is_a_trailing_mean():
    out = plotting.smooth(np.array([[1.0, 3.0, 5.0, 7.0]]), 2)
    assert np.allclose(out, [[1.0, 2.0, 4.0, 6.0]])


def test_robust_limits_ignore_an_early_spike_and_keep_reference_levels():
    curve = np.concatenate([[16.0, 9.0], np.linspace(3.0, 0.4, 98)])
    lo, hi = plotting.robust_limits([curve], levels=[0.5])
    assert hi < 4.0 and lo < 0.4
    lo, hi = plotting.robust_limits([curve], levels=[5.0])
    assert hi > 5.0


def test_every_algorithm_and_ablation_has_its_own_colour():
    keys = set(plotting.ALGO_ORDER) | set(ABLATIONS)
    assert keys <= set(plotting.STYLES)
    assert len({plotting.STYLES[k][1] for k in plotting.STYLES}) == len(plotting.STYLES)
    assert plotting.colours(["promp", "new_method"]) == {"promp": plotting.STYLES["promp"][1],
                                                         "new_method": plotting._SPARE_COLOURS[0]}


def test_legacy_aggregates_recover_the_seeds_values(tmp_path):
    seeds = np.array([[1.0, 5.0], [2.0, 0.0], [4.0, 1.0]])  # 3 seeds x 2 iterations
    with open(tmp_path / "x_curves.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["algorithm", "iteration", "env_steps", "seeds"] +
                   [f"post_adapt/return_{s}" for s in ("mean", "std", "min", "max")])
        for i in range(2):
            v = seeds[:, i]
            w.writerow(["MAME", i + 1, 100 * (i + 1), 3, v.mean(), v.std(), v.min(), v.max()])
    with open(tmp_path / "x_final.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["algorithm", "run", "iterations", "post_adapt/return_last10"])
        for s in range(3):
            w.writerow(["MAME", f"mame_s{s}", 2, seeds[s, -1]])
    groups = plotting.load_aggregate_csv(str(tmp_path / "x"), {"MAME": "mame"})
    g = groups["mame"]
    assert np.allclose(np.sort(g.values["post_adapt/return"], axis=0), np.sort(seeds, axis=0))
    assert not g.ordered and g.final_window == 10
    rows = plotting.final_table(groups, ["post_adapt/return"], window=10)
    assert rows[0]["post_adapt/return"]["mean"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="cannot be smoothed"):
        plotting.plot_curves(groups, ["post_adapt/return"], str(tmp_path / "x.png"), smooth_window=5)


def _write_long(path, algos=("mame", "promp"), seeds=3, iterations=60):
    rng = np.random.default_rng(0)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["algo", "seed", "iteration", "env_steps", "pre_adapt/return", "post_adapt/return"])
        for a, algo in enumerate(algos):
            for s in range(seeds):
                for i in range(1, iterations + 1):
                    w.writerow([algo, s, i, 1000 * i, -1.0, a + s + rng.normal(0, 0.01)])


def test_plot_script_writes_figure_and_table_from_a_long_csv(tmp_path):
    path = tmp_path / "cheetah_dir_runs.csv"
    _write_long(path)
    out = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "plot_results.py"), f"--csv={path}",
                          "--final_window=20", "--n_boot=500"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "cheetah_dir.png").stat().st_size > 10_000
    rows = {r["algo"]: r for r in csv.DictReader(open(tmp_path / "cheetah_dir_table.csv"))}
    # seeds s contribute a + s: MAME 0, 1, 2 -> mean 1; ProMP 1, 2, 3 -> mean 2
    assert float(rows["mame"]["post_adapt/return_mean"]) == pytest.approx(1.0, abs=0.01)
    assert float(rows["promp"]["post_adapt/return_mean"]) == pytest.approx(2.0, abs=0.01)
    assert float(rows["promp"]["post_adapt/return_ci_low"]) < 2.0 < float(rows["promp"]["post_adapt/return_ci_high"])
    md = (tmp_path / "cheetah_dir_table.md").read_text()
    assert "| MAME | 3 | 1.00 [" in md and "95% percentile-bootstrap CI (500 resamples" in md
    assert "| s0 0.00, s1 1.00, s2 2.00 |" in md  # each seed's final number
    stab = list(csv.DictReader(open(tmp_path / "cheetah_dir_stability.csv")))  # MAME only, by default
    assert [(r["algo"], r["seed"], r["iterations"]) for r in stab] == [("mame", str(s), "60") for s in range(3)]


def test_long_csv_errors_name_the_problem(tmp_path):
    path = tmp_path / "x_runs.csv"
    _write_long(path)
    with pytest.raises(ValueError, match="no rows for maml_trpo; it has mame, promp"):
        plotting.load_long_csv(str(path), ["maml_trpo"])
    bad = tmp_path / "bad.csv"
    bad.write_text("algo,iteration,post_adapt/return\nmame,1,0.5\n")
    with pytest.raises(ValueError, match="missing column"):
        plotting.load_long_csv(str(bad))


def test_stability_rows_flag_a_run_that_loses_its_gains(tmp_path):
    path = tmp_path / "x_runs.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["algo", "seed", "iteration", "env_steps", "pre_adapt/return", "post_adapt/return"])
        for i in range(1, 101):  # seed 0 climbs and holds; seed 1 climbs to 10 by iteration 50 and falls back to 2
            w.writerow(["mame", 0, i, i, 0.0, min(i, 50) / 5])
            w.writerow(["mame", 1, i, i, 0.0, min(i, 50) / 5 if i <= 60 else 2.0])
    rows = plotting.stability_rows(plotting.load_long_csv(str(path)), "post_adapt/return", window=20)
    assert [r["stable"] for r in rows] == [True, False]
    # best: the window of iterations 41-60, (41 + ... + 50) / 5 / 20 + 10 / 2 = 9.55
    assert rows[1]["final"] == pytest.approx(2.0) and rows[1]["best"] == pytest.approx(9.55)
