"""The batched backend agrees with the gymnasium envs it mirrors, step for step."""
import numpy as np
import pytest

import mame_tf  # noqa: F401
from mame_tf import envs
from mame_tf.envs.batched import GymBatchedEnv, make_batched_env


def _run_pair(name, n, steps, action_scale, seed, init=None):
    rng = np.random.default_rng(seed)
    benv = make_batched_env(name, n, nthread=2)
    tasks = envs.sample_tasks(name, n, rng)
    obs_b = benv.reset(tasks, rng)
    if init is not None:
        init(benv)
        obs_b = benv._obs() if hasattr(benv, "_obs") else obs_b
    gym_envs = [envs.make(name) for _ in range(n)]
    obs_g = []
    for i, env in enumerate(gym_envs):
        env.reset(seed=i)
        env.unwrapped.set_task(tasks[i])
        if name == "point_corner":
            env.unwrapped.set_state(benv.get_state()[i])
            obs_g.append(benv.get_state()[i])
        else:
            qpos, qvel = benv.get_state()
            env.unwrapped.set_state(qpos[i], qvel[i])
            obs_g.append(env.unwrapped._get_obs())
    np.testing.assert_allclose(obs_b, np.array(obs_g), atol=1e-8)
    done = np.zeros(n, bool)
    n_term = 0
    for t in range(steps):
        a = action_scale * rng.standard_normal((n, benv.act_dim))
        ob, rb, tb, _ = benv.step(a)
        for i, env in enumerate(gym_envs):
            if done[i]:
                continue
            og, rg, tg, _, _ = env.step(a[i])
            np.testing.assert_allclose(ob[i], og, atol=1e-8, err_msg=f"{name} env {i} step {t}")
            assert rb[i] == pytest.approx(rg, abs=1e-8), (name, i, t)
            assert bool(tb[i]) == tg, (name, i, t)
            if tg:
                done[i] = True
                n_term += 1
    for env in gym_envs:
        env.close()
    return n_term


@pytest.mark.parametrize("name", ["point_corner", "cheetah_vel", "cheetah_dir", "ant_dir"])
def test_batched_matches_gymnasium_over_full_horizon(name):
    horizon = envs.HORIZONS[name]
    _run_pair(name, n=3, steps=horizon, action_scale=0.5, seed=0)


def test_ant_contact_forces_and_early_termination_match():
    def lift(benv):  # start the torso just under the termination height so some episodes end early
        qpos, qvel = benv.get_state()
        qpos[:, 2] = 0.95
        qvel[:, 2] = np.array([3.0, 0.0, 2.0])
        benv.set_state(qpos, qvel)

    n_term = _run_pair("ant_dir", n=3, steps=60, action_scale=1.0, seed=1, init=lift)
    assert n_term >= 1, "the test must exercise early termination"


def test_ant_observation_contains_contact_forces():
    rng = np.random.default_rng(2)
    benv = make_batched_env("ant_dir", 2)
    benv.reset(envs.sample_tasks("ant_dir", 2, rng), rng)
    for _ in range(20):
        obs, _, _, _ = benv.step(rng.uniform(-1, 1, (2, 8)))
    assert obs.shape == (2, 125)
    assert np.abs(obs[:, 29:113]).max() > 0  # the ant stands on the floor: contacts are non-zero


def test_unknown_names_and_bad_arguments():
    with pytest.raises(ValueError, match="valid names: ant_dir, cheetah_dir, cheetah_vel, point_corner"):
        make_batched_env("hopper_dir", 2)
    with pytest.raises(ValueError, match="num_envs"):
        make_batched_env("point_corner", 0)
    benv = make_batched_env("point_corner", 2)
    with pytest.raises(ValueError, match="tasks"):
        benv.reset(envs.sample_tasks("point_corner", 3, np.random.default_rng(0)), np.random.default_rng(0))


def test_gym_fallback_wraps_registered_ids():
    benv = GymBatchedEnv("mame_tf/PointCorner-v0", 2)
    rng = np.random.default_rng(0)
    obs = benv.reset(envs.sample_tasks("point_corner", 2, rng), rng)
    assert obs.shape == (2, 2) and benv.horizon == 100
    obs2, r, term, info = benv.step(np.full((2, 2), 0.1))
    np.testing.assert_allclose(obs2, obs + 0.1)
    assert not term.any()
