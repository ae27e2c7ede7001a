"""Comparisons and sweeps (launchers/compare.py): plan and grid validation, run identity, and on a local
Ray instance of 2 CPUs: aggregation, a killed worker, a killed driver, Ctrl-C and SIGTERM."""
import csv
import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from mame_tf.experiment import check_run_flags, plan, run_state, saved_checkpoint_iteration

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPARE = os.path.join(ROOT, "launchers", "compare.py")
TINY_RUN = "--meta_batch_size=2 --episodes_per_task=2 --horizon=5 --hidden_sizes=8"
SMALL_RUN = "--meta_batch_size=2 --episodes_per_task=2 --checkpoint_every=2"
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "TF_CPP_MIN_LOG_LEVEL": "2"}


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _plan(tmp_path, **kwargs):
    args = {"env": "point_corner", "algos": ["mame"], "seeds": ["0"], "ablations": False,
            "outdir": str(tmp_path), "iterations": 0, "run_flags": "", "wandb_mode": "disabled", **kwargs}
    return plan(**args)


@functools.lru_cache(maxsize=None)
def _compare_module():  # loaded once: it defines absl flags at import
    import importlib.util

    spec = importlib.util.spec_from_file_location("compare", COMPARE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the plan: validation and grids (no Ray) -------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"algos": ["mame", "maml"]}, "'maml' is not an algorithm; valid choices: mame, maml_vpg"),
    ({"seeds": ["0", "-1"]}, "--seeds: '-1' is not a non-negative integer"),
    ({"env": "point"}, "--env='point' is invalid; valid choices"),
    ({"run_flags": "--logdir=x"}, "must not set --logdir"),
    ({"run_flags": "--meta_batch_size=0"}, "--meta_batch_size=0 is invalid"),
    ({"run_flags": "--clip_eps=0.2"}, "run_mame.py rejects"),  # a ProMP flag given to MAME
    ({"grid": ["latent_dim=4,8"], "algos": ["mame", "maml_trpo"]},
     r"--grid=latent_dim=4,8: maml_trpo has no setting 'latent_dim' \(only mame has\); to sweep it for mame and run maml_trpo once "
     "per seed, write --grid=mame.latent_dim=4,8"),
    ({"grid": ["maml_trpo.latent_dim=4"], "algos": ["mame", "maml_trpo"]},
     "maml_trpo has no setting 'latent_dim'; its settings: "),
    ({"grid": ["bogus=1,2"]}, "'bogus' is not a setting of mame; valid settings: .*inner_lr"),
    ({"grid": ["promp.inner_lr=1"]}, "'promp' is not one of the selected algorithms"),
    ({"grid": ["seed=1,2"]}, "seed is set by the experiment itself; use --seeds"),
    ({"grid": ["inner_lr=abc"]}, r"run_mame.py rejects .*--inner_lr=abc.* \(grid inner_lr=abc\)"),
    ({"grid": ["inner_lr=-1"]}, r"--inner_lr=-1.0 is invalid: must be >= 0.0 \(grid inner_lr=-1\)"),
    ({"grid": ["inner_lr=1,1"]}, "repeats a value"),
    ({"grid": ["latent_dim=8,08"]}, "would be the same run"),
    ({"grid": ["inner_lr"]}, "is not NAME=V1,V2"),
    ({"grid": ["inner_lr=1/2"]}, "has characters other than"),
    ({"grid": ["inner_lr=1", "mame.inner_lr=2"]}, "inner_lr is given more than once"),
    ({"grid": ["inner_lr=1,2"], "run_flags": "--inner_lr=3"}, "--run_flags both set inner_lr"),
    ({"grid": ["inner_objective=vpg"], "ablations": True}, "the variant 'vpg_inner_loop' sets inner_objective"),
])
def test_every_run_and_grid_setting_is_validated_before_anything_starts(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        _plan(tmp_path, **kwargs)
    assert not os.listdir(tmp_path)


def test_outdir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="--outdir='.*f' is a file, not a directory"):
        _plan(tmp_path, outdir=str(tmp_path / "f"))
    with pytest.raises(ValueError, match="cannot be created: '.*f' is a file"):
        _plan(tmp_path, outdir=str(tmp_path / "f" / "sub"))
    out = subprocess.run([sys.executable, COMPARE, f"--outdir={tmp_path / 'f'}", "--dry_run"], capture_output=True,
                         text=True, timeout=300, env=ENV)
    assert out.returncode == 2 and "is a file, not a directory" in out.stderr.splitlines()[-1]


def test_a_second_driver_on_the_same_outdir_is_refused_naming_the_first(tmp_path):
    from mame_tf.run import acquire_lock

    os.makedirs(tmp_path / ".experiment")
    lock_path = str(tmp_path / ".experiment" / "driver.lock")
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom mame_tf.run import acquire_lock\n"
                               "acquire_lock(sys.argv[1])\nprint('held', flush=True)\ntime.sleep(600)", lock_path],
                              stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert holder.stdout.readline().strip() == "held"
        argv = [sys.executable, COMPARE, f"--outdir={tmp_path}", "--env=point_corner", "--algos=mame", "--seeds=0",
                "--iterations=1", f"--run_flags={TINY_RUN}"]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=ENV)
        assert out.returncode == 2 and out.stderr.splitlines()[-1] == (
            f"error: --outdir={tmp_path} is in use by process {holder.pid} (another compare.py); wait for it to "
            f"stop (or stop it), or give another --outdir")
        assert sorted(os.listdir(tmp_path)) == [".experiment"]  # nothing was started
        dry = subprocess.run(argv + ["--dry_run"], capture_output=True, text=True, timeout=300, env=ENV)
        assert dry.returncode == 0 and "1 runs in" in dry.stdout  # a dry run changes nothing, so it may look
    finally:
        holder.kill()
        holder.wait()
    os.close(acquire_lock(lock_path))  # a driver that died leaves the directory free


def test_ablations_are_mame_flags():
    runs = plan("point_corner", ["mame"], ["3"], True, "out", 5, "", "disabled")
    assert [r.label for r in runs] == list(_compare_module().ABLATIONS)
    by_label = {r.label: list(r.args) for r in runs}
    assert by_label["vanilla_dice"][-2:] == ["--explore_estimator=dice", "--iterations=5"]
    assert all(r.algo == "mame" and "--seed=3" in r.args for r in runs)


def test_grid_combines_with_algorithms_and_seeds(tmp_path):
    runs = _plan(tmp_path, algos=["mame", "maml_trpo"], seeds=["0", "1"],
                 grid=["inner_lr=1,5", "mame.latent_dim=4,8", "hidden_sizes=8:8"])
    labels = sorted({r.label for r in runs})
    assert labels == ["mame inner_lr=1 latent_dim=4 hidden_sizes=8:8", "mame inner_lr=1 latent_dim=8 hidden_sizes=8:8",
                      "mame inner_lr=5 latent_dim=4 hidden_sizes=8:8", "mame inner_lr=5 latent_dim=8 hidden_sizes=8:8",
                      "maml_trpo inner_lr=1 hidden_sizes=8:8", "maml_trpo inner_lr=5 hidden_sizes=8:8"]
    assert len(runs) == 12 and len({r.run_dir for r in runs}) == 12
    run = next(r for r in runs if r.label == "mame inner_lr=5 latent_dim=4 hidden_sizes=8:8" and r.seed == 1)
    assert os.path.basename(run.run_dir) == "mame-inner_lr=5-latent_dim=4-hidden_sizes=8:8_s1"
    train, algo = check_run_flags("mame", list(run.args))
    assert (algo.inner_lr, algo.latent_dim, train.hidden_sizes, train.seed) == (5.0, 4, (8, 8), 1)
    trpo = check_run_flags("maml_trpo", list(next(r for r in runs if r.algo == "maml_trpo").args))[1]
    assert trpo.inner_lr == 1.0


# -- identity: a run is reused only with the settings requested ------------------------------------

def test_a_finished_run_is_reused_only_with_equal_settings(tmp_path):
    from mame_tf.launch import algorithm_class, train_from_configs

    [spec] = _plan(tmp_path, iterations=2, run_flags=TINY_RUN + " --quiet")
    assert run_state(spec) == "new"
    train, algo = check_run_flags("mame", list(spec.args))
    train_from_configs(algorithm_class("mame"), train, algo)
    assert run_state(spec) == "done"
    # execution-only settings may differ
    assert run_state(_plan(tmp_path, iterations=2, run_flags=TINY_RUN + " --eager")[0]) == "done"
    # a longer budget with otherwise equal settings continues the run
    assert run_state(_plan(tmp_path, iterations=5, run_flags=TINY_RUN)[0]) == "resume"
    for kwargs, shown in [({"iterations": 1, "run_flags": TINY_RUN}, "iterations: 2 there, 1 requested"),
                          ({"iterations": 2, "run_flags": TINY_RUN.replace("--horizon=5", "--horizon=6")},
                           "horizon: 5 there, 6 requested"),
                          ({"iterations": 2, "run_flags": TINY_RUN + " --inner_lr=3"},
                           "inner_lr: 30.0 there, 3.0 requested")]:
        with pytest.raises(ValueError, match=f"mame_s0 holds a run with other settings \\({shown}\\); it is not "
                                             f"reused: use another --outdir"):
            run_state(_plan(tmp_path, **kwargs)[0])
    # progress rows without the final checkpoint are not a finished run
    shutil.rmtree(os.path.join(spec.run_dir, "checkpoints", "ckpt-000002"))
    assert len(_rows(os.path.join(spec.run_dir, "progress.csv"))) == 2
    assert run_state(spec) == "resume"
    # the command refuses, before starting anything
    out = subprocess.run([sys.executable, COMPARE, "--env=point_corner", "--algos=mame", "--seeds=0",
                          "--iterations=2", f"--outdir={tmp_path}", f"--run_flags={TINY_RUN} --horizon=6"],
                         capture_output=True, text=True, timeout=300, env=ENV)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "error: " in out.stderr and "holds a run with other settings (horizon: 5 there, 6 requested)" in out.stderr


# -- on Ray ------------------------------------------------------------------------------------------

@pytest.fixture
def ray_dir():
    path = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay short
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _cmd(outdir, ray_dir, *args):
    return [sys.executable, COMPARE, "--env=point_corner", "--algos=mame", f"--outdir={outdir}", "--num_cpus=2",
            f"--ray_temp_dir={ray_dir}", "--status_every=5", *args]


def _count(run_dir):
    try:
        return len(_rows(os.path.join(run_dir, "progress.csv")))
    except (OSError, csv.Error):
        return 0


def _wait_for(predicate, proc, what, timeout=300):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, f"compare ended (exit {proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.05)


def _processes_with(text):
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    if text.encode() in fh.read():
                        with open(f"/proc/{pid}/stat") as st:
                            if st.read().rsplit(")", 1)[1].split()[0] != "Z":
                                found.append(int(pid))
            except OSError:
                pass
    return found


def _pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as st:
            return st.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _assert_no_orphans(paths, pids, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        left = [p for path in paths for p in _processes_with(path)] + [p for p in pids if _pid_alive(p)]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert not left, f"processes left behind: {left}"


def _status(outdir, name):
    with open(os.path.join(outdir, ".experiment", name + ".json")) as fh:
        return json.load(fh)


def _without_timings(rows):
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]


def test_a_killed_worker_is_retried_and_the_run_resumes(tmp_path, ray_dir):
    outdir = tmp_path / "cmp"
    run_dir = str(outdir / "mame_s0")
    driver_out = open(tmp_path / "driver.out", "w")  # a file, not a pipe: nothing the test fails to read blocks it
    proc = subprocess.Popen(_cmd(outdir, ray_dir, "--seeds=0", "--iterations=30", f"--run_flags={SMALL_RUN}"),
                            stdout=driver_out, stderr=subprocess.STDOUT, text=True, env=ENV, cwd=tmp_path)
    [spec] = _plan(outdir, iterations=30, run_flags=SMALL_RUN + " --nthread=1")
    reference = subprocess.Popen([sys.executable, os.path.join(ROOT, "launchers", "run_mame.py"),
                                  *[a for a in spec.args if not a.startswith("--logdir")],
                                  f"--logdir={tmp_path / 'reference'}", "--quiet"],
                                 env={**ENV, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL)
    _wait_for(lambda: _count(run_dir) >= 3, proc, "3 iterations")
    first = _status(outdir, "mame_s0")
    os.kill(first["worker"], signal.SIGKILL)
    killed_at = _count(run_dir)
    proc.wait(timeout=600)
    output = (tmp_path / "driver.out").read_text()
    assert proc.returncode == 0, output[-3000:]
    assert reference.wait(timeout=600) == 0
    assert killed_at < 30
    assert "retrying mame seed 0: attempt 2" in output and "finished mame seed 0 (30 iterations)" in output
    assert _status(outdir, "mame_s0")["attempt"] == 2
    with open(run_dir + ".log") as fh:
        log = fh.read()
    assert "attempt 2 on" in log and "resumed at iteration" in log  # resumed, not started over
    with open(os.path.join(run_dir, "provenance.json")) as fh:  # at the driver's priority, not Ray's 15
        assert [start["niceness"] for start in json.load(fh)["starts"]] == [os.nice(0)] * 2
    assert _without_timings(_rows(os.path.join(run_dir, "progress.csv"))) == \
        _without_timings(_rows(tmp_path / "reference" / "progress.csv"))
    _assert_no_orphans([ray_dir, str(outdir)], [first["child"]])


def test_a_killed_driver_then_the_same_command_finishes_without_repeating(tmp_path, ray_dir):
    outdir = tmp_path / "cmp"
    cmd = _cmd(outdir, ray_dir, "--seeds=0,1", "--iterations=60", "--workers=1", f"--run_flags={SMALL_RUN}")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV, cwd=tmp_path)
    _wait_for(lambda: _count(str(outdir / "mame_s1")) >= 3, proc, "3 iterations of the second run")
    status = _status(outdir, "mame_s1")
    proc.kill()
    proc.wait()
    _assert_no_orphans([ray_dir, str(outdir)], [status["worker"], status["child"]])
    with open(outdir / "mame_s0" / "progress.csv") as fh:
        finished = fh.read()
    assert len(finished.splitlines()) == 61
    saved = saved_checkpoint_iteration(str(outdir / "mame_s1"))
    assert saved < 60, "the second run finished before the killed driver's Ray took it down: nothing to resume"
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path, env=ENV)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "mame seed 0: complete (60 iterations), kept" in again.stdout
    assert "started mame seed 0" not in again.stdout
    assert f"started mame seed 1 on" in again.stdout and f"(resuming at iteration {saved})" in again.stdout
    with open(outdir / "mame_s0" / "progress.csv") as fh:
        assert fh.read() == finished
    assert [int(r["iteration"]) for r in _rows(outdir / "mame_s1" / "progress.csv")] == list(range(1, 61))


@pytest.mark.parametrize("how", ["ctrl_c_to_the_process_group", "sigterm_to_the_driver"])
def test_stopping_the_driver_stops_every_run_with_its_checkpoint(tmp_path, ray_dir, how):
    outdir = tmp_path / "cmp"
    driver_out = open(tmp_path / "driver.out", "w")
    proc = subprocess.Popen(_cmd(outdir, ray_dir, "--seeds=0,1", "--iterations=5000", f"--run_flags={SMALL_RUN}"),
                            stdout=driver_out, stderr=subprocess.STDOUT, text=True, env=ENV, cwd=tmp_path,
                            start_new_session=True)
    runs = [str(outdir / "mame_s0"), str(outdir / "mame_s1")]
    _wait_for(lambda: all(_count(r) >= 3 for r in runs), proc, "3 iterations of both runs")
    pids = [p for name in ("mame_s0", "mame_s1") for p in (_status(outdir, name)["worker"],
                                                           _status(outdir, name)["child"])]
    if how == "ctrl_c_to_the_process_group":
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    else:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=600)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # leave nothing running behind a failed test
        raise
    output = (tmp_path / "driver.out").read_text()
    expected = 128 + (signal.SIGINT if how.startswith("ctrl_c") else signal.SIGTERM)
    assert proc.returncode == expected, output[-3000:]
    for run_dir in runs:
        logged = _count(run_dir)
        assert 3 <= logged < 5000
        assert saved_checkpoint_iteration(run_dir) == logged  # resumable, nothing lost
        with open(run_dir + ".log") as fh:
            log = fh.read()
        assert f"stopping after iteration {logged}" in log and "saved a checkpoint" in log
        assert "during an update" not in log  # each run was interrupted once, not twice
    assert output.count("(nothing lost)") == 2
    _assert_no_orphans([ray_dir, str(outdir)], pids)


def test_runs_on_an_existing_cluster_aggregate_and_are_kept_on_a_rerun(tmp_path, ray_dir):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    head = subprocess.Popen(["ray", "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
                             "--include-dashboard=false", f"--temp-dir={ray_dir}", "--node-ip-address=127.0.0.1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    try:
        cmd = [sys.executable, COMPARE, "--env=point_corner_strict", "--algos=mame", "--seeds=0,1", "--iterations=2",
               f"--outdir={tmp_path / 'cmp'}", f"--run_flags={TINY_RUN}", f"--address=127.0.0.1:{port}"]
        deadline = time.monotonic() + 120
        while True:  # the head node takes a few seconds to accept drivers
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path, env=ENV)
            if out.returncode == 0 or time.monotonic() > deadline or head.poll() is not None:
                break
            time.sleep(2)
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
        for seed in (0, 1):
            assert f"started mame seed {seed}" in out.stdout
            assert f"finished mame seed {seed} (2 iterations)" in out.stdout
            assert len(_rows(tmp_path / "cmp" / f"mame_s{seed}" / "progress.csv")) == 2
        assert [r["run"] for r in _rows(tmp_path / "cmp" / "summary_final.csv")] == ["mame_s0", "mame_s1"]
        [table] = _rows(tmp_path / "cmp" / "summary_table.csv")
        assert table["algorithm"] == "mame" and table["runs"] == "2"
        assert re.search(r"^  mame +2 +-?\d+\.\d+ ± \d+\.\d+", out.stdout, re.M), out.stdout  # the printed row
    finally:
        head.terminate()
        head.wait(timeout=120)
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path, env=ENV)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]  # no cluster needed now
    assert "mame seed 0: complete (2 iterations), kept" in again.stdout and "started" not in again.stdout
    _assert_no_orphans([ray_dir, str(tmp_path / "cmp")], [])


def test_the_cluster_recipe_parses_and_its_command_validates(tmp_path):
    import copy

    import yaml
    from ray.autoscaler._private.util import prepare_config, validate_config

    with open(os.path.join(ROOT, "launchers", "cluster", "aws.yaml")) as fh:
        config = yaml.safe_load(fh)
    validate_config(prepare_config(copy.deepcopy(config)))
    assert config["available_node_types"]["worker"]["resources"]["CPU"] == 16
    # the README's command, as a dry run (no cluster is contacted)
    out = subprocess.run([sys.executable, COMPARE, "--env=ant_dir", "--address=auto", "--cpus_per_run=4",
                          f"--outdir={tmp_path / 'fig2-ant_dir'}", "--dry_run"],
                         capture_output=True, text=True, timeout=300, env=ENV)
    assert out.returncode == 0, out.stderr[-2000:]
    commands = [line for line in out.stdout.splitlines() if "launchers/run_" in line]
    assert len(commands) == 15 and all("--iterations=800" in c and "--nthread=4" in c for c in commands)
    assert not os.path.exists(tmp_path / "fig2-ant_dir")


def test_summary_table_mean_and_95_percent_interval(tmp_path):
    import math

    from mame_tf.results import mean_ci95, summary_table

    mean, half = mean_ci95([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.303 / math.sqrt(3))  # t(0.975, 2 dof) * sd 1 / sqrt(3)
    assert mean_ci95([5.0])[0] == 5.0 and math.isnan(mean_ci95([5.0])[1])
    assert mean_ci95([0.0] * 40 + [1.0] * 40)[1] == pytest.approx(1.96 * 0.5031546 / math.sqrt(80), rel=1e-4)
    finals = {"a x=1": [("a_s0", {"r": 1.0}), ("a_s1", {"r": 3.0})], "b": [("b_s0", {"r": 2.0})]}
    rows = summary_table(finals, str(tmp_path / "s"))
    assert rows[0][:2] == ("a x=1", 2) and rows[0][2]["r"][0] == 2.0
    assert rows[0][2]["r"][1] == pytest.approx(12.706 * math.sqrt(2) / math.sqrt(2))
    table = _rows(tmp_path / "s_table.csv")
    assert [(r["algorithm"], r["runs"], r["r_mean"]) for r in table] == [("a x=1", "2", "2.0000"), ("b", "1", "2.0000")]
    assert table[1]["r_ci95"] == "nan"
