"""The meta-sampler: rolls out a policy on (tasks × episodes) at once and returns one `Batch`.

For a list of ``T`` tasks and ``E`` episodes per task, all ``T·E`` simulations run together in one
batched environment (``mame_tf.envs.batched``) for ``H`` steps. At every step the policy is called
once on ``obs [T, E, obs_dim]`` (so per-task parameters need no loop over tasks), the sampler draws
``a = mean + exp(log_std)·ε`` with its own seeded generator and records the log-density of ``a``
under the sampling distribution. Steps after an episode terminates are masked out and filled with
zeros. The sampler's generator state is part of a checkpoint, so a resumed run draws the same
episodes as an uninterrupted one.

During a rollout numpy's BLAS is limited to one thread: the policy's matrix products are small, and
an idle OpenBLAS pool keeps spinning on the cores the physics threads need (which cost about 40 % of
the throughput on 2 cores when it was left on).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from threadpoolctl import ThreadpoolController

from mame_tf import envs as _envs
from mame_tf.batch import Batch, SamplingPolicy
from mame_tf.envs.batched import BatchedEnv, make_batched_env


_THREADPOOLS: ThreadpoolController | None = None


def _single_thread_blas():
    """A context in which numpy's BLAS runs on the calling thread only."""
    global _THREADPOOLS
    if _THREADPOOLS is None:
        _THREADPOOLS = ThreadpoolController()
    return _THREADPOOLS.limit(limits=1, user_api="blas")


class MetaSampler:
    """Samples ``episodes_per_task`` episodes of ``horizon`` steps for every task of a batch."""

    def __init__(
        self,
        env: str,
        episodes_per_task: int,
        horizon: int | None = None,
        seed: int = 0,
        nthread: int | None = None,
    ):
        self.env_name = env
        _envs.env_id(env)  # ValueError with the valid names
        if int(episodes_per_task) != episodes_per_task or episodes_per_task < 1:
            raise ValueError(f"episodes_per_task={episodes_per_task!r} must be a positive integer")
        self.episodes_per_task = int(episodes_per_task)
        self.nthread = nthread
        self._rng = np.random.default_rng(seed)
        self._task_rng = np.random.default_rng([seed, 1])
        self._env: BatchedEnv = make_batched_env(env, 1, nthread)
        default_h = self._env.horizon
        if horizon is None:
            if default_h is None:
                raise ValueError(f"environment {env!r} has no max_episode_steps; pass horizon explicitly")
            horizon = default_h
        if int(horizon) != horizon or horizon < 1:
            raise ValueError(f"horizon={horizon!r} must be a positive integer")
        self.horizon = int(horizon)
        self.obs_dim = self._env.obs_dim
        self.act_dim = self._env.act_dim
        self.action_low = self._env.action_low
        self.action_high = self._env.action_high

    # Tasks and RNG state --------------------------------------------------------------------------
    def sample_tasks(self, n: int) -> list:
        """``n`` tasks from the sampler's own task generator."""
        return _envs.sample_tasks(self.env_name, n, self._task_rng)

    def get_state(self) -> dict:
        """All random state, JSON-serialisable."""
        return {"rng": self._rng.bit_generator.state, "task_rng": self._task_rng.bit_generator.state}

    def set_state(self, state: dict) -> None:
        self._rng.bit_generator.state = state["rng"]
        self._task_rng.bit_generator.state = state["task_rng"]

    # Sampling ---------------------------------------------------------------------------------------
    def _env_for(self, n: int) -> BatchedEnv:
        if self._env.num_envs != n:
            self._env.close()
            self._env = make_batched_env(self.env_name, n, self.nthread)
        return self._env

    def sample(self, tasks: Sequence, policy: SamplingPolicy) -> Batch:
        """Roll out ``policy`` for ``E`` episodes on each task; arrays ``[T, E, H, ...]``."""
        with _single_thread_blas():
            return self._sample(tasks, policy)

    def _sample(self, tasks: Sequence, policy: SamplingPolicy) -> Batch:
        T, E, H = len(tasks), self.episodes_per_task, self.horizon
        if T < 1:
            raise ValueError("sample() needs at least one task")
        N = T * E
        env = self._env_for(N)
        A, D = self.act_dim, self.obs_dim
        obs_buf = np.zeros((H, N, D), np.float32)
        act_buf = np.zeros((H, N, A), np.float32)
        mean_buf = np.zeros((H, N, A), np.float32)
        logstd_buf = np.zeros((H, N, A), np.float32)
        rew_buf = np.zeros((H, N), np.float32)
        mask_buf = np.zeros((H, N), np.float32)
        logp_buf = np.zeros((H, N), np.float32)
        infos: dict[str, np.ndarray] = {}

        env_tasks = [task for task in tasks for _ in range(E)]
        obs = env.reset(env_tasks, self._rng)
        alive = np.ones(N, bool)
        log_norm = 0.5 * A * math.log(2.0 * math.pi)
        for t in range(H):
            obs_buf[t] = obs
            mean, log_std = policy(obs_buf[t].reshape(T, E, D))
            mean = np.asarray(mean, np.float64).reshape(N, A)
            log_std = np.broadcast_to(np.asarray(log_std, np.float64).reshape(-1, A), (N, A))
            eps = self._rng.standard_normal((N, A))
            with np.errstate(over="ignore", invalid="ignore"):  # env.step names non-finite actions
                action = mean + np.exp(log_std) * eps
                act_buf[t] = action
            mean_buf[t] = mean
            logstd_buf[t] = log_std
            logp_buf[t] = -0.5 * np.sum(eps * eps, axis=1) - np.sum(log_std, axis=1) - log_norm
            mask_buf[t] = alive
            obs, reward, terminated, info = env.step(action)
            rew_buf[t] = np.where(alive, reward, 0.0)
            for key, value in info.items():
                if key not in infos:
                    infos[key] = np.zeros((H,) + value.shape, np.float32)
                infos[key][t] = value
            alive &= ~terminated
            if not alive.any():
                break
        return _batch_of_steps(tasks, E, obs_buf, act_buf, rew_buf, mask_buf, logp_buf, mean_buf, logstd_buf, infos)

    def close(self) -> None:
        self._env.close()


def _batch_of_steps(tasks: Sequence, E: int, obs, actions, rewards, mask, logp, mean, log_std,
                    infos: dict[str, np.ndarray]) -> Batch:
    """The step-major buffers ``[H, N, ...]`` (``N = T·E``, simulation ``t·E + e``) as a :class:`Batch`
    ``[T, E, H, ...]``; the observations, actions, log-probabilities and means of the steps after
    termination are zeroed first, in place."""
    for buf in (obs, actions, logp, mean):
        np.multiply(buf, mask.reshape(mask.shape + (1,) * (buf.ndim - 2)), out=buf)
    H, T = mask.shape[0], len(tasks)

    def to_tev(x):  # [H, N, ...] -> [T, E, H, ...]
        x = x.reshape((H, T, E) + x.shape[2:])
        return np.ascontiguousarray(np.moveaxis(x, 0, 2))

    return Batch(
        obs=to_tev(obs),
        actions=to_tev(actions),
        rewards=to_tev(rewards),
        mask=to_tev(mask),
        logp=to_tev(logp),
        mean=to_tev(mean),
        log_std=to_tev(log_std),
        tasks=list(tasks),
        infos={k: to_tev(v) for k, v in infos.items()},
    )
