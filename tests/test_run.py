"""The run's lifecycle under faults: complete checkpoints, exact resume for every algorithm, refusals,
the run-directory lock, damaged checkpoints, SIGTERM, a full disk, hostile values."""
import dataclasses
import errno
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import mame_tf
from mame_tf.api import configs, load_run
from mame_tf.checkpoint import Checkpointer
from mame_tf.config import TrainConfig
from mame_tf.launch import build_algorithm, train_from_configs
from mame_tf.registry import ALGORITHMS, algorithm_class
from mame_tf.mame import MAME, MAMEConfig
from mame_tf.run import NonFiniteError, Run, RunError, StorageError
from mame_tf.sampler import MetaSampler
from mame_tf.trainer import adapt_and_sample

from tiny_runs import ROOT, TINY, Lines as _Lines, rows as _rows, tiny_train as _train  # noqa: E402


def _without_times(rows):
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]


def _algo_cfg(cls):
    return cls.config_class(**({"latent_dim": 2} if cls.name == "mame" else {}))


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_checkpoint_holds_every_variable_of_every_algorithm(tmp_path, name):
    cls = algorithm_class(name)
    a = cls(_train(tmp_path), _algo_cfg(cls), 2, 2)
    b = cls(_train(tmp_path, seed=5), _algo_cfg(cls), 2, 2)
    items = a.checkpoint_items()
    # every weight of every network and every optimizer variable is in the checkpoint
    for attr, value in vars(a).items():
        for var in getattr(value, "weights", []):
            assert any(v is var for v in items.values()), (attr, var.path)
    for value in items.values():
        value.assign(value + 0.25)
    Checkpointer(str(tmp_path / "ck"), items).save(3, {"x": 1})
    state, skipped = Checkpointer(str(tmp_path / "ck"), b.checkpoint_items(), write=False).restore()
    assert state["iteration"] == 3 and skipped == []
    restored = b.checkpoint_items()
    assert list(restored) == list(items)
    for key, var in items.items():
        np.testing.assert_array_equal(np.asarray(var), np.asarray(restored[key]), err_msg=key)


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_stop_at_2_and_resume_to_4_equals_an_uninterrupted_run(tmp_path, name):
    cls = algorithm_class(name)
    train_from_configs(cls, _train(tmp_path, "full", checkpoint_every=100), _algo_cfg(cls))
    train_from_configs(cls, _train(tmp_path, "split", iterations=2, checkpoint_every=100), _algo_cfg(cls))
    train_from_configs(cls, _train(tmp_path, "split", resume=True, checkpoint_every=100), _algo_cfg(cls))
    full = _rows(tmp_path / "full" / "progress.csv")
    split = _rows(tmp_path / "split" / "progress.csv")
    assert [r["iteration"] for r in split] == ["1", "2", "3", "4"]
    assert _without_times(split) == _without_times(full)


# --------------------------------------------------------------------------------------------------
# Faults, in-process.
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted MAME run of TINY with a checkpoint every iteration: (run directory, rows)."""
    path = tmp_path_factory.mktemp("ref") / "ref"
    train_from_configs(MAME, TrainConfig(**{**TINY, "logdir": str(path), "checkpoint_every": 1, "keep_checkpoints": 4}),
                       MAMEConfig(latent_dim=2))
    return path, _rows(path / "progress.csv")


def _copy_run(reference, tmp_path, name="run"):
    target = tmp_path / name
    shutil.copytree(reference[0], target)
    return target


def _resume(run_dir, stream=None, **kw):
    return train_from_configs(MAME, TrainConfig(**{**TINY, "logdir": str(run_dir), "resume": True,
                                                   "checkpoint_every": 1, "keep_checkpoints": 4, **kw}),
                              MAMEConfig(latent_dim=2), stream=stream)


def _listing(directory):
    """Every file under ``directory`` (but the lock) with its size and modification time."""
    out = {}
    for root, _, files in os.walk(directory):
        for name in files:
            if name == "run.lock":
                continue
            st = os.stat(os.path.join(root, name))
            out[os.path.relpath(os.path.join(root, name), directory)] = (st.st_size, st.st_mtime_ns)
    return out


def test_a_new_run_in_a_run_directory_is_refused_and_changes_nothing(reference, tmp_path):
    run = _copy_run(reference, tmp_path)
    before = _listing(run)
    with pytest.raises(RunError) as err:
        train_from_configs(MAME, TrainConfig(**{**TINY, "logdir": str(run), "iterations": 3}), MAMEConfig(latent_dim=2))
    assert "already holds a run" in str(err.value) and "--resume" in str(err.value)
    assert "fresh --logdir" in str(err.value)
    assert _listing(run) == before
    # an empty directory is fine
    os.makedirs(tmp_path / "empty")
    assert train_from_configs(MAME, TrainConfig(**{**TINY, "logdir": str(tmp_path / "empty"), "iterations": 1}),
                              MAMEConfig(latent_dim=2))["iteration"] == 1


def test_a_live_run_directory_is_refused_naming_the_process(tmp_path):
    train = TrainConfig(**{**TINY, "logdir": str(tmp_path / "run")})
    with Run(train, "mame", MAMEConfig(latent_dim=2)):
        for kw in ({}, {"resume": True}):
            with pytest.raises(RunError, match=f"is in use by process {os.getpid()}"):
                train_from_configs(MAME, dataclasses.replace(train, **kw), MAMEConfig(latent_dim=2))
    # released on exit: the run can now start
    assert train_from_configs(MAME, train, MAMEConfig(latent_dim=2))["iteration"] == 4


@pytest.mark.parametrize("damage, says", [
    ("truncate", "variables.npz is unreadable"),
    ("delete_variables", "variables.npz is missing"),
    ("garbage_state", "state.json is unreadable"),
    ("delete_state", "state.json is missing"),
    ("state_without_sampler", "state.json lacks what a resume needs"),
])
def test_a_damaged_newest_checkpoint_falls_back_to_the_newest_intact_one(reference, tmp_path, damage, says):
    run = _copy_run(reference, tmp_path)
    newest = run / "checkpoints" / "ckpt-000004"
    if damage == "truncate":
        data = (newest / "variables.npz").read_bytes()
        (newest / "variables.npz").write_bytes(data[: len(data) // 2])
    elif damage == "delete_variables":
        os.remove(newest / "variables.npz")
    elif damage == "garbage_state":
        (newest / "state.json").write_text("{not json")
    elif damage == "state_without_sampler":
        (newest / "state.json").write_text(json.dumps({"iteration": 4, "env_steps": 64}))
    else:
        os.remove(newest / "state.json")
    # evaluation and load read it without changing anything
    before = _listing(run)
    lines = _Lines()
    algo, _, state = load_run(str(run), stream=lines)
    assert state["iteration"] == 3
    assert lines.text().count("skipped checkpoint") == 1 and "ckpt-000004" in lines.text() and says in lines.text()
    assert _listing(run) == before
    # resume continues from iteration 3, saying once which checkpoint was skipped and why
    lines = _Lines()
    _resume(run, stream=lines, quiet=False)
    assert lines.text().count("skipped checkpoint") == 1 and says in lines.text()
    assert "resumed at iteration 3" in lines.text()
    assert _without_times(_rows(run / "progress.csv")) == _without_times(reference[1])
    assert (run / "checkpoints" / "ckpt-000004.damaged").is_dir()  # kept for inspection


def test_no_intact_checkpoint_refuses_before_rewriting_config(reference, tmp_path):
    run = _copy_run(reference, tmp_path)
    for name in os.listdir(run / "checkpoints"):
        if name.startswith("ckpt-"):
            (run / "checkpoints" / name / "state.json").write_text("garbage")
    config = (run / "config.json").read_text()
    (run / "config.json").write_text(config + "\n")  # any rewrite would drop this newline
    with pytest.raises(RunError, match="no intact checkpoint"):
        _resume(run, iterations=6)
    assert (run / "config.json").read_text() == config + "\n"


def test_resume_below_the_checkpoint_is_refused_and_a_complete_run_does_nothing(reference, tmp_path):
    run = _copy_run(reference, tmp_path)
    before = _listing(run)
    with pytest.raises(RunError, match=r"--iterations=2 is below the iteration of the run's checkpoint \(4\)"):
        _resume(run, iterations=2)
    lines = _Lines()
    last = _resume(run, stream=lines)
    assert "already complete (4 iterations); nothing to do" in lines.text() and last["iteration"] == 4
    assert _listing(run) == before


def test_evaluation_never_writes_to_checkpoints(reference, tmp_path):
    run = _copy_run(reference, tmp_path)
    (run / "checkpoints" / "latest").write_text("ckpt-000002")  # older than the newest complete one
    before = _listing(run)
    algo, _, state = load_run(str(run))
    assert state["iteration"] == 2
    assert _listing(run) == before
    # a directory without checkpoints: a clear error, and no checkpoints/ is created
    shutil.rmtree(run / "checkpoints")
    with pytest.raises(ValueError, match="has no complete checkpoint"):
        mame_tf.load(str(run))
    assert not (run / "checkpoints").exists()


@pytest.mark.parametrize("bad, message", [
    ("{not json", "config.json is unreadable"),
    ('{"algorithm": "rl2", "train": {}, "algo": {}}', "unknown algorithm 'rl2'"),
    ('{"algorithm": "mame", "train": {"meta_batch_size": 0}, "algo": {}}', "--meta_batch_size=0 is invalid"),
])
def test_load_rejects_a_bad_config_with_one_line(tmp_path, bad, message):
    os.makedirs(tmp_path / "run")
    (tmp_path / "run" / "config.json").write_text(bad)
    with pytest.raises(ValueError, match=message):
        mame_tf.load(str(tmp_path / "run"))


def test_load_gives_the_trained_algorithm_with_its_configuration(reference):
    algo = mame_tf.load(str(reference[0]))
    assert algo.name == "mame" and algo.train_config.horizon == 5 and algo.cfg.latent_dim == 2
    pre, post, _ = adapt_and_sample(algo, MetaSampler("point_corner", 2, 5, seed=1),
                                    MetaSampler("point_corner", 2, 5, seed=1).sample_tasks(2), 1)
    assert np.isfinite(post.mean_return())


def test_presets_and_validation_in_the_settings_themselves():
    assert TrainConfig(env="cheetah_dir").horizon == 200 and TrainConfig(env="cheetah_dir").iterations == 800
    assert TrainConfig(env="point_corner").horizon == 100
    with pytest.raises(ValueError, match="--meta_batch_size=0 is invalid: must be a positive number"):
        TrainConfig(meta_batch_size=0)
    train, algo = configs("mame", env="cheetah_dir")
    assert train.horizon == 200 and algo.inner_lr == 5.0
    with pytest.raises(ValueError, match="unknown setting 'bogus' for mame; valid settings: .*meta_batch_size"):
        mame_tf.train("mame", bogus=1)
    with pytest.raises(ValueError, match="env='hopper' is invalid: .*point_corner"):
        mame_tf.train("mame", env="hopper")
    with pytest.raises(ValueError, match="valid names: mame, maml_vpg, maml_trpo, promp, emaml"):
        mame_tf.train("rl2")


@pytest.mark.parametrize("algo, settings, message", [
    ("mame", {"inner_lr": float("inf")}, "--inner_lr=inf is invalid: must be a finite number"),
    ("mame", {"init_std": float("inf")}, "--init_std=inf is invalid: must be a finite number"),
    ("maml_trpo", {"inner_lr": float("nan")}, "--inner_lr=nan is invalid: must be a finite number"),
    ("promp", {"promp_hidden_sizes": ()}, "--promp_hidden_sizes=(empty) is invalid: must be one or more positive"),
    ("promp", {"promp_hidden_sizes": (0,)}, "--promp_hidden_sizes=0 is invalid: must be one or more positive"),
    ("mame", {"hidden_sizes": (8, -1)}, "--hidden_sizes=8,-1 is invalid"),
])
def test_hostile_values_are_refused_before_any_work(tmp_path, algo, settings, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        mame_tf.train(algo, logdir=str(tmp_path / "run"), **settings)
    assert not (tmp_path / "run").exists()


def test_resume_refusal_shows_values_as_flags(reference):
    with pytest.raises(ValueError) as err:
        configs("mame", logdir=str(reference[0]), resume=True, hidden_sizes=(16, 16))
    assert "--hidden_sizes=16,16 differs from the resumed run's 8;" in str(err.value)


@pytest.mark.parametrize("where, message", [
    ("file", "is not a directory"),
    ("/proc/mame_tf_run", "cannot be created"),
    ("/proc/self", "is not writable"),
])
def test_unusable_logdir_is_refused(tmp_path, where, message):
    logdir = where
    if where == "file":
        logdir = str(tmp_path / "file")
        (tmp_path / "file").write_text("x")
    with pytest.raises(RunError, match=message):
        train_from_configs(MAME, TrainConfig(**{**TINY, "logdir": logdir}), MAMEConfig(latent_dim=2))


class _NaNActions(MAME):
    """The 3rd adaptation gives a NaN latent vector, so the post-update policy's actions are NaN."""
    name = "mame"

    def adapt(self, batch, adapted, inner_steps):
        self.calls = getattr(self, "calls", 0) + 1
        z = super().adapt(batch, adapted, inner_steps)
        return z * float("nan") if self.calls == 3 else z


def test_non_finite_actions_stop_through_the_non_finite_path(tmp_path):
    with pytest.raises(NonFiniteError, match=r"the policy's actions are not finite .* at iteration 3; stopping\. "
                                             r"The last good checkpoint \(ckpt-000002\) is kept"):
        train_from_configs(_NaNActions, _train(tmp_path), MAMEConfig(latent_dim=2))
    assert len(_rows(tmp_path / "run" / "progress.csv")) == 2


def test_nan_before_any_checkpoint_says_there_is_none(tmp_path):
    with pytest.raises(NonFiniteError, match="No checkpoint has been written yet"):
        train_from_configs(_NaNActions, _train(tmp_path, checkpoint_every=100), MAMEConfig(latent_dim=2))


def _full_disk():
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_while_saving_a_checkpoint_loses_nothing(reference, tmp_path, monkeypatch):
    import mame_tf.checkpoint as ckmod

    real_savez = np.savez
    calls = []

    def savez(fh, **arrays):
        calls.append(1)
        if len(calls) == 3:  # the third checkpoint: part of the file is written, then the disk is full
            fh.write(b"PK\x03\x04 partial")
            raise _full_disk()
        return real_savez(fh, **arrays)

    monkeypatch.setattr(ckmod.np, "savez", savez)
    run = tmp_path / "run"
    with pytest.raises(StorageError) as err:
        train_from_configs(MAME, TrainConfig(**{**TINY, "logdir": str(run), "checkpoint_every": 1,
                                                "keep_checkpoints": 4}), MAMEConfig(latent_dim=2))
    assert "could not write the checkpoint of iteration 3" in str(err.value)
    assert "No space left on device" in str(err.value) and "(ckpt-000002) is kept" in str(err.value)
    assert sorted(os.listdir(run / "checkpoints")) == ["ckpt-000001", "ckpt-000002", "latest"]
    monkeypatch.setattr(ckmod.np, "savez", real_savez)
    _resume(run)
    assert _without_times(_rows(run / "progress.csv")) == _without_times(reference[1])


def test_a_full_disk_while_logging_leaves_no_torn_row(reference, tmp_path, monkeypatch):
    import mame_tf.logger as logmod

    real_write = os.write

    def write(fd, data):
        if data.startswith(b"3,"):  # the row of iteration 3: half of it fits, then the disk is full
            real_write(fd, data[: len(data) // 2])
            raise _full_disk()
        return real_write(fd, data)

    monkeypatch.setattr(logmod.os, "write", write)
    run = tmp_path / "run"
    with pytest.raises(StorageError, match="progress.csv: No space left on device; stopping at iteration 3"):
        train_from_configs(MAME, TrainConfig(**{**TINY, "logdir": str(run), "checkpoint_every": 1,
                                                "keep_checkpoints": 4}), MAMEConfig(latent_dim=2))
    text = (run / "progress.csv").read_text()
    assert text.endswith("\n") and len(_rows(run / "progress.csv")) == 2
    monkeypatch.setattr(logmod.os, "write", real_write)
    _resume(run)
    assert _without_times(_rows(run / "progress.csv")) == _without_times(reference[1])


# --------------------------------------------------------------------------------------------------
# Faults on real launcher processes: SIGTERM, two processes on one directory, SIGKILL.
# --------------------------------------------------------------------------------------------------
PROC = dict(TINY, checkpoint_every=7)


def _launch(logdir, cwd, *extra, iterations=30):
    cmd = [sys.executable, os.path.join(ROOT, "launchers", "run_mame.py"), f"--logdir={logdir}",
           "--env=point_corner", "--meta_batch_size=2", "--episodes_per_task=2", "--horizon=5", "--hidden_sizes=8",
           "--latent_dim=2", "--wandb_mode=disabled", "--quiet", f"--checkpoint_every={PROC['checkpoint_every']}",
           f"--iterations={iterations}", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)


def _wait_for_rows(path, n, proc, timeout=300):
    """Wait until ``path`` has at least ``n`` rows; False if the process ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            if len(_rows(path)) >= n:
                return True
        except (OSError, KeyError):
            pass
        time.sleep(0.02)
    raise AssertionError(f"{path} did not reach {n} rows")


@pytest.fixture(scope="module")
def reference30(tmp_path_factory):
    path = tmp_path_factory.mktemp("ref30") / "ref"
    train_from_configs(MAME, TrainConfig(**{**PROC, "iterations": 30, "logdir": str(path)}), MAMEConfig(latent_dim=2))
    return _rows(path / "progress.csv")


def test_sigterm_at_random_moments_then_resume_equals_an_uninterrupted_run(tmp_path, reference30):
    rng = random.Random()
    logdir = tmp_path / "run"
    progress = logdir / "progress.csv"
    moments = []
    for attempt in range(3):
        proc = _launch(logdir, tmp_path, *(["--resume"] if attempt else []))
        done = len(_rows(progress)) if progress.exists() else 0
        if not _wait_for_rows(progress, done + 1, proc):
            break
        delay = rng.uniform(0.0, 0.3)
        moments.append(delay)
        time.sleep(delay)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=300)
        if proc.returncode == 0:  # it finished before the signal
            break
        assert proc.returncode == 143, (moments, err[-2000:])
        assert "SIGTERM: finishing this iteration, then saving and stopping" in err, moments
        assert "Interrupted (SIGTERM): saved a checkpoint at iteration" in out, (moments, out)
        assert "Traceback" not in err
    proc = _launch(logdir, tmp_path, "--resume")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    assert _without_times(_rows(progress)) == _without_times(reference30), moments


def test_two_processes_on_one_directory_and_a_killed_one(tmp_path, reference30):
    logdir = tmp_path / "run"
    live = _launch(logdir, tmp_path, iterations=100000)
    try:
        assert _wait_for_rows(logdir / "progress.csv", 1, live)
        for extra in ([], ["--resume"]):  # a second run, and a resume while the run is live
            second = _launch(logdir, tmp_path, *extra, iterations=100000)
            out, err = second.communicate(timeout=300)
            assert second.returncode == 2, err[-2000:]
            assert f"is in use by process {live.pid}" in err and "Traceback" not in err
            ours = [line for line in err.splitlines() if "--logdir" in line]
            assert len(ours) == 1 and ours[0].startswith("error: ") and f"process {live.pid}" in ours[0], err
        live.kill()  # SIGKILL: its lock must not block the resume below
        live.wait(timeout=60)
    finally:
        if live.poll() is None:
            live.kill()
            live.wait()
    latest = logdir / "checkpoints" / "latest"
    saved = int(latest.read_text().split("-")[1]) if latest.exists() else 0
    proc = _launch(logdir, tmp_path, "--resume", iterations=saved + 2)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    rows = _rows(logdir / "progress.csv")
    assert [int(r["iteration"]) for r in rows] == list(range(1, saved + 3))
    n = min(len(rows), len(reference30))
    assert _without_times(rows[:n]) == _without_times(reference30[:n])
    # a new run in the finished directory is refused by the launcher too
    proc = _launch(logdir, tmp_path, iterations=3)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 2 and "already holds a run" in err and "--resume" in err
    assert len(_rows(logdir / "progress.csv")) == saved + 2


def test_evaluate_refuses_bad_input_before_any_work(tmp_path, reference):
    script = os.path.join(ROOT, "launchers", "evaluate.py")
    for args, code, says in (
        (["--seed=-3"], 1, "--seed=-3"),
        (["--output=/proc/mame_tf_eval.json"], 2, "--output=/proc/mame_tf_eval.json cannot be written"),
    ):
        out = subprocess.run([sys.executable, script, f"--logdir={reference[0]}", *args], capture_output=True,
                             text=True, timeout=300, cwd=tmp_path)
        assert out.returncode == code, out.stderr[-2000:]
        assert says in out.stderr and "Traceback" not in out.stderr
        assert "inner steps" not in out.stdout  # no evaluation was run


def test_python_api_trains_and_loads_with_the_launchers_presets(tmp_path):
    small = {k: v for k, v in TINY.items() if k != "env"}
    last = mame_tf.train("mame", env="point_corner", logdir=str(tmp_path / "run"), latent_dim=2,
                         **{**small, "iterations": 2})
    assert last["iteration"] == 2 and np.isfinite(last["post_adapt/return"])
    assert _rows(tmp_path / "run" / "progress.csv")[-1]["iteration"] == "2"
    # resume=True without env continues the run's own family (not the default point_corner)
    strict = str(tmp_path / "strict")
    mame_tf.train("mame", env="point_corner_strict", logdir=strict, latent_dim=2, **{**small, "iterations": 1})
    last = mame_tf.train("mame", logdir=strict, resume=True, latent_dim=2, **{**small, "iterations": 2})
    assert last["iteration"] == 2 and mame_tf.load(strict).train_config.env == "point_corner_strict"
    algo = mame_tf.load(str(tmp_path / "run"))
    assert algo.train_config == configs("mame", env="point_corner", logdir=str(tmp_path / "run"), latent_dim=2,
                                        **{**small, "iterations": 2})[0]
    # a MuJoCo run directory: load gives the family's presets (horizon 200, MAME's inner_lr 5)
    train, algo_cfg = configs("mame", env="cheetah_dir", logdir=str(tmp_path / "cheetah"), hidden_sizes=(8,),
                              latent_dim=2)
    os.makedirs(tmp_path / "cheetah")
    from mame_tf import config as cfgmod

    (tmp_path / "cheetah" / "config.json").write_text(cfgmod.dumps(train, "mame", algo_cfg))
    made = build_algorithm(MAME, train, algo_cfg, 20, 6)
    Checkpointer(str(tmp_path / "cheetah" / "checkpoints"), made.checkpoint_items()).save(
        0, {"env_steps": 0, "sampler": {}})
    loaded = mame_tf.load(str(tmp_path / "cheetah"))
    assert loaded.train_config.horizon == 200 and loaded.cfg.inner_lr == 5.0


def test_a_full_disk_while_writing_provenance_is_a_storage_error(tmp_path, monkeypatch):
    from mame_tf.run import StorageError
    from mame_tf.runinfo import write_provenance

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(StorageError, match="could not write .*provenance.json: .*No space left"):
        write_provenance(str(tmp_path))
    assert os.listdir(tmp_path) == []  # no torn file, no temporary left behind


def test_tensorboard_write_errors_are_os_errors(tmp_path, monkeypatch):
    """A full disk under --tensorboard must take the run's storage-error path (an OSError), not end in
    one of TensorFlow's own exceptions."""
    import tensorflow as tf

    from mame_tf.runinfo import TensorBoardWriter

    writer = TensorBoardWriter(str(tmp_path / "tb"))

    def full(*args, **kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, "No space left on device")

    monkeypatch.setattr(writer._writer, "flush", full)
    with pytest.raises(OSError, match="could not write the TensorBoard events .*No space left"):
        writer.write({"iteration": 1, "post_adapt/return": 1.0})
    monkeypatch.setattr(writer._writer, "close", full)
    with pytest.raises(OSError, match="could not close"):
        writer.close()
