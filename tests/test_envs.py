"""The four task families as gymnasium environments: registration, task interface, definitions."""
import os
import pickle
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import mame_tf  # noqa: F401
from mame_tf import envs
from mame_tf.registry import FAMILIES
from mame_tf.envs.point_corner import point_reward

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

NAMES = ["point_corner", "point_corner_strict", "cheetah_vel", "cheetah_dir", "ant_dir"]
OBS_DIMS = {"point_corner": 2, "point_corner_strict": 2, "cheetah_vel": 20, "cheetah_dir": 20, "ant_dir": 125}
ACT_DIMS = {"point_corner": 2, "point_corner_strict": 2, "cheetah_vel": 6, "cheetah_dir": 6, "ant_dir": 8}
CORNERS = {(2.0, 2.0), (2.0, -2.0), (-2.0, 2.0), (-2.0, -2.0)}


def _param(task):
    for name in ("goal", "velocity", "direction"):
        if hasattr(task, name):
            return getattr(task, name)
    raise AssertionError(task)


@pytest.mark.parametrize("name", NAMES)
def test_registered_and_passes_env_checker(name):
    env = gym.make(FAMILIES[name].gym_id)
    assert envs.env_id(name) == FAMILIES[name].gym_id == envs.env_id(FAMILIES[name].gym_id)
    assert env.spec.max_episode_steps == FAMILIES[name].horizon == (100 if name.startswith("point") else 200)
    assert env.observation_space.shape == (OBS_DIMS[name],)
    assert env.action_space.shape == (ACT_DIMS[name],)
    with warnings.catch_warnings():  # the checker's advice about unbounded observation spaces
        warnings.filterwarnings("ignore", message=".*Box observation space (minimum|maximum) value")
        check_env(env.unwrapped, skip_render_check=True)  # raises on any violation of the gymnasium API
    env.close()


@pytest.mark.parametrize("name", NAMES)
def test_task_interface_is_seedable(name):
    env = envs.make(name).unwrapped
    a = env.sample_tasks(10, seed=3)
    assert a == env.sample_tasks(10, seed=3) and len(a) == 10
    assert a == env.sample_tasks(10, rng=np.random.default_rng(3))
    assert a != env.sample_tasks(10, seed=4)
    assert len(set(a)) >= 2  # hashable, and not all the same
    env.set_task(a[1])
    assert env.get_task() == a[1]
    values = [_param(t) for t in env.sample_tasks(400, seed=0)]
    if name.startswith("point"):
        assert all(isinstance(v, np.ndarray) and v.shape == (2,) for v in values)
        assert {tuple(v) for v in values} == CORNERS
        with pytest.raises(ValueError):
            values[0][0] = 5.0  # tasks are frozen, their goal array too
    elif name == "cheetah_vel":
        assert 0.0 <= min(values) and max(values) <= 2.0 and np.std(values) > 0.4  # U(0, 2): std 0.577
    else:
        assert set(values) == {-1, 1} and 0.4 < np.mean(np.array(values) == 1) < 0.6
    with pytest.raises(ValueError, match="n=0"):
        env.sample_tasks(0)
    wrong = envs.VelocityTask(1.0) if name != "cheetah_vel" else envs.DirectionTask(1)
    with pytest.raises(ValueError, match="expects"):
        env.set_task(wrong)


def test_module_sample_tasks_uses_the_given_generator():
    rng = np.random.default_rng(5)
    first = envs.sample_tasks("cheetah_vel", 4, rng)
    second = envs.sample_tasks("mame_tf/HalfCheetahVel-v0", 4, rng)
    assert first != second  # the generator advanced
    rng = np.random.default_rng(5)
    assert envs.sample_tasks("cheetah_vel", 4, rng) + envs.sample_tasks("cheetah_vel", 4, rng) == first + second
    assert envs.sample_tasks("ant_dir", 6, 7) == envs.sample_tasks("ant_dir", 6, np.random.default_rng(7))
    assert all(isinstance(t, envs.GoalTask) for t in envs.sample_tasks("point_corner", 3, 0))


def test_unknown_names_and_bad_tasks_are_rejected():
    with pytest.raises(ValueError, match="valid names: ant_dir, cheetah_dir, cheetah_vel, point_corner"):
        envs.env_id("cheetah_backwards")
    with pytest.raises(ValueError, match="valid names"):
        envs.sample_tasks("cheetah_backwards", 2, 0)
    with pytest.raises(ValueError, match="direction"):
        envs.DirectionTask(0)
    with pytest.raises(ValueError, match="goal"):
        envs.GoalTask([1.0, 2.0, 3.0])
    assert envs.GoalTask([2, -2]) == envs.GoalTask(np.array([2.0, -2.0]))
    assert hash(envs.GoalTask([2, -2])) == hash(envs.GoalTask((2.0, -2.0)))
    copy = pickle.loads(pickle.dumps(envs.GoalTask([2, -2])))
    assert copy == envs.GoalTask([2, -2]) and not copy.goal.flags.writeable


def test_point_corner_reward_definition():
    g = np.array([2.0, 2.0])
    # near the centre (|x|+|y| < 0.5): nothing
    assert point_reward(np.zeros(2), np.array([0.2, 0.2]), g) == 0.0
    # outside the centre, the goal corner is nearest: progress toward it
    s, s2 = np.array([0.5, 0.5]), np.array([0.7, 0.7])
    assert point_reward(s, s2, g) == pytest.approx(np.linalg.norm(s - g) - np.linalg.norm(s2 - g))
    # moving away from the goal inside its region: negative progress
    assert point_reward(s2, s, g) == pytest.approx(-(np.linalg.norm(s - g) - np.linalg.norm(s2 - g)))
    # another corner is nearest: nothing
    assert point_reward(np.array([-0.5, 0.5]), np.array([-0.7, 0.7]), g) == 0.0
    # a tie (on the axis between two corners) counts
    assert point_reward(np.array([0.0, 0.6]), np.array([0.0, 0.8]), g) > 0.0


def _boundary_oscillation_return(name: str) -> float:
    """Return of 100 steps that hop back and forth across the boundary of the goal's region."""
    env = envs.make(name).unwrapped
    env.reset(seed=0)
    env.set_task(envs.GoalTask((2.0, 2.0)))
    env.set_state(np.array([-0.1, 1.0]))  # in (-2, 2)'s region, next to the goal's
    total = 0.0
    for t in range(100):
        total += env.step(np.array([0.2 if t % 2 == 0 else -0.2, 0.0], np.float32))[1]
    return total


def test_point_corner_reward_can_be_farmed_and_the_strict_variant_cannot():
    farmed = _boundary_oscillation_return("point_corner")
    assert farmed > 5.0  # each entry into the goal's region pays ~0.14, each exit costs nothing
    assert abs(_boundary_oscillation_return("point_corner_strict")) < 1e-9  # entries and exits cancel
    g = np.array([2.0, 2.0])
    s_in, s_out = np.array([0.1, 1.0]), np.array([-0.1, 1.0])
    assert point_reward(s_in, s_out, g) == 0.0
    assert point_reward(s_in, s_out, g, strict=True) == pytest.approx(
        np.linalg.norm(s_in - g) - np.linalg.norm(s_out - g))
    for s, s2 in [(np.array([0.5, 0.5]), np.array([0.7, 0.7])), (np.array([-0.5, 0.5]), np.array([-0.7, 0.7])),
                  (np.zeros(2), np.array([0.2, 0.2]))]:  # steps within one region: the same reward
        assert point_reward(s, s2, g, strict=True) == point_reward(s, s2, g)


@pytest.mark.parametrize("name", ["point_corner", "point_corner_strict"])
def test_point_corner_dynamics_info_and_optimum_return(name):
    """A full-speed straight run to the right corner earns ~2.55; the wrong corner earns 0."""
    env = envs.make(name).unwrapped
    obs, info = env.reset(seed=0)
    assert np.all(np.abs(obs) <= 0.2) and np.array_equal(info["position"], obs)
    env.set_task(envs.GoalTask((2.0, 2.0)))
    obs2, _, _, _, info = env.step(np.array([1.0, -0.05], np.float32))  # clipped to [-0.2, 0.2]
    np.testing.assert_allclose(obs2, obs + [0.2, -0.05], atol=1e-7)
    np.testing.assert_array_equal(info["position"], obs2)
    assert info["goal_distance"] == pytest.approx(np.linalg.norm(obs2 - [2.0, 2.0]))
    for target, expected in [((2.0, -2.0), 1.8 * np.sqrt(2)), ((-2.0, -2.0), 0.0)]:
        env.reset(seed=0)
        env.set_state(np.zeros(2))
        env.set_task(envs.GoalTask((2.0, -2.0)))
        total = 0.0
        for _ in range(100):
            _, r, term, trunc, info = env.step(np.clip(np.array(target) - env.get_state(), -0.2, 0.2))
            total += r
            assert not term and not trunc
        assert total == pytest.approx(expected, abs=1e-9)
        assert 2.5 < 1.8 * np.sqrt(2) < 2.6


@pytest.mark.parametrize("name", ["cheetah_vel", "cheetah_dir"])
def test_cheetah_observation_and_reward_match_definition(name):
    env = envs.make(name).unwrapped
    env.reset(seed=0)
    task = envs.VelocityTask(1.3) if name == "cheetah_vel" else envs.DirectionTask(-1)
    env.set_task(task)
    x0 = env.data.qpos[0]
    a = np.array([2.0, -3.0, 0.5, 0.0, 1.0, -1.0])  # beyond the bounds: the reward uses the clipped action
    obs, r, term, trunc, info = env.step(a)
    d = env.data
    v = (d.qpos[0] - x0) / env.dt
    assert env.dt == pytest.approx(0.05)
    ctrl = 0.05 * np.sum(np.clip(a, -1, 1) ** 2)
    expected = -abs(v - 1.3) - ctrl if name == "cheetah_vel" else -v - ctrl
    assert r == pytest.approx(expected, abs=1e-12)
    assert info["x_velocity"] == pytest.approx(v)
    torso = env.model.body("torso").id
    np.testing.assert_array_equal(obs, np.concatenate([d.qpos[1:], d.qvel, d.subtree_com[torso]]))
    assert not term and not trunc


def test_ant_observation_reward_and_termination_match_definition():
    env = envs.make("ant_dir").unwrapped
    env.reset(seed=0)
    env.set_task(envs.DirectionTask(-1))
    d, m = env.data, env.model
    torso = m.body("torso").id
    rng = np.random.default_rng(0)
    steps_with_contact = 0
    for _ in range(40):
        x0 = d.qpos[0]
        a = rng.uniform(-0.5, 0.5, 8)
        a[0] = 1.4  # beyond the bounds: the reward uses the clipped action
        obs, r, term, _, _ = env.step(a)
        assert not term and d.cfrc_ext.shape == (14, 6)
        contact = np.clip(d.cfrc_ext, -1, 1)
        steps_with_contact += np.abs(contact).sum() > 0
        np.testing.assert_array_equal(
            obs, np.concatenate([d.qpos, d.qvel, contact.ravel(), d.xmat[torso], d.subtree_com[torso]]))
        v = (d.qpos[0] - x0) / env.dt
        expected = -v - 0.005 * np.sum(np.clip(a, -1, 1) ** 2) - 0.0005 * np.sum(contact ** 2) + 0.05
        assert r == pytest.approx(expected, abs=1e-12)
    assert steps_with_contact > 10
    # torso lifted above 1.0: terminated on the next step
    qpos, qvel = d.qpos.copy(), d.qvel.copy()
    qpos[2] = 1.5
    env.set_state(qpos, qvel)
    assert env.step(np.zeros(8))[2] is True


def test_import_and_envs_leave_no_mujoco_log_and_no_warnings(tmp_path):
    """Creating and stepping every env in a fresh process: no MUJOCO_LOG.TXT, no warning of any kind,
    nothing on stdout/stderr, and MuJoCo's settotalmass deprecation went to the debug log."""
    code = (
        "import logging, warnings\n"
        "warnings.simplefilter('error')\n"
        "records = []\n"
        "class H(logging.Handler):\n"
        "    def emit(self, r): records.append(r.getMessage())\n"
        "log = logging.getLogger('mame_tf.mujoco'); log.addHandler(H()); log.setLevel(logging.DEBUG)\n"
        "import mame_tf; from mame_tf import envs\n"
        "from mame_tf.envs.batched import make_batched_env\n"
        "import numpy as np\n"
        "for n in ['point_corner', 'cheetah_vel', 'cheetah_dir', 'ant_dir']:\n"
        "    e = envs.make(n); e.reset(seed=0)\n"
        "    for _ in range(3): e.step(e.action_space.sample())\n"
        "    e.close()\n"
        "    b = make_batched_env(n, 2); rng = np.random.default_rng(0)\n"
        "    b.reset(envs.sample_tasks(n, 2, rng), rng); b.step(np.ones((2, b.act_dim)))\n"
        "assert any('settotalmass' in m for m in records), records\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
                              "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])})
    assert out.returncode == 0, out.stderr
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()
    assert out.stdout == "" and out.stderr == "", out.stdout + out.stderr
