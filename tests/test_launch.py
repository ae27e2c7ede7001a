"""Launcher, trainer, checkpoints: validation, run directory, resume equality, NaN stop, Ctrl-C."""
import csv
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
from absl import flags

from mame_tf import config as cfgmod
from mame_tf.checkpoint import Checkpointer
from mame_tf.config import TrainConfig
from mame_tf.launch import algorithm_class, build_algorithm, build_configs, train_from_configs
from mame_tf.mame import MAME, MAMEConfig
from mame_tf.trainer import NonFiniteError

from tiny_runs import ROOT, TINY, Lines as _Lines, rows as _rows, tiny_train as _train  # noqa: E402


def _flag_values(algo_cls, argv):
    fv = flags.FlagValues()
    cfgmod.define_flags(TrainConfig, fv)
    cfgmod.define_flags(algo_cls.config_class, fv)
    fv(["prog"] + argv)
    return fv


@pytest.mark.parametrize("argv,message", [
    (["--env=hopper"], "--env='hopper' is invalid; valid choices: ant_dir, cheetah_dir, cheetah_vel, point_corner"),
    (["--iterations=-3"], "--iterations=-3 is invalid: must be a positive number"),
    (["--discount=1.5"], "--discount=1.5 is invalid: must be <= 1.0"),
    (["--hidden_sizes=10,x"], "--hidden_sizes=10,x is invalid: must be comma-separated integers"),
    (["--inner_lr=-1"], "--inner_lr=-1.0 is invalid: must be >= 0"),
])
def test_bad_settings_fail_before_any_work(argv, message):
    fv = _flag_values(MAME, [a for a in argv if not a.startswith("--env=")])
    if argv[0].startswith("--env="):  # an enum flag: absl rejects it while parsing, with its own wording
        fv = flags.FlagValues()
        cfgmod.define_flags(TrainConfig, fv)
        cfgmod.define_flags(MAME.config_class, fv)
        with pytest.raises(flags.IllegalFlagValueError) as err:
            fv(["prog"] + argv)
        assert "--env=hopper" in str(err.value)
        assert all(name in str(err.value) for name in ("ant_dir", "cheetah_dir", "cheetah_vel", "point_corner"))
        # the same check on a settings object built in code gives the project's own message
        with pytest.raises(ValueError) as err:
            cfgmod.validate(TrainConfig(env="hopper"))
        assert message in str(err.value)
        return
    with pytest.raises(ValueError) as err:
        build_configs(MAME, fv)
    assert message in str(err.value)


def test_presets_apply_only_to_flags_not_given():
    train, _ = build_configs(MAME, _flag_values(MAME, ["--env=cheetah_dir"]))
    assert train.horizon == 200 and train.iterations == 800
    train, _ = build_configs(MAME, _flag_values(MAME, ["--env=cheetah_dir", "--horizon=50"]))
    assert train.horizon == 50
    train, algo = build_configs(MAME, _flag_values(MAME, []))
    assert train.env == "point_corner" and train.horizon == 100 and algo.inner_lr == 30.0
    # MAME's inner step size has a MuJoCo preset too, overridden by the flag
    assert build_configs(MAME, _flag_values(MAME, ["--env=cheetah_dir"]))[1].inner_lr == 5.0
    assert build_configs(MAME, _flag_values(MAME, ["--env=ant_dir", "--inner_lr=30"]))[1].inner_lr == 30.0


def test_registry_names_every_algorithm():
    for name in ("mame", "maml_vpg", "maml_trpo", "promp", "emaml"):
        assert algorithm_class(name).name == name
    with pytest.raises(ValueError, match="valid names: mame, maml_vpg, maml_trpo, promp, emaml"):
        algorithm_class("rl2")


def test_run_directory_and_resume_give_the_same_progress(tmp_path):
    full = train_from_configs(MAME, _train(tmp_path, "full"), MAMEConfig(latent_dim=2))
    assert full["iteration"] == 4
    run = tmp_path / "full"
    assert json.loads((run / "config.json").read_text())["algorithm"] == "mame"
    rows = _rows(run / "progress.csv")
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3, 4]
    for col in ("iteration", "env_steps", "pre_adapt/return", "post_adapt/return", "time/sampling", "time/update"):
        assert col in rows[0]
    assert int(rows[-1]["env_steps"]) == 4 * 2 * (2 * 2 * 5)
    assert (run / "checkpoints" / "ckpt-000004" / "state.json").exists()

    train_from_configs(MAME, _train(tmp_path, "split", iterations=2), MAMEConfig(latent_dim=2))
    train_from_configs(MAME, _train(tmp_path, "split", resume=True), MAMEConfig(latent_dim=2))
    split = _rows(tmp_path / "split" / "progress.csv")
    assert len(split) == 4
    for a, b in zip(rows, split):
        for key in a:
            if not key.startswith("time/"):
                assert a[key] == b[key], (key, a[key], b[key])


def test_checkpoints_restore_optimizer_slots(tmp_path):
    tc = _train(tmp_path)
    a = build_algorithm(MAME, tc, MAMEConfig(latent_dim=2), 2, 2)
    for slot in a.optimizer.optimizers["networks"].variables:
        slot.assign(slot + 0.5)
    ck = Checkpointer(str(tmp_path / "ck"), a.checkpoint_items())
    ck.save(7, {"x": 1})
    b = build_algorithm(MAME, dataclasses.replace(tc, seed=3), MAMEConfig(latent_dim=2), 2, 2)
    state = Checkpointer(str(tmp_path / "ck"), b.checkpoint_items()).restore_latest()
    assert state["iteration"] == 7
    for va, vb in zip(a.optimizer.optimizers["networks"].variables, b.optimizer.optimizers["networks"].variables):
        np.testing.assert_array_equal(np.asarray(va), np.asarray(vb))
    for va, vb in zip(a.pi.params, b.pi.params):
        np.testing.assert_array_equal(np.asarray(va), np.asarray(vb))
    # a half-written checkpoint is ignored
    os.makedirs(tmp_path / "ck" / "ckpt-000009.tmp")
    assert Checkpointer(str(tmp_path / "ck"), b.checkpoint_items()).latest().endswith("ckpt-000007")


class _Exploding(MAME):
    name = "mame"

    def update(self, pre_batches, post_batch):
        metrics = super().update(pre_batches, post_batch)
        if getattr(self, "calls", 0) >= 2:
            metrics["loss/outer"] = float("nan")
        self.calls = getattr(self, "calls", 0) + 1
        return metrics


class _Interrupted(MAME):
    """Raises KeyboardInterrupt (a second, impatient Ctrl-C) in the 3rd update, before or after applying it."""
    name = "mame"
    after_apply = False

    def update(self, pre_batches, post_batch):
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls == 3 and not self.after_apply:
            raise KeyboardInterrupt
        metrics = super().update(pre_batches, post_batch)
        if self.calls == 3:
            raise KeyboardInterrupt
        return metrics


class _InterruptedAfterApply(_Interrupted):
    after_apply = True


class _CtrlC(MAME):
    """Sends itself one real SIGINT during the 3rd update, as a user pressing Ctrl-C once."""
    name = "mame"

    def update(self, pre_batches, post_batch):
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return super().update(pre_batches, post_batch)


class _InterruptedSampling(MAME):
    """KeyboardInterrupt while sampling the 3rd iteration's post-update episodes."""
    name = "mame"

    def exploitation_policy(self, adapted):
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls == 3:
            raise KeyboardInterrupt
        return super().exploitation_policy(adapted)


class _NaNLoss(MAME):
    """The 3rd update's outer loss (and so its gradients) is NaN."""
    name = "mame"

    def compute_gradients(self, pre_batches, post_batch):
        grads, info = super().compute_gradients(pre_batches, post_batch)
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls == 3:
            info["loss/outer"] = float("nan")
            grads = {k: [g * float("nan") for g in v] for k, v in grads.items()}
        return grads, info


def test_nan_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tmp_path):
    with pytest.raises(NonFiniteError, match="loss/outer became nan at iteration 3"):
        train_from_configs(_Exploding, _train(tmp_path), MAMEConfig(latent_dim=2))
    ck = tmp_path / "run" / "checkpoints"
    assert sorted(os.listdir(ck)) == ["ckpt-000002", "latest"]


def test_nan_loss_is_named_before_it_reaches_the_weights(tmp_path):
    with pytest.raises(NonFiniteError, match="loss/outer became nan at iteration 3"):
        train_from_configs(_NaNLoss, _train(tmp_path, checkpoint_every=1), MAMEConfig(latent_dim=2))
    ck = tmp_path / "run" / "checkpoints"
    assert sorted(os.listdir(ck)) == ["ckpt-000001", "ckpt-000002", "latest"]
    assert len(_rows(tmp_path / "run" / "progress.csv")) == 2


@pytest.fixture(scope="module")
def reference_rows(tmp_path_factory):
    path = tmp_path_factory.mktemp("ref")
    train_from_configs(MAME, _train(path, "ref", checkpoint_every=100), MAMEConfig(latent_dim=2))
    return _rows(path / "ref" / "progress.csv")


def _same_progress(a, b):
    assert len(a) == len(b) == TINY["iterations"]
    for ra, rb in zip(a, b):
        assert {k: v for k, v in ra.items() if not k.startswith("time/")} == \
            {k: v for k, v in rb.items() if not k.startswith("time/")}


@pytest.mark.parametrize("algo_cls,checkpoint_every,saved,says", [
    (_CtrlC, 100, "ckpt-000003", "saved a checkpoint at iteration 3"),  # one Ctrl-C: iteration 3 is finished
    (_InterruptedSampling, 100, "ckpt-000002", "saved a checkpoint at iteration 2"),  # sampler rewound
    (_Interrupted, 2, "ckpt-000002", "the last periodic checkpoint"),  # in the update: nothing new is saved
    (_InterruptedAfterApply, 2, "ckpt-000002", "the last periodic checkpoint"),
])
def test_interrupt_then_resume_equals_an_uninterrupted_run(tmp_path, reference_rows, algo_cls, checkpoint_every,
                                                            saved, says):
    lines = _Lines()
    train = _train(tmp_path, "int", checkpoint_every=checkpoint_every, quiet=False)
    handler_before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        train_from_configs(algo_cls, train, MAMEConfig(latent_dim=2), stream=lines)
    assert says in lines.text()
    assert f"ontinue with --resume --logdir={train.logdir}\n" in lines.text()  # the actual directory
    ck = tmp_path / "int" / "checkpoints"
    assert sorted(d for d in os.listdir(ck) if d.startswith("ckpt-"))[-1] == saved
    assert signal.getsignal(signal.SIGINT) is handler_before  # the trainer's handler is removed
    train_from_configs(MAME, _train(tmp_path, "int", resume=True, checkpoint_every=checkpoint_every),
                       MAMEConfig(latent_dim=2))
    _same_progress(_rows(tmp_path / "int" / "progress.csv"), reference_rows)


def test_held_out_evaluation_lands_in_progress_csv(tmp_path):
    train_from_configs(MAME, _train(tmp_path, eval_every=2, eval_tasks=2), MAMEConfig(latent_dim=2))
    rows = _rows(tmp_path / "run" / "progress.csv")
    assert [r["eval/post_adapt/return"] != "" for r in rows] == [False, True, False, True]
    assert all(np.isfinite(float(r["eval/post_adapt/return"])) for r in rows[1::2])
    assert rows[0]["post_adapt/return"] != "" and rows[0]["iteration"] == "1"


def test_checkpoint_saved_twice_and_a_dangling_latest_pointer(tmp_path):
    a = build_algorithm(MAME, _train(tmp_path), MAMEConfig(latent_dim=2), 2, 2)
    ck = Checkpointer(str(tmp_path / "ck"), a.checkpoint_items(), keep=5)
    ck.save(4, {"x": 1})
    ck.save(5, {"x": 2})
    ck.save(5, {"x": 3})  # the same iteration again (e.g. Ctrl-C right after a periodic save)
    assert sorted(os.listdir(tmp_path / "ck")) == ["ckpt-000004", "ckpt-000005", "latest"]
    assert ck.restore_latest()["x"] == 3
    # a crash between moving the old directory aside and renaming the new one into place: the copy
    # set aside is still found
    real_replace = os.replace

    def crash_on_rename_into_place(src, dst):
        if str(src).endswith(".tmp") and str(dst).endswith("ckpt-000005"):
            raise OSError("simulated crash")
        return real_replace(src, dst)

    os.replace = crash_on_rename_into_place
    try:
        with pytest.raises(OSError, match="simulated crash"):
            ck.save(5, {"x": 4})
    finally:
        os.replace = real_replace
    assert "ckpt-000005" not in os.listdir(tmp_path / "ck")
    assert ck.latest().endswith("ckpt-000005.old") and ck.restore_latest()["x"] == 3
    # a stale newer checkpoint (a crash before ``latest`` was updated) is dropped when resuming
    (tmp_path / "ck" / "latest").write_text("ckpt-000004")
    assert ck.restore_latest()["x"] == 1
    assert sorted(os.listdir(tmp_path / "ck")) == ["ckpt-000004", "ckpt-000005.tmp", "latest"]
    # the next save drops what crashes left: the unfinished write and a copy set aside beside its
    # checkpoint; complete checkpoints stay
    shutil.copytree(tmp_path / "ck" / "ckpt-000004", tmp_path / "ck" / "ckpt-000004.old")
    ck.save(6, {"x": 5})
    assert sorted(os.listdir(tmp_path / "ck")) == ["ckpt-000004", "ckpt-000006", "latest"]


def test_ctrl_c_in_the_last_iteration_lets_the_run_finish(tmp_path):
    train = _train(tmp_path, iterations=3)
    last = train_from_configs(_CtrlC, train, MAMEConfig(latent_dim=2))
    assert last["iteration"] == 3
    assert (tmp_path / "run" / "checkpoints" / "ckpt-000003").exists()


def test_inner_target_with_the_vpg_inner_step_is_rejected():
    with pytest.raises(ValueError, match="--inner_target=reward has no effect with --inner_objective=vpg"):
        build_configs(MAME, _flag_values(MAME, ["--inner_objective=vpg", "--inner_target=reward"]))
    build_configs(MAME, _flag_values(MAME, ["--inner_objective=vpg"]))


def test_eta_after_resume_counts_only_this_process(tmp_path):
    from mame_tf.logger import Logger

    lines = _Lines()
    log = Logger(str(tmp_path), 100, {}, wandb_mode="disabled", resume_iteration=50, stream=lines)
    log.log({"iteration": 51, "env_steps": 1, "pre_adapt/return": 0.0, "post_adapt/return": 0.0,
             "time/sampling": 1.0, "time/update": 1.0, "time/iteration": 2.0, "time/total": 1000.0})
    eta = lines.text().split("ETA ")[1].split()[0]
    h, m, sec = map(int, eta.split(":"))
    assert 90 <= 3600 * h + 60 * m + sec <= 120, eta  # 49 iterations left at ~2 s each, not 49 x 1000 s


@pytest.mark.parametrize("script", ["run_mame.py", "run_maml_vpg.py", "run_maml_trpo.py", "run_promp.py",
                                    "run_emaml.py"])
def test_launcher_smoke(tmp_path, script):
    logdir = tmp_path / "run"
    cmd = [sys.executable, os.path.join(ROOT, "launchers", script), "--iterations=2", "--meta_batch_size=2",
           "--episodes_per_task=2", "--horizon=5", f"--logdir={logdir}", "--hidden_sizes=8",
           "--wandb_mode=" + ("offline" if script == "run_mame.py" else "disabled")]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "[2/2]" in out.stdout and "ETA" in out.stdout
    assert len(_rows(logdir / "progress.csv")) == 2
    if script == "run_mame.py":
        assert (logdir / "wandb").is_dir() and (logdir / "wandb_run_id").exists()
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()


def test_launcher_rejects_bad_values_with_the_flag_name(tmp_path):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "launchers", "run_mame.py"), "--meta_batch_size=0"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode != 0
    assert "--meta_batch_size=0 is invalid" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "runs").exists()


def test_evaluate_meta_tests_a_trained_run(tmp_path):
    train_from_configs(MAME, _train(tmp_path, "run", iterations=2), MAMEConfig(latent_dim=2))
    out = subprocess.run([sys.executable, os.path.join(ROOT, "launchers", "evaluate.py"),
                          f"--logdir={tmp_path / 'run'}", "--inner_steps=2", "--eval_tasks=3"],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads((tmp_path / "run" / "eval" / "iter000002-k2-tasks3-eps2-seed12345.json").read_text())
    assert result["checkpoint_iteration"] == 2 and sorted(result["steps"]) == ["0", "1", "2"]
    assert all(np.isfinite(v) for row in result["steps"].values() for v in row.values())


# --------------------------------------------------------------------------------------------------
# Comparison runs and result aggregation.
# --------------------------------------------------------------------------------------------------
def _write_progress(run_dir, returns):
    os.makedirs(run_dir)
    with open(os.path.join(run_dir, "progress.csv"), "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["iteration", "env_steps", "post_adapt/return"])
        for i, r in enumerate(returns):
            writer.writerow([i + 1, 100 * (i + 1), r])


def test_aggregate_curves_and_final_numbers(tmp_path):
    from mame_tf.results import aggregate

    _write_progress(tmp_path / "a_s0", [0.0, 1.0, 2.0, 3.0])
    _write_progress(tmp_path / "a_s1", [2.0, 3.0, 4.0])  # shorter: curves stop at its length
    finals = aggregate({"a": [str(tmp_path / "a_s0"), str(tmp_path / "a_s1")]}, str(tmp_path / "out" / "x"),
                       final_window=2)
    # final_goal_distance is not logged by these runs, so only the return is aggregated
    assert finals == {"a": [("a_s0", {"post_adapt/return": 2.5}), ("a_s1", {"post_adapt/return": 3.5})]}
    curves = _rows(tmp_path / "out" / "x_curves.csv")
    assert [float(r["post_adapt/return_mean"]) for r in curves] == [1.0, 2.0, 3.0]
    assert [float(r["post_adapt/return_min"]) for r in curves] == [0.0, 1.0, 2.0]
    assert (tmp_path / "out" / "x.png").stat().st_size > 0
    with pytest.raises(ValueError, match="none of the requested metrics"):
        aggregate({"a": [str(tmp_path / "a_s0")]}, str(tmp_path / "y"), metrics=["nope"])
