"""The four task families as gymnasium environments: registration, task interface, definitions."""
import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import mame_tf  # noqa: F401
from mame_tf import envs
from mame_tf.envs.point_corner import point_reward

NAMES = ["point_corner", "cheetah_vel", "cheetah_dir", "ant_dir"]
OBS_DIMS = {"point_corner": 2, "cheetah_vel": 20, "cheetah_dir": 20, "ant_dir": 125}


@pytest.mark.parametrize("name", NAMES)
def test_registered_and_passes_env_checker(name):
    env = gym.make(envs.ENV_IDS[name])
    assert env.spec.max_episode_steps == envs.HORIZONS[name]
    assert env.observation_space.shape == (OBS_DIMS[name],)
    check_env(env.unwrapped, skip_render_check=True)  # raises on any violation of the gymnasium API
    env.close()


@pytest.mark.parametrize("name", NAMES)
def test_task_interface_is_seedable(name):
    env = envs.make(name).unwrapped
    a = env.sample_tasks(10, seed=3)
    b = env.sample_tasks(10, seed=3)
    assert a == b and len(a) == 10
    env.set_task(a[1])
    assert env.get_task() == a[1]
    param = {"point_corner": "goal", "cheetah_vel": "velocity"}.get(name, "direction")
    values = [getattr(t, param) for t in env.sample_tasks(200, seed=0)]
    if name == "point_corner":
        assert set(values) == {(2.0, 2.0), (2.0, -2.0), (-2.0, 2.0), (-2.0, -2.0)}
    elif name == "cheetah_vel":
        assert 0.0 <= min(values) and max(values) <= 2.0
    else:
        assert set(values) == {-1, 1}
    with pytest.raises(ValueError, match="n=0"):
        env.sample_tasks(0)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="valid names: ant_dir, cheetah_dir, cheetah_vel, point_corner"):
        envs.env_id("cheetah_backwards")


def test_point_corner_reward_definition():
    g = np.array([2.0, 2.0])
    # near the centre (|x|+|y| < 0.5): nothing
    assert point_reward(np.zeros(2), np.array([0.2, 0.2]), g) == 0.0
    # outside the centre, the goal corner is nearest: progress toward it
    s, s2 = np.array([0.5, 0.5]), np.array([0.7, 0.7])
    assert point_reward(s, s2, g) == pytest.approx(np.linalg.norm(s - g) - np.linalg.norm(s2 - g))
    # another corner is nearest: nothing
    assert point_reward(np.array([-0.5, 0.5]), np.array([-0.7, 0.7]), g) == 0.0
    # a tie (on the axis between two corners) counts
    assert point_reward(np.array([0.0, 0.6]), np.array([0.0, 0.8]), g) > 0.0


def test_point_corner_optimum_return():
    """A full-speed straight run to the right corner earns ~2.55; the wrong corner earns 0."""
    env = envs.make("point_corner").unwrapped
    for goal, target, expected in [((2.0, -2.0), (2.0, -2.0), 1.8 * np.sqrt(2)), ((2.0, -2.0), (-2.0, -2.0), 0.0)]:
        env.reset(seed=0)
        env.set_state(np.zeros(2))
        env.set_task(envs.GoalTask(goal=goal))
        total = 0.0
        for _ in range(100):
            _, r, term, trunc, info = env.step(np.clip(np.array(target) - env._pos, -0.2, 0.2))
            total += r
            assert not term
        assert total == pytest.approx(expected, abs=1e-9)


def test_cheetah_reward_matches_definition():
    env = envs.make("cheetah_dir").unwrapped
    env.reset(seed=0)
    env.set_task(envs.DirectionTask(direction=-1))
    x0 = env.data.qpos[0]
    a = np.full(6, 2.0)  # beyond the bounds: the reward uses the clipped action
    _, r, _, _, _ = env.step(a)
    v = (env.data.qpos[0] - x0) / env.dt
    assert env.dt == pytest.approx(0.05)
    assert r == pytest.approx(-v - 0.05 * 6 * 1.0)


def test_import_and_envs_leave_no_mujoco_log_and_no_warnings(tmp_path):
    code = (
        "import warnings; warnings.simplefilter('error');"
        "import mame_tf; from mame_tf import envs;"
        "[envs.make(n).reset(seed=0) for n in ['point_corner','cheetah_vel','cheetah_dir','ant_dir']];"
        "from mame_tf.envs.batched import make_batched_env; make_batched_env('cheetah_dir', 2)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert out.returncode == 0, out.stderr
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()
    assert "deprecat" not in (out.stdout + out.stderr).lower()
