"""HalfCheetahVel, HalfCheetahDir and AntDir: Finn et al.'s task and reward definitions on gymnasium's v5 models.

The observation and reward are pure array functions of the simulator state (``obs_*`` and
``reward_*`` below), shared by the gymnasium envs of this module and the batched backend in
``mame_tf.envs.batched``, so the two cannot drift apart.

HalfCheetah (timestep 0.01, frame skip 5, dt 0.05): observation ``qpos[1:]`` (8), ``qvel`` (9) and the
torso's centre of mass (``subtree_com`` of the torso, 3) = 20. Reward with ``v = (x' − x)/dt`` of the
root x position and ``a`` the action clipped to the bounds:

* HalfCheetahVel: ``−|v − v*| − 0.05 Σa²``, v* ~ U(0, 2);
* HalfCheetahDir: ``d·v − 0.05 Σa²``, d = ±1.

AntDir (gymnasium v5 ant: ctrlrange ±1, gear 150, RK4, dt 0.05): observation ``qpos`` (15),
``qvel`` (14), ``clip(cfrc_ext, −1, 1)`` of all 14 bodies (84), the torso rotation matrix (9) and the
torso's centre of mass (3) = 125; reward ``d·v − 0.005 Σa² − 0.0005 Σ clip(cfrc_ext, −1, 1)² + 0.05``;
the episode terminates when the torso height leaves [0.2, 1.0] or the state is not finite.

Derived quantities follow gymnasium's conventions exactly: after ``mj_step`` the derived fields
(``subtree_com``, ``xmat``) are those MuJoCo left from the last substep, and ``cfrc_ext`` comes from
``mj_rnePostConstraint`` called after the step. Reset noise is gymnasium v5's: qpos + U(−0.1, 0.1),
qvel + 0.1·N(0, 1) for both models.
"""
from __future__ import annotations

import os

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium.envs.mujoco.mujoco_env import MujocoEnv

from mame_tf.envs.tasks import (
    DirectionTask,
    VelocityTask,
    check_count,
    make_rng,
    sample_direction_tasks,
    sample_velocity_tasks,
)

ASSETS = os.path.join(os.path.dirname(gym.__file__), "envs", "mujoco", "assets")
FRAME_SKIP = 5
HORIZON = 200
RESET_NOISE = 0.1
CHEETAH_CTRL_COST = 0.05
ANT_CTRL_COST = 0.005
ANT_CONTACT_COST = 0.0005
ANT_SURVIVE = 0.05
ANT_HEALTHY_Z = (0.2, 1.0)


def model_path(family: str) -> str:
    return os.path.join(ASSETS, "ant.xml" if family == "ant_dir" else "half_cheetah.xml")


# Observations ---------------------------------------------------------------------------------
def obs_cheetah(qpos, qvel, torso_com):
    """``qpos [N, 9], qvel [N, 9], torso_com [N, 3] -> [N, 20]``."""
    return np.concatenate([qpos[:, 1:], qvel, torso_com], axis=1)


def obs_ant(qpos, qvel, cfrc_ext, torso_xmat, torso_com):
    """``qpos [N, 15], qvel [N, 14], cfrc_ext [N, 14, 6], xmat [N, 9], com [N, 3] -> [N, 125]``."""
    n = qpos.shape[0]
    contact = np.clip(cfrc_ext, -1.0, 1.0).reshape(n, -1)
    return np.concatenate([qpos, qvel, contact, torso_xmat.reshape(n, 9), torso_com], axis=1)


# Rewards --------------------------------------------------------------------------------------
def reward_cheetah_vel(x_before, x_after, action, dt, velocity):
    v = (x_after - x_before) / dt
    return -np.abs(v - velocity) - CHEETAH_CTRL_COST * np.sum(np.square(action), axis=-1)


def reward_cheetah_dir(x_before, x_after, action, dt, direction):
    v = (x_after - x_before) / dt
    return direction * v - CHEETAH_CTRL_COST * np.sum(np.square(action), axis=-1)


def reward_ant_dir(x_before, x_after, action, dt, direction, cfrc_ext):
    v = (x_after - x_before) / dt
    n = action.shape[0]
    contact = np.sum(np.square(np.clip(cfrc_ext, -1.0, 1.0)).reshape(n, -1), axis=-1)
    return direction * v - ANT_CTRL_COST * np.sum(np.square(action), axis=-1) - ANT_CONTACT_COST * contact + ANT_SURVIVE


def ant_terminated(qpos, qvel):
    """``[N]`` bool: torso z outside the healthy range or a non-finite state."""
    finite = np.isfinite(qpos).all(axis=-1) & np.isfinite(qvel).all(axis=-1)
    z = qpos[:, 2]
    with np.errstate(invalid="ignore"):
        healthy = (z >= ANT_HEALTHY_Z[0]) & (z <= ANT_HEALTHY_Z[1])
    return ~(finite & healthy)


def task_parameter(family: str, tasks) -> np.ndarray:
    """The per-task parameter as an array ``[N]`` (velocity or direction)."""
    if family == "cheetah_vel":
        return np.array([t.velocity for t in tasks], dtype=np.float64)
    return np.array([t.direction for t in tasks], dtype=np.float64)


def step_reward(family, x_before, x_after, action, dt, param, cfrc_ext=None):
    if family == "cheetah_vel":
        return reward_cheetah_vel(x_before, x_after, action, dt, param)
    if family == "cheetah_dir":
        return reward_cheetah_dir(x_before, x_after, action, dt, param)
    return reward_ant_dir(x_before, x_after, action, dt, param, cfrc_ext)


# gymnasium envs -------------------------------------------------------------------------------
class _MetaMujocoEnv(MujocoEnv):
    family: str = ""
    obs_dim: int = 0

    def __init__(self, task=None, **kwargs):
        space = gym.spaces.Box(-np.inf, np.inf, shape=(self.obs_dim,), dtype=np.float64)
        MujocoEnv.__init__(
            self, model_path(self.family), FRAME_SKIP, observation_space=space, **kwargs
        )
        self.metadata = {
            "render_modes": ["human", "rgb_array", "depth_array", "rgbd_tuple"],
            "render_fps": int(np.round(1.0 / self.dt)),
        }
        self._torso = self.model.body("torso").id
        self._task = task if task is not None else self.sample_tasks(1, seed=0)[0]

    def get_task(self):
        return self._task

    def _param(self):
        return task_parameter(self.family, [self._task])

    def reset_model(self):
        qpos = self.init_qpos + self.np_random.uniform(-RESET_NOISE, RESET_NOISE, size=self.model.nq)
        qvel = self.init_qvel + RESET_NOISE * self.np_random.standard_normal(self.model.nv)
        self.set_state(qpos, qvel)
        return self._get_obs()

    def _clip(self, action):
        low, high = self.action_space.low, self.action_space.high
        return np.clip(np.asarray(action, dtype=np.float64), low, high)


class HalfCheetahTaskEnv(_MetaMujocoEnv):
    obs_dim = 20

    def _get_obs(self):
        d = self.data
        return obs_cheetah(d.qpos[None], d.qvel[None], d.subtree_com[self._torso][None])[0]

    def step(self, action):
        a = self._clip(action)
        x_before = self.data.qpos[0]
        self.do_simulation(a, self.frame_skip)
        x_after = self.data.qpos[0]
        reward = step_reward(self.family, x_before, x_after, a[None], self.dt, self._param())[0]
        return self._get_obs(), float(reward), False, False, {"x_velocity": (x_after - x_before) / self.dt}


class HalfCheetahVelEnv(HalfCheetahTaskEnv):
    """HalfCheetah that must run at a target velocity v* ~ U(0, 2) (task: ``velocity``)."""

    family = "cheetah_vel"

    def sample_tasks(self, n, seed=None, rng=None):
        return sample_velocity_tasks(check_count(n), make_rng(seed, rng))

    def set_task(self, task):
        if not isinstance(task, VelocityTask):
            raise ValueError(f"HalfCheetahVel expects a VelocityTask, got {task!r}")
        self._task = task


class HalfCheetahDirEnv(HalfCheetahTaskEnv):
    """HalfCheetah that must run forward (+1) or backward (−1) (task: ``direction``)."""

    family = "cheetah_dir"

    def sample_tasks(self, n, seed=None, rng=None):
        return sample_direction_tasks(check_count(n), make_rng(seed, rng))

    def set_task(self, task):
        if not isinstance(task, DirectionTask):
            raise ValueError(f"HalfCheetahDir expects a DirectionTask, got {task!r}")
        self._task = task


class AntDirEnv(_MetaMujocoEnv):
    """Ant that must walk forward (+1) or backward (−1) along x (task: ``direction``)."""

    family = "ant_dir"
    obs_dim = 125

    def sample_tasks(self, n, seed=None, rng=None):
        return sample_direction_tasks(check_count(n), make_rng(seed, rng))

    def set_task(self, task):
        if not isinstance(task, DirectionTask):
            raise ValueError(f"AntDir expects a DirectionTask, got {task!r}")
        self._task = task

    def _get_obs(self):
        d, b = self.data, self._torso
        return obs_ant(d.qpos[None], d.qvel[None], d.cfrc_ext[None], d.xmat[b][None], d.subtree_com[b][None])[0]

    def step(self, action):
        a = self._clip(action)
        x_before = self.data.qpos[0]
        self.do_simulation(a, self.frame_skip)
        x_after = self.data.qpos[0]
        reward = step_reward(self.family, x_before, x_after, a[None], self.dt, self._param(), self.data.cfrc_ext[None])[0]
        terminated = bool(ant_terminated(self.data.qpos[None], self.data.qvel[None])[0])
        return self._get_obs(), float(reward), terminated, False, {"x_velocity": (x_after - x_before) / self.dt}
