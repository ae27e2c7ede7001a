"""Batched simulation: all (tasks × episodes) simulations of one family stepped in one call.

``make_batched_env(name, num_envs)`` returns a :class:`BatchedEnv` whose ``reset``/``step`` take and
return arrays with one row per simulation:

* ``point_corner``: plain numpy (the dynamics are one addition);
* ``cheetah_vel``, ``cheetah_dir``, ``ant_dir``: ``mujoco.batch.Batch`` steps every simulation with
  ``frame_skip`` substeps in one C call on all cores; observations and rewards are computed as arrays
  with the same functions the gymnasium envs use (``mame_tf.envs.mujoco_tasks``). For the Ant,
  ``cfrc_ext`` needs ``mj_rnePostConstraint`` after the step (``mj_step`` does not compute it): the
  batch is persistent, and each live simulation's data is read back and completed, exactly as
  gymnasium does after its own ``mj_step``;
* any other registered gymnasium id: :class:`GymBatchedEnv`, a Python loop over gymnasium envs with
  the same interface, so a user's own task family works with the sampler unchanged.

Given the same initial state and actions the batched envs reproduce the gymnasium envs' observations,
rewards and terminations (``tests/test_batched_env.py``).
"""
from __future__ import annotations

import abc
import os
from typing import Sequence

import gymnasium as gym
import mujoco
import numpy as np
from mujoco import batch as mj_batch

from mame_tf import envs as _envs
from mame_tf.envs import mujoco_tasks as mt
from mame_tf.envs import point_corner as pc


class BatchedEnv(abc.ABC):
    """``num_envs`` simulations of one task family, stepped together."""

    family: str
    obs_dim: int
    act_dim: int
    horizon: int
    action_low: np.ndarray
    action_high: np.ndarray
    num_envs: int

    @abc.abstractmethod
    def reset(self, tasks: Sequence, rng: np.random.Generator) -> np.ndarray:
        """Start one episode per simulation (``len(tasks) == num_envs``); returns obs ``[N, obs_dim]``."""

    @abc.abstractmethod
    def step(self, actions: np.ndarray):
        """``actions [N, act_dim]`` -> ``(obs [N, obs_dim], reward [N], terminated [N] bool, info)``."""

    def close(self) -> None:
        pass

    def _check_tasks(self, tasks):
        if len(tasks) != self.num_envs:
            raise ValueError(f"reset() got {len(tasks)} tasks for {self.num_envs} simulations")

    def _check_actions(self, actions):
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape != (self.num_envs, self.act_dim):
            raise ValueError(f"actions have shape {actions.shape}, expected {(self.num_envs, self.act_dim)}")
        return np.clip(actions, self.action_low, self.action_high)


class PointCornerBatched(BatchedEnv):
    family = "point_corner"
    obs_dim = 2
    act_dim = 2
    horizon = pc.HORIZON

    def __init__(self, num_envs: int):
        self.num_envs = num_envs
        self.action_low = np.full(2, -pc.MAX_ACTION)
        self.action_high = np.full(2, pc.MAX_ACTION)
        self._pos = np.zeros((num_envs, 2))
        self._goal = np.zeros((num_envs, 2))

    def reset(self, tasks, rng):
        self._check_tasks(tasks)
        self._goal = np.array([t.goal for t in tasks], dtype=np.float64)
        self._pos = rng.uniform(-pc.START_RANGE, pc.START_RANGE, size=(self.num_envs, 2))
        return self._pos.copy()

    def set_state(self, pos):
        self._pos = np.array(pos, dtype=np.float64)

    def get_state(self):
        return self._pos.copy()

    def step(self, actions):
        a = self._check_actions(actions)
        self._pos, reward = pc.point_step(self._pos, a, self._goal)
        info = {"position": self._pos.copy(), "goal_distance": np.linalg.norm(self._pos - self._goal, axis=-1)}
        return self._pos.copy(), reward, np.zeros(self.num_envs, bool), info


class MujocoBatched(BatchedEnv):
    """HalfCheetahVel/Dir and AntDir on ``mujoco.batch.Batch``."""

    horizon = mt.HORIZON

    def __init__(self, family: str, num_envs: int, nthread: int | None = None):
        self.family = family
        self.num_envs = num_envs
        self.model = mujoco.MjModel.from_xml_path(mt.model_path(family))
        self.is_ant = family == "ant_dir"
        self.obs_dim = 125 if self.is_ant else 20
        self.act_dim = self.model.nu
        self.action_low = self.model.actuator_ctrlrange[:, 0].copy()
        self.action_high = self.model.actuator_ctrlrange[:, 1].copy()
        self.dt = self.model.opt.timestep * mt.FRAME_SKIP
        self.nthread = int(nthread or os.cpu_count() or 1)
        self.batch = mj_batch.Batch(self.model, num_envs, nthread=self.nthread, persistent=self.is_ant)
        self._qpos = self.batch.bind("qpos")
        self._qvel = self.batch.bind("qvel")
        self._ctrl = self.batch.bind("ctrl")
        self._com = self.batch.bind("subtree_com")
        self._xmat = self.batch.bind("xmat") if self.is_ant else None
        self._torso = self.model.body("torso").id
        self._scratch = mujoco.MjData(self.model) if self.is_ant else None
        self._cfrc = np.zeros((num_envs, self.model.nbody, 6))
        self._done = np.zeros(num_envs, bool)
        self._param = np.zeros(num_envs)

    def _obs(self):
        com = self._com[:, self._torso]
        if self.is_ant:
            xmat = self._xmat[:, self._torso]
            obs = mt.obs_ant(self._qpos, self._qvel, self._cfrc, xmat, com)
        else:
            obs = mt.obs_cheetah(self._qpos, self._qvel, com)
        return obs

    def reset(self, tasks, rng):
        self._check_tasks(tasks)
        self._param = mt.task_parameter(self.family, tasks)
        m = self.model
        self.batch.reset(stage=mujoco.mjtStage.mjSTAGE_NONE)
        qpos = m.qpos0 + rng.uniform(-mt.RESET_NOISE, mt.RESET_NOISE, size=(self.num_envs, m.nq))
        qvel = mt.RESET_NOISE * rng.standard_normal((self.num_envs, m.nv))
        self.set_state(qpos, qvel)
        return self._obs()

    def set_state(self, qpos, qvel):
        """Set every simulation's ``qpos [N, nq]`` and ``qvel [N, nv]`` and recompute derived fields."""
        self._qpos[:] = qpos
        self._qvel[:] = qvel
        self.batch.forward()
        self._cfrc[:] = 0.0  # gymnasium's reset zeroes the data and mj_forward does not compute cfrc_ext
        self._done[:] = False

    def get_state(self):
        return self._qpos.copy(), self._qvel.copy()

    def _contact_forces(self):
        """``cfrc_ext`` after the step, as gymnasium's ``mj_rnePostConstraint`` gives it."""
        d = self._scratch
        for i in np.flatnonzero(~self._done):
            self.batch.get_data(int(i), d)
            mujoco.mj_rnePostConstraint(self.model, d)
            self._cfrc[i] = d.cfrc_ext
        self._cfrc[self._done] = 0.0

    def step(self, actions):
        a = self._check_actions(actions)
        x_before = self._qpos[:, 0].copy()
        self._ctrl[:] = a
        self.batch.step(nstep=mt.FRAME_SKIP)
        x_after = self._qpos[:, 0].copy()
        terminated = np.zeros(self.num_envs, bool)
        if self.is_ant:
            terminated = mt.ant_terminated(self._qpos, self._qvel) | self._done
            self._done = terminated
            self._contact_forces()
        with np.errstate(invalid="ignore", over="ignore"):
            reward = mt.step_reward(self.family, x_before, x_after, a, self.dt, self._param, self._cfrc)
            obs = self._obs()
        obs = np.nan_to_num(obs, nan=0.0, posinf=0.0, neginf=0.0)
        reward = np.nan_to_num(reward, nan=0.0, posinf=0.0, neginf=0.0)
        return obs, reward, terminated, {}


class GymBatchedEnv(BatchedEnv):
    """Fallback: ``num_envs`` gymnasium envs stepped in a Python loop, with the same interface."""

    def __init__(self, name: str, num_envs: int):
        self.family = name
        self.num_envs = num_envs
        self.envs = [gym.make(_envs.env_id(name)) for _ in range(num_envs)]
        space = self.envs[0].action_space
        if not isinstance(space, gym.spaces.Box):
            raise ValueError(f"environment {name!r} has action space {space}; only Box actions are supported")
        self.act_dim = int(np.prod(space.shape))
        self.obs_dim = int(np.prod(self.envs[0].observation_space.shape))
        self.action_low = np.asarray(space.low, np.float64)
        self.action_high = np.asarray(space.high, np.float64)
        spec = self.envs[0].spec
        self.horizon = spec.max_episode_steps if spec is not None and spec.max_episode_steps else None
        self._done = np.zeros(num_envs, bool)
        self._last = np.zeros((num_envs, self.obs_dim))

    def reset(self, tasks, rng):
        self._check_tasks(tasks)
        seeds = rng.integers(0, 2**31 - 1, size=self.num_envs)
        for i, (env, task) in enumerate(zip(self.envs, tasks)):
            if task is not None and hasattr(env.unwrapped, "set_task"):
                env.unwrapped.set_task(task)
            obs, _ = env.reset(seed=int(seeds[i]))
            self._last[i] = np.ravel(obs)
        self._done[:] = False
        return self._last.copy()

    def step(self, actions):
        actions = np.asarray(actions, dtype=np.float64)
        reward = np.zeros(self.num_envs)
        terminated = self._done.copy()
        infos: dict[str, list] = {}
        for i, env in enumerate(self.envs):
            if self._done[i]:
                continue
            obs, r, term, trunc, info = env.step(actions[i].astype(env.action_space.dtype))
            self._last[i] = np.ravel(obs)
            reward[i] = r
            terminated[i] = term
            for key, value in info.items():
                value = np.asarray(value, np.float64)
                if value.dtype.kind == "f" and value.size <= 16:
                    infos.setdefault(key, np.zeros((self.num_envs,) + value.shape))[i] = value
        self._done = terminated
        return self._last.copy(), reward, terminated, infos

    def close(self):
        for env in self.envs:
            env.close()


def make_batched_env(name: str, num_envs: int, nthread: int | None = None) -> BatchedEnv:
    """The fastest batched backend for ``name`` (short name or gymnasium id)."""
    if int(num_envs) != num_envs or num_envs < 1:
        raise ValueError(f"num_envs={num_envs!r} must be a positive integer")
    fam = _envs.family(name)
    if fam == "point_corner":
        return PointCornerBatched(int(num_envs))
    if fam in ("cheetah_vel", "cheetah_dir", "ant_dir"):
        return MujocoBatched(fam, int(num_envs), nthread)
    _envs.env_id(name)  # raises with the valid names
    return GymBatchedEnv(name, int(num_envs))
