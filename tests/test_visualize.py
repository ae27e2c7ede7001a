"""The visualizer: tiny trained runs, the files it writes, its checks on bad input."""
import os
import subprocess
import sys

import numpy as np
import pytest

from mame_tf import visualize as vis
from mame_tf.config import TrainConfig
from mame_tf.launch import train_from_configs
from mame_tf.mame import MAME, MAMEConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(iterations=4, meta_batch_size=2, episodes_per_task=2, wandb_mode="disabled", checkpoint_every=2,
            keep_checkpoints=5, quiet=True, hidden_sizes=(8,))


def _tiny_run(tmp_path, env, horizon, algo_cls=MAME, algo_cfg=None):
    logdir = str(tmp_path / env)
    train_from_configs(algo_cls, TrainConfig(env=env, horizon=horizon, logdir=logdir, **TINY),
                       algo_cfg or MAMEConfig(latent_dim=2))
    return logdir


def _snapshot(logdir):
    ck = os.path.join(logdir, "checkpoints")
    return sorted((root, tuple(sorted(files))) for root, _, files in os.walk(ck))


def test_point_run_pictures(tmp_path):
    logdir = _tiny_run(tmp_path, "point_corner_strict", horizon=6)
    run = vis.load_run(logdir)
    assert sorted(run.checkpoints) == [2, 4]
    before = _snapshot(logdir)
    iterations = vis.select_checkpoints(run, "5")
    assert iterations == [2, 4]
    out = tmp_path / "out"
    out.mkdir()
    written = vis.point_pictures(run, iterations, vis.make_tasks(run.family, "0,1,2,3"), 2, 0, str(out))
    names = sorted(os.path.basename(p) for p in written)
    assert names == ["sequence.png", "trajectories_iter000002.png", "trajectories_iter000004.png"]
    assert all(os.path.getsize(p) > 10_000 for p in written)
    assert _snapshot(logdir) == before  # checkpoints are only read


def test_cheetah_run_video(tmp_path):
    logdir = _tiny_run(tmp_path, "cheetah_dir", horizon=4)
    run = vis.load_run(logdir)
    out = tmp_path / "out"
    out.mkdir()
    written = vis.mujoco_videos(run, vis.select_checkpoints(run, "last"), vis.make_tasks(run.family, "1,-1"),
                                0, str(out), width=64, height=48, frame_every=1)
    assert sorted(os.path.basename(p) for p in written) == ["adapted_iter000004.gif", "adapted_iter000004_strip.png"]
    import imageio.v2 as imageio

    frames = imageio.mimread(written[0])
    assert len(frames) == 2 * 5 and frames[0].shape[:2] == (48, 64)  # 2 tasks x (start + 4 steps)
    assert imageio.imread(written[1]).shape[:2] == (2 * 48, 4 * 64)  # a row of 4 frames per task


def test_checkpoint_and_task_choices_are_checked(tmp_path):
    run = vis.LoadedRun(str(tmp_path), "mame", TrainConfig(env="point_corner"), MAMEConfig(),
                        {10: "a", 20: "b", 30: "c"})
    assert vis.select_checkpoints(run, "last") == [30]
    assert vis.select_checkpoints(run, "2") == [10, 30]
    assert vis.select_checkpoints(run, "10,30") == [10, 30]
    assert vis.select_checkpoints(run, "20") == [20]  # a number naming a checkpoint is that checkpoint
    many = vis.LoadedRun(str(tmp_path), "mame", TrainConfig(env="point_corner"), MAMEConfig(),
                         {i: str(i) for i in range(5, 55, 5)})
    assert vis.select_checkpoints(many, 5) == [5, 15, 25, 40, 50]  # the launcher's default: always a count
    with pytest.raises(ValueError, match="no complete checkpoint of iteration 15; the run has 10, 20, 30"):
        vis.select_checkpoints(run, "10,15")
    with pytest.raises(ValueError, match="--checkpoints='latest' is invalid"):
        vis.select_checkpoints(run, "latest")
    with pytest.raises(ValueError, match="corner indices 0, 1, 2, 3"):
        vis.make_tasks("point_corner", "4")
    with pytest.raises(ValueError, match="directions 1 .forward. and -1"):
        vis.make_tasks("cheetah_dir", "0.5")
    assert [t.velocity for t in vis.make_tasks("cheetah_vel", "0.5,1.5")] == [0.5, 1.5]
    assert np.allclose(vis.make_tasks("point_corner", "3")[0].goal, [-2, -2])


def test_visualize_launcher_names_a_bad_logdir(tmp_path):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "launchers", "visualize.py"),
                          f"--logdir={tmp_path}"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert f"error: --logdir={str(tmp_path)!r} has no config.json" in out.stderr

