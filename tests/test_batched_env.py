"""The batched backend agrees with the gymnasium envs it mirrors, step for step."""
import numpy as np
import pytest

import mame_tf  # noqa: F401
from mame_tf import envs
from mame_tf.registry import FAMILIES
from mame_tf.envs.batched import GymBatchedEnv, MujocoBatched, PointCornerBatched, make_batched_env

NAMES = ["point_corner", "point_corner_strict", "cheetah_vel", "cheetah_dir", "ant_dir"]


def _gym_twins(name, benv, tasks):
    """One gymnasium env per simulation, on the same task and in the batched env's current state."""
    twins, obs = [], []
    state = benv.get_state()
    for i, task in enumerate(tasks):
        env = envs.make(name)
        env.reset(seed=i)
        env.unwrapped.set_task(task)
        if name.startswith("point"):
            env.unwrapped.set_state(state[i])
            obs.append(env.unwrapped.get_state())
        else:
            env.unwrapped.set_state(state[0][i], state[1][i])
            obs.append(env.unwrapped._get_obs())
        twins.append(env)
    return twins, np.array(obs)


def _run_pair(name, n, steps, action_scale, seed, init=None):
    """Run ``n`` batched simulations and their gymnasium twins on the same random actions; assert
    equal observations, rewards, terminations and infos. Returns (number of early terminations,
    largest |contact force| seen in the observations)."""
    rng = np.random.default_rng(seed)
    benv = make_batched_env(name, n, nthread=2)
    tasks = envs.sample_tasks(name, n, rng)
    obs_b = benv.reset(tasks, rng)
    if init is not None:
        obs_b = init(benv)
    twins, obs_g = _gym_twins(name, benv, tasks)
    np.testing.assert_allclose(obs_b, obs_g, rtol=0, atol=1e-8)
    done = np.zeros(n, bool)
    n_term, max_contact = 0, 0.0
    for t in range(steps):
        a = action_scale * rng.standard_normal((n, benv.act_dim))
        ob, rb, tb, info_b = benv.step(a)
        assert ob.shape == (n, benv.obs_dim) and rb.shape == (n,) and tb.shape == (n,) and tb.dtype == bool
        assert np.isfinite(ob).all() and np.isfinite(rb).all()
        assert tb[done].all(), "a terminated simulation stays terminated"
        for i, env in enumerate(twins):
            if done[i]:
                continue
            og, rg, tg, trunc, info_g = env.step(a[i])
            np.testing.assert_allclose(ob[i], og, rtol=0, atol=1e-8, err_msg=f"{name} sim {i} step {t}")
            assert rb[i] == pytest.approx(rg, rel=0, abs=1e-8), (name, i, t)
            assert bool(tb[i]) == tg, (name, i, t)
            assert trunc == (t == steps - 1 and steps == benv.horizon)
            key = "position" if name.startswith("point") else "x_velocity"
            np.testing.assert_allclose(info_b[key][i], info_g[key], rtol=0, atol=1e-8)
            if tg:
                done[i] = True
                n_term += 1
        if name == "ant_dir":
            max_contact = max(max_contact, float(np.abs(ob[~done, 29:113]).max(initial=0.0)))
    for env in twins:
        env.close()
    benv.close()
    return n_term, max_contact


@pytest.mark.parametrize("name", NAMES)
def test_batched_matches_gymnasium_over_full_horizon(name):
    n_term, max_contact = _run_pair(name, n=3, steps=FAMILIES[name].horizon, action_scale=0.5, seed=0)
    if name == "ant_dir":
        assert max_contact > 0.1, "the comparison must cover non-zero contact forces"
    else:
        assert n_term == 0


def test_ant_early_termination_and_contact_forces_match():
    def lift(benv):  # torso just under the termination height, two of four thrown upwards
        qpos, qvel = benv.get_state()
        qpos[:, 2] = 0.95
        qvel[:, 2] = [3.0, 0.0, 2.0, 0.0]
        return benv.set_state(qpos, qvel)

    n_term, max_contact = _run_pair("ant_dir", n=4, steps=60, action_scale=1.5, seed=1, init=lift)
    assert n_term >= 2, "the test must exercise early termination"
    assert max_contact > 0.1


def test_terminated_simulations_stop_and_stay_finite():
    rng = np.random.default_rng(3)
    benv = make_batched_env("ant_dir", 3, nthread=1)
    benv.reset(envs.sample_tasks("ant_dir", 3, rng), rng)
    qpos, qvel = benv.get_state()
    qpos[0, 2] = 1.5  # sim 0 terminates on the first step
    benv.set_state(qpos, qvel)
    _, _, term, _ = benv.step(np.zeros((3, 8)))
    assert term.tolist() == [True, False, False]
    frozen = benv.get_state()[0][0].copy()
    for _ in range(5):
        obs, reward, term, info = benv.step(rng.uniform(-1, 1, (3, 8)))
        assert term[0] and np.isfinite(obs).all() and np.isfinite(reward).all()
    np.testing.assert_array_equal(benv.get_state()[0][0], frozen)  # no longer simulated
    assert not np.array_equal(benv.get_state()[0][1], qpos[1])
    benv.reset(envs.sample_tasks("ant_dir", 3, rng), rng)
    assert not benv.step(np.zeros((3, 8)))[2].any()  # reset clears the flags


def test_full_state_reproduces_a_simulation_mid_episode():
    import mujoco

    rng = np.random.default_rng(8)
    benv = make_batched_env("ant_dir", 2)
    tasks = envs.sample_tasks("ant_dir", 2, rng)
    benv.reset(tasks, rng)
    for _ in range(15):
        benv.step(rng.uniform(-0.5, 0.5, (2, 8)))
    env = envs.make("ant_dir")
    env.reset(seed=0)
    u = env.unwrapped
    u.set_task(tasks[1])
    mujoco.mj_setState(u.model, u.data, benv.get_full_state()[1], mujoco.mjtState.mjSTATE_INTEGRATION)
    for _ in range(15):
        a = rng.uniform(-0.5, 0.5, (2, 8))
        ob, rb, tb, _ = benv.step(a)
        og, rg, tg, _, _ = env.step(a[1])
        np.testing.assert_array_equal(ob[1], og)
        assert rb[1] == rg and tb[1] == tg


@pytest.mark.parametrize("name", ["cheetah_dir", "ant_dir"])
def test_reset_noise_and_reproducibility(name):
    benv = make_batched_env(name, 400, nthread=2)
    tasks = envs.sample_tasks(name, 400, 0)
    obs1 = benv.reset(tasks, np.random.default_rng(11))
    qpos, qvel = benv.get_state()
    dq = qpos - benv.model.qpos0
    assert np.abs(dq).max() <= 0.1 and np.abs(dq).max() > 0.09 and abs(dq.mean()) < 0.01
    assert qvel.std() == pytest.approx(0.1, rel=0.05) and abs(qvel.mean()) < 0.01
    np.testing.assert_array_equal(obs1, benv.reset(tasks, np.random.default_rng(11)))
    assert not np.array_equal(obs1, benv.reset(tasks, np.random.default_rng(12)))


@pytest.mark.parametrize("name", ["cheetah_vel", "ant_dir"])
def test_thread_count_does_not_change_results(name):
    out = []
    for nthread in (1, 2):
        rng = np.random.default_rng(4)
        benv = make_batched_env(name, 6, nthread=nthread)
        assert benv.nthread == nthread == benv.sims.nthread
        benv.reset(envs.sample_tasks(name, 6, rng), rng)
        for _ in range(20):
            obs, rew, term, _ = benv.step(rng.uniform(-1, 1, (6, benv.act_dim)))
        out.append((obs, rew, term))
    for x, y in zip(out[0], out[1]):
        np.testing.assert_array_equal(x, y)


def test_fast_backend_and_gym_fallback_agree():
    """GymBatchedEnv (a loop over gymnasium envs) and MujocoBatched from one state, same actions."""
    rng = np.random.default_rng(6)
    fast = make_batched_env("cheetah_vel", 2)
    slow = GymBatchedEnv("mame_tf/HalfCheetahVel-v0", 2)
    assert isinstance(fast, MujocoBatched)
    for attr in ("obs_dim", "act_dim", "horizon", "num_envs"):
        assert getattr(fast, attr) == getattr(slow, attr), attr
    np.testing.assert_array_equal(fast.action_low, slow.action_low)
    tasks = envs.sample_tasks("cheetah_vel", 2, rng)
    fast.reset(tasks, rng)
    slow.reset(tasks, rng)
    np.testing.assert_allclose(slow.set_state(*fast.get_state()), fast.set_state(*fast.get_state()), atol=1e-12)
    for _ in range(30):
        a = rng.uniform(-2, 2, (2, 6))
        o1, r1, t1, i1 = fast.step(a)
        o2, r2, t2, i2 = slow.step(a)
        np.testing.assert_allclose(o1, o2, atol=1e-8)
        np.testing.assert_allclose(r1, r2, atol=1e-8)
        np.testing.assert_array_equal(t1, t2)
        np.testing.assert_allclose(i1["x_velocity"], i2["x_velocity"], atol=1e-8)
    slow.close()


def test_gym_fallback_for_point_and_for_ids_without_tasks():
    benv = make_batched_env("mame_tf/PointCorner-v0", 2)
    assert isinstance(benv, PointCornerBatched)  # our ids get the fast backend too
    benv = GymBatchedEnv("mame_tf/PointCorner-v0", 2)
    rng = np.random.default_rng(0)
    obs = benv.reset(envs.sample_tasks("point_corner", 2, rng), rng)
    assert obs.shape == (2, 2) and benv.horizon == 100
    obs2, r, term, info = benv.step(np.full((2, 2), 0.1))
    np.testing.assert_allclose(obs2, obs + 0.1)
    np.testing.assert_allclose(info["position"], obs2)
    assert not term.any()
    other = make_batched_env("Pendulum-v1", 3)  # any registered gymnasium id, no task interface
    assert isinstance(other, GymBatchedEnv) and other.obs_dim == 3 and other.act_dim == 1 and other.horizon == 200
    obs = other.reset([None] * 3, np.random.default_rng(1))
    assert obs.shape == (3, 3) and len({tuple(o) for o in obs}) == 3  # each env seeded differently
    obs, r, term, _ = other.step(np.zeros((3, 1)))
    assert obs.shape == (3, 3) and r.shape == (3,) and not term.any()
    other.close()


def test_unknown_names_and_bad_arguments():
    with pytest.raises(ValueError, match="valid names: ant_dir, cheetah_dir, cheetah_vel, point_corner"):
        make_batched_env("hopper_dir", 2)
    with pytest.raises(ValueError, match="num_envs"):
        make_batched_env("point_corner", 0)
    with pytest.raises(ValueError, match="nthread"):
        make_batched_env("cheetah_dir", 2, nthread=-1)
    rng = np.random.default_rng(0)
    benv = make_batched_env("point_corner", 2)
    with pytest.raises(ValueError, match="tasks"):
        benv.reset(envs.sample_tasks("point_corner", 3, rng), rng)
    with pytest.raises(ValueError, match="GoalTask"):
        benv.reset(envs.sample_tasks("cheetah_dir", 2, rng), rng)
    benv.reset(envs.sample_tasks("point_corner", 2, rng), rng)
    with pytest.raises(ValueError, match="shape"):
        benv.step(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="not finite"):
        benv.step(np.array([[0.0, 0.0], [np.nan, 0.0]]))
    cheetah = make_batched_env("cheetah_vel", 2)
    with pytest.raises(ValueError, match="VelocityTask"):
        cheetah.reset(envs.sample_tasks("cheetah_dir", 2, rng), rng)
