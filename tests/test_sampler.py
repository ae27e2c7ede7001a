"""The meta-sampler: shapes, masks, log-probabilities, per-task policies, reproducibility."""
import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import mame_tf  # noqa: F401
from mame_tf.networks import GaussianMLPPolicy
from mame_tf.sampler import MetaSampler


class _StopAtTaskStep(gym.Env):
    """A user's own task family: 1-D, terminates at a task-dependent step."""

    def __init__(self):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self._stop, self._t = 3, 0

    def sample_tasks(self, n, rng=None):
        return [int(k) for k in rng.integers(2, 6, size=n)]

    def set_task(self, task):
        self._stop = task

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        return np.zeros(1), {}

    def step(self, action):
        self._t += 1
        return np.full(1, float(self._t)), 1.0, self._t >= self._stop, False, {}


if "test_mame_tf/StopAtTaskStep-v0" not in gym.registry:
    gym.register("test_mame_tf/StopAtTaskStep-v0", entry_point=_StopAtTaskStep, max_episode_steps=8)


def _constant_policy(mean, log_std):
    def fn(obs):
        T, E, _ = obs.shape
        return np.full((T, E, len(mean)), mean), np.full((T, E, len(mean)), log_std)
    return fn


def test_shapes_logp_and_positions():
    sampler = MetaSampler("point_corner", episodes_per_task=3, horizon=7, seed=0)
    policy = GaussianMLPPolicy(2, 2, hidden_sizes=(8,), seed=0)
    batch = sampler.sample(sampler.sample_tasks(4), policy.sampling_fn())
    assert batch.obs.shape == (4, 3, 7, 2) and batch.actions.shape == (4, 3, 7, 2)
    assert batch.rewards.shape == batch.mask.shape == batch.logp.shape == (4, 3, 7)
    assert batch.infos["position"].shape == (4, 3, 7, 2)
    np.testing.assert_allclose(batch.infos["position"][:, :, :-1], batch.obs[:, :, 1:], atol=1e-6)
    assert batch.mask.all()
    ref = tfp.distributions.MultivariateNormalDiag(batch.mean.astype(np.float64), np.exp(batch.log_std.astype(np.float64)))
    np.testing.assert_allclose(batch.logp, ref.log_prob(batch.actions.astype(np.float64)).numpy(), rtol=1e-4, atol=1e-4)


def test_user_registered_family_and_termination_mask():
    sampler = MetaSampler("test_mame_tf/StopAtTaskStep-v0", episodes_per_task=2, seed=1)
    assert sampler.horizon == 8
    tasks = [2, 5]
    batch = sampler.sample(tasks, _constant_policy([0.0], 0.0))
    np.testing.assert_array_equal(batch.mask[0, 0], [1, 1, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(batch.mask[1, 1], [1, 1, 1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(batch.rewards, batch.mask)  # reward 1 per real step, 0 after the end
    assert (batch.logp[batch.mask == 0] == 0).all()
    np.testing.assert_array_equal(batch.episode_returns(), [[2, 2], [5, 5]])


def test_per_task_parameters_without_a_task_loop():
    sampler = MetaSampler("point_corner", episodes_per_task=2, horizon=3, seed=2)
    policy = GaussianMLPPolicy(2, 2, hidden_sizes=(8,), seed=0)
    params = policy.tile_params(3)
    params[-2] = params[-2] + tf.constant([[1.0, 0.0], [0.0, 0.0], [-1.0, 2.0]])  # output bias per task
    batch = sampler.sample(sampler.sample_tasks(3), policy.sampling_fn(params=params, per_task=True))
    for t in range(3):
        expected, _ = policy.forward([p[t] for p in params], batch.obs[t])
        np.testing.assert_allclose(batch.mean[t], expected.numpy(), rtol=1e-5, atol=1e-5)


def test_seeded_runs_are_reproducible_and_state_restores():
    policy = GaussianMLPPolicy(2, 2, hidden_sizes=(8,), seed=0).sampling_fn()
    a, b = MetaSampler("point_corner", 2, 5, seed=3), MetaSampler("point_corner", 2, 5, seed=3)
    ba, bb = a.sample(a.sample_tasks(2), policy), b.sample(b.sample_tasks(2), policy)
    np.testing.assert_array_equal(ba.actions, bb.actions)
    state = a.get_state()
    first = a.sample(a.sample_tasks(2), policy)
    a.set_state(state)
    again = a.sample(a.sample_tasks(2), policy)
    np.testing.assert_array_equal(first.obs, again.obs)
    np.testing.assert_array_equal(first.actions, again.actions)
    assert first.tasks == again.tasks
    c = MetaSampler("point_corner", 2, 5, seed=4)
    assert not np.array_equal(c.sample(c.sample_tasks(2), policy).actions, ba.actions)


def test_bad_arguments():
    with pytest.raises(ValueError, match="valid names"):
        MetaSampler("nope", 2)
    with pytest.raises(ValueError, match="episodes_per_task=0"):
        MetaSampler("point_corner", 0)
    with pytest.raises(ValueError, match="horizon=-1"):
        MetaSampler("point_corner", 2, horizon=-1)
