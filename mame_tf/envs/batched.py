"""Batched simulation: all (tasks × episodes) simulations of one family stepped in one call.

``make_batched_env(name, num_envs)`` returns a :class:`BatchedEnv` whose ``reset``/``step`` take and
return arrays with one row per simulation (``N = num_envs``):

* ``point_corner``: :class:`PointCornerBatched`, plain numpy (the dynamics are one addition);
* ``cheetah_vel``, ``cheetah_dir``, ``ant_dir``: :class:`MujocoBatched`. ``mujoco.batch.Batch``
  advances every simulation by the 5 substeps of one control step in a single C call on ``nthread``
  threads (default: all usable cores); observations, rewards and terminations are computed as
  arrays over all simulations by the same functions the gymnasium envs use (``half_cheetah``,
  ``ant_dir``). For the Ant, ``cfrc_ext`` needs ``mj_rnePostConstraint`` after the step (``mj_step``
  does not compute it): the batch keeps one MjData per simulation (``persistent=True``) and each
  live simulation's data is read back and completed, as gymnasium does after its own ``mj_step``.
  Simulations whose episode has terminated are no longer stepped;
* any other registered gymnasium id: :class:`GymBatchedEnv`, a Python loop over gymnasium envs with
  the same interface, so a user's own task family works with the sampler unchanged.

Given the same initial state and actions, the batched envs reproduce the gymnasium envs'
observations, rewards and terminations (``tests/test_batched_env.py``); MuJoCo's batch is
bit-identical to a loop over single simulations at any thread count.
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
from mame_tf.envs import ant_dir as _ant
from mame_tf.envs import half_cheetah as _cheetah
from mame_tf.envs import mujoco_tasks as _mt
from mame_tf.envs import point_corner as _pc


def usable_cpus() -> int:
    """Number of cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class BatchedEnv(abc.ABC):
    """``num_envs`` simulations of one task family, stepped together.

    Attributes: ``family`` (short name, or the gymnasium id for the fallback), ``obs_dim``,
    ``act_dim``, ``horizon`` (steps per episode, or None if the env has no limit), ``action_low``,
    ``action_high`` (``[act_dim]``) and ``num_envs``.
    """

    family: str
    obs_dim: int
    act_dim: int
    horizon: int | None
    action_low: np.ndarray
    action_high: np.ndarray
    num_envs: int

    @abc.abstractmethod
    def reset(self, tasks: Sequence, rng: np.random.Generator) -> np.ndarray:
        """Start one episode per simulation, simulation ``i`` on ``tasks[i]``
        (``len(tasks) == num_envs``), with the initial-state noise drawn from ``rng``.

        Returns the observations ``[N, obs_dim]`` (float64).
        """

    @abc.abstractmethod
    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
        """Advance every simulation by one control step.

        ``actions [N, act_dim]`` are clipped to the action bounds by the env. Returns
        ``(obs [N, obs_dim], reward [N], terminated [N] bool, info)`` with ``info`` a dict of arrays
        ``[N, ...]``. Once a simulation has terminated it stays terminated until the next
        ``reset``; its later outputs are finite but meaningless (the sampler masks them).
        """

    @abc.abstractmethod
    def get_state(self):
        """A copy of the physical state of every simulation (see the subclass for its form)."""

    @abc.abstractmethod
    def set_state(self, *state) -> np.ndarray:
        """Set the physical state of every simulation; returns the observations ``[N, obs_dim]``."""

    def close(self) -> None:
        """Release the simulations."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # Checks shared by the backends ---------------------------------------------------------------
    def _check_tasks(self, tasks, rng):
        if len(tasks) != self.num_envs:
            raise ValueError(f"reset() got {len(tasks)} tasks for num_envs={self.num_envs} simulations")
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"reset() needs rng to be a numpy.random.Generator, got {rng!r}")

    def _check_actions(self, actions) -> np.ndarray:
        """``actions`` as float64 ``[N, act_dim]``, clipped to the bounds."""
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape != (self.num_envs, self.act_dim):
            raise ValueError(f"actions have shape {actions.shape}, expected {(self.num_envs, self.act_dim)}")
        if not np.isfinite(actions).all():
            bad = np.flatnonzero(~np.isfinite(actions).all(axis=1))
            raise ValueError(f"actions of simulations {bad[:10].tolist()} are not finite")
        return np.clip(actions, self.action_low, self.action_high)


class PointCornerBatched(BatchedEnv):
    """The point-corner family in numpy. State: positions ``[N, 2]``; info: ``position [N, 2]``,
    ``goal_distance [N]``."""

    family = "point_corner"
    obs_dim = 2
    act_dim = 2
    horizon = _pc.HORIZON

    def __init__(self, num_envs: int):
        self.num_envs = num_envs
        self.action_low = np.full(2, -_pc.MAX_ACTION)
        self.action_high = np.full(2, _pc.MAX_ACTION)
        self._pos = np.zeros((num_envs, 2))
        self._goal = np.zeros((num_envs, 2))

    def reset(self, tasks, rng):
        self._check_tasks(tasks, rng)
        for t in tasks:
            if not isinstance(t, _envs.GoalTask):
                raise ValueError(f"point_corner needs GoalTask tasks, got {t!r}")
        self._goal = np.array([t.goal for t in tasks], dtype=np.float64)
        self._pos = rng.uniform(-_pc.START_RANGE, _pc.START_RANGE, size=(self.num_envs, 2))
        return self._pos.copy()

    def get_state(self) -> np.ndarray:
        """Positions ``[N, 2]`` (for ``PointCornerEnv.set_state(pos[i])``)."""
        return self._pos.copy()

    def set_state(self, pos) -> np.ndarray:
        pos = np.array(pos, dtype=np.float64)
        if pos.shape != (self.num_envs, 2):
            raise ValueError(f"positions have shape {pos.shape}, expected {(self.num_envs, 2)}")
        self._pos = pos
        return pos.copy()

    def step(self, actions):
        a = self._check_actions(actions)
        self._pos, reward = _pc.point_step(self._pos, a, self._goal)
        info = {"position": self._pos.copy(), "goal_distance": np.linalg.norm(self._pos - self._goal, axis=-1)}
        return self._pos.copy(), reward, np.zeros(self.num_envs, bool), info


class MujocoBatched(BatchedEnv):
    """HalfCheetahVel/Dir and AntDir on ``mujoco.batch.Batch``.

    State: ``(qpos [N, nq], qvel [N, nv])`` (for ``env.unwrapped.set_state(qpos[i], qvel[i])``);
    info: ``x_velocity [N]``.
    """

    horizon = _mt.HORIZON

    def __init__(self, family: str, num_envs: int, nthread: int | None = None):
        self.family = family
        self.num_envs = num_envs
        self.model = mujoco.MjModel.from_xml_path(_mt.model_path(family))
        self.is_ant = family == "ant_dir"
        self.obs_dim = _ant.OBS_DIM if self.is_ant else _cheetah.OBS_DIM
        self.act_dim = self.model.nu
        self.action_low = self.model.actuator_ctrlrange[:, 0].copy()
        self.action_high = self.model.actuator_ctrlrange[:, 1].copy()
        self.dt = self.model.opt.timestep * _mt.FRAME_SKIP
        self.nthread = int(nthread or usable_cpus())
        # The Ant keeps one MjData per simulation so that get_data() returns the derived fields of
        # its last step for mj_rnePostConstraint; HalfCheetah needs only bound outputs (faster).
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
        if family == "cheetah_vel":
            self._reward_fn, self._task_class = _cheetah.reward_cheetah_vel, _envs.VelocityTask
        elif family == "cheetah_dir":
            self._reward_fn, self._task_class = _cheetah.reward_cheetah_dir, _envs.DirectionTask
        else:
            self._reward_fn, self._task_class = None, _envs.DirectionTask

    def _obs(self) -> np.ndarray:
        com = self._com[:, self._torso]
        if self.is_ant:
            obs = _ant.obs_ant(self._qpos, self._qvel, self._cfrc, self._xmat[:, self._torso], com)
        else:
            obs = _cheetah.obs_cheetah(self._qpos, self._qvel, com)
        return obs

    def reset(self, tasks, rng):
        self._check_tasks(tasks, rng)
        for t in tasks:
            if not isinstance(t, self._task_class):
                raise ValueError(f"{self.family} needs {self._task_class.__name__} tasks, got {t!r}")
        self._param = _mt.task_parameter(self.family, tasks)
        self.batch.reset(stage=mujoco.mjtStage.mjSTAGE_NONE)
        qpos, qvel = _mt.reset_noise(rng, self.model.qpos0, self.model.nv, self.num_envs)
        self._cfrc[:] = 0.0  # mj_resetData zeroes cfrc_ext and mj_forward does not compute it
        return self.set_state(qpos, qvel)

    def get_state(self) -> tuple[np.ndarray, np.ndarray]:
        """``(qpos [N, nq], qvel [N, nv])``, copies: gymnasium's notion of the state (its ``set_state``),
        which reproduces a simulation exactly right after a reset (see :meth:`get_full_state`)."""
        return self._qpos.copy(), self._qvel.copy()

    def get_full_state(self) -> np.ndarray:
        """MuJoCo's whole integration state ``[N, nstate]`` (``mjSTATE_INTEGRATION``: also time,
        controls and the solver warm start), for ``mujoco.mj_setState(model, data, state[i],
        mujoco.mjtState.mjSTATE_INTEGRATION)``: reproduces simulation ``i`` exactly at any step."""
        return self.batch.state.copy()

    def set_state(self, qpos, qvel) -> np.ndarray:
        """Set every simulation's ``qpos [N, nq]`` and ``qvel [N, nv]`` and run ``mj_forward``
        (gymnasium's ``set_state``); clears the terminated flags. Returns the observations."""
        qpos, qvel = np.asarray(qpos, np.float64), np.asarray(qvel, np.float64)
        if qpos.shape != self._qpos.shape or qvel.shape != self._qvel.shape:
            raise ValueError(f"state shapes {qpos.shape}, {qvel.shape}; "
                             f"expected {self._qpos.shape}, {self._qvel.shape}")
        self._qpos[:] = qpos
        self._qvel[:] = qvel
        self.batch.forward()
        self._done[:] = False
        return self._obs()

    def _contact_forces(self, ids: np.ndarray) -> None:
        """``cfrc_ext`` of simulations ``ids`` after their step, as gymnasium's ``mj_rnePostConstraint``."""
        d = self._scratch
        for i in ids.tolist():
            self.batch.get_data(i, d)
            mujoco.mj_rnePostConstraint(self.model, d)
            self._cfrc[i] = d.cfrc_ext

    def step(self, actions):
        a = self._check_actions(actions)
        x_before = self._qpos[:, 0].copy()
        self._ctrl[:] = a
        if self._done.any():  # terminated simulations are not stepped any more
            ids = np.flatnonzero(~self._done)
            if ids.size:
                self.batch.step(ids=ids, nstep=_mt.FRAME_SKIP)
        else:
            ids = np.arange(self.num_envs)
            self.batch.step(nstep=_mt.FRAME_SKIP)
        x_after = self._qpos[:, 0].copy()
        with np.errstate(invalid="ignore", over="ignore"):
            if self.is_ant:
                self._contact_forces(ids)
                terminated = _ant.ant_terminated(self._qpos, self._qvel) | self._done
                self._done = terminated
                reward = _ant.reward_ant_dir(x_before, x_after, a, self.dt, self._param, self._cfrc)
            else:
                terminated = np.zeros(self.num_envs, bool)
                reward = self._reward_fn(x_before, x_after, a, self.dt, self._param)
            obs = self._obs()
            x_velocity = (x_after - x_before) / self.dt
        if not (np.isfinite(obs).all() and np.isfinite(reward).all()):  # only terminated simulations
            obs, reward, x_velocity = (np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
                                       for x in (obs, reward, x_velocity))
        return obs, reward, terminated, {"x_velocity": x_velocity}

    def close(self) -> None:
        self.batch = None


class GymBatchedEnv(BatchedEnv):
    """Fallback: ``num_envs`` gymnasium envs (``gymnasium.make(name)``) stepped in a Python loop.

    Tasks are applied with ``env.unwrapped.set_task(task)`` when the env has that method (a task of
    None is skipped); each env is reset with a seed drawn from ``rng``. A truncated episode counts
    as terminated. Numeric ``info`` entries of at most 16 numbers become ``info`` arrays ``[N, ...]``.
    """

    def __init__(self, name: str, num_envs: int):
        self.family = _envs.env_id(name)
        self.num_envs = num_envs
        self.envs = [gym.make(self.family) for _ in range(num_envs)]
        space, obs_space = self.envs[0].action_space, self.envs[0].observation_space
        if not isinstance(space, gym.spaces.Box) or not isinstance(obs_space, gym.spaces.Box):
            self.close()
            raise ValueError(f"environment {name!r} has spaces {obs_space}, {space}; only Box spaces are supported")
        self.act_dim = int(np.prod(space.shape))
        self.obs_dim = int(np.prod(obs_space.shape))
        self.action_low = np.asarray(space.low, np.float64).reshape(-1)
        self.action_high = np.asarray(space.high, np.float64).reshape(-1)
        spec = self.envs[0].spec
        self.horizon = spec.max_episode_steps if spec is not None and spec.max_episode_steps else None
        self._done = np.zeros(num_envs, bool)
        self._last = np.zeros((num_envs, self.obs_dim))

    def reset(self, tasks, rng):
        self._check_tasks(tasks, rng)
        seeds = rng.integers(0, 2**31 - 1, size=self.num_envs)
        for i, (env, task) in enumerate(zip(self.envs, tasks)):
            if task is not None and hasattr(env.unwrapped, "set_task"):
                env.unwrapped.set_task(task)
            obs, _ = env.reset(seed=int(seeds[i]))
            self._last[i] = np.ravel(obs)
        self._done[:] = False
        return self._last.copy()

    def get_state(self):
        """Per-env states: ``(qpos [N, nq], qvel [N, nv])`` for MuJoCo envs, else the envs' own
        ``get_state()`` stacked. Raises NotImplementedError if the env exposes neither."""
        u = [env.unwrapped for env in self.envs]
        if all(hasattr(e, "data") and hasattr(e.data, "qpos") for e in u):
            return np.stack([e.data.qpos.copy() for e in u]), np.stack([e.data.qvel.copy() for e in u])
        if all(hasattr(e, "get_state") for e in u):
            return np.stack([np.asarray(e.get_state()) for e in u])
        raise NotImplementedError(f"{self.family} exposes no state to get")

    def set_state(self, *state):
        for i, env in enumerate(self.envs):
            env.unwrapped.set_state(*(s[i] for s in state))
            u = env.unwrapped
            self._last[i] = np.ravel(u._get_obs()) if hasattr(u, "_get_obs") else np.ravel(u.get_state())
        self._done[:] = False
        return self._last.copy()

    def step(self, actions):
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape != (self.num_envs, self.act_dim):
            raise ValueError(f"actions have shape {actions.shape}, expected {(self.num_envs, self.act_dim)}")
        reward = np.zeros(self.num_envs)
        terminated = self._done.copy()
        infos: dict[str, np.ndarray] = {}
        for i, env in enumerate(self.envs):
            if self._done[i]:
                continue
            a = actions[i].reshape(env.action_space.shape)
            if not np.issubdtype(env.action_space.dtype, np.floating):
                a = a.astype(env.action_space.dtype)
            obs, r, term, trunc, info = env.step(a)
            self._last[i] = np.ravel(obs)
            reward[i] = r
            terminated[i] = bool(term or trunc)
            for key, value in info.items():
                try:
                    value = np.asarray(value, np.float64)
                except (TypeError, ValueError):
                    continue
                if value.size <= 16:
                    arr = infos.setdefault(key, np.zeros((self.num_envs,) + value.shape))
                    if arr.shape[1:] == value.shape:
                        arr[i] = value
        self._done = terminated
        return self._last.copy(), reward, terminated, infos

    def close(self):
        for env in self.envs:
            env.close()
        self.envs = []


def make_batched_env(family_or_id: str, num_envs: int, nthread: int | None = None) -> BatchedEnv:
    """The fastest batched backend for ``family_or_id`` (short name or gymnasium id).

    Our four families get their own backend (``nthread`` threads for MuJoCo; 0 or None: all usable
    cores); any other registered gymnasium id gets :class:`GymBatchedEnv`. Raises ValueError for
    an unknown name (listing the valid ones) or a bad ``num_envs``/``nthread``.
    """
    if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
        raise ValueError(f"num_envs={num_envs!r} must be a positive integer")
    if nthread is not None and (isinstance(nthread, bool) or not isinstance(nthread, (int, np.integer)) or nthread < 0):
        raise ValueError(f"nthread={nthread!r} must be a positive integer, or 0 or None for all usable cores")
    fam = _envs.family(family_or_id)
    if fam == "point_corner":
        return PointCornerBatched(int(num_envs))
    if fam in ("cheetah_vel", "cheetah_dir", "ant_dir"):
        return MujocoBatched(fam, int(num_envs), nthread)
    _envs.env_id(family_or_id)  # raises with the valid names
    return GymBatchedEnv(family_or_id, int(num_envs))
