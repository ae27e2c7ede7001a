"""HalfCheetahVel and HalfCheetahDir (tasks of Finn et al. 2017) on gymnasium's v5 HalfCheetah model.

Observation (20): ``qpos[1:]`` (8), ``qvel`` (9), the torso's ``subtree_com`` (3). With
``v = (x' − x)/dt`` the root x velocity over the step (dt = 0.05; ProMP's and pytorch-maml-rl's
velocity, not the centre-of-mass velocity of Finn et al.'s rllab env) and ``a`` the action clipped to
[−1, 1]⁶, the reward is

* HalfCheetahVel (task ``velocity`` v* ~ U(0, 2)): ``−|v − v*| − 0.05·Σa²``;
* HalfCheetahDir (task ``direction`` d = ±1):      ``d·v − 0.05·Σa²``.

Episodes last 200 steps and never terminate early.
"""
from __future__ import annotations

import numpy as np

from mame_tf.envs.mujoco_tasks import MetaMujocoEnv
from mame_tf.envs.tasks import DirectionTask, VelocityTask, sample_direction_tasks, sample_velocity_tasks

OBS_DIM = 20
CTRL_COST = 0.05


def obs_cheetah(qpos: np.ndarray, qvel: np.ndarray, torso_com: np.ndarray) -> np.ndarray:
    """``qpos [N, 9], qvel [N, 9], torso_com [N, 3] -> obs [N, 20]``."""
    return np.concatenate([qpos[:, 1:], qvel, torso_com], axis=1)


def reward_cheetah_vel(x_before, x_after, action, dt, velocity) -> np.ndarray:
    """``x_before, x_after [N], action [N, 6] (clipped), velocity [N] -> reward [N]``."""
    v = (x_after - x_before) / dt
    return -np.abs(v - velocity) - CTRL_COST * np.sum(np.square(action), axis=-1)


def reward_cheetah_dir(x_before, x_after, action, dt, direction) -> np.ndarray:
    """``x_before, x_after [N], action [N, 6] (clipped), direction [N] -> reward [N]``."""
    v = (x_after - x_before) / dt
    return direction * v - CTRL_COST * np.sum(np.square(action), axis=-1)


class _HalfCheetahTaskEnv(MetaMujocoEnv):
    obs_dim = OBS_DIM
    reward_fn = staticmethod(reward_cheetah_dir)  # the array reward, shared with the batched backend

    def _get_obs(self):
        d = self.data
        return obs_cheetah(d.qpos[None], d.qvel[None], d.subtree_com[self._torso][None])[0]

    def step(self, action):
        a, x_before, x_after = self._advance(action)
        reward = self.reward_fn(np.array([x_before]), np.array([x_after]), a, self.dt, self._param())[0]
        info = {"x_velocity": (x_after - x_before) / self.dt}
        return self._get_obs(), float(reward), False, False, info


class HalfCheetahVelEnv(_HalfCheetahTaskEnv):  # noqa: V102 (named in mame_tf.registry.FAMILIES)
    """HalfCheetah that must run at a target velocity (task: :class:`VelocityTask`, ``velocity`` ~ U(0, 2))."""

    family = "cheetah_vel"
    task_class = VelocityTask
    task_sampler = staticmethod(sample_velocity_tasks)
    reward_fn = staticmethod(reward_cheetah_vel)


class HalfCheetahDirEnv(_HalfCheetahTaskEnv):  # noqa: V102 (named in mame_tf.registry.FAMILIES)
    """HalfCheetah that must run forward or backward (task: :class:`DirectionTask`, ``direction`` = ±1)."""

    family = "cheetah_dir"
    task_class = DirectionTask
    task_sampler = staticmethod(sample_direction_tasks)
    reward_fn = staticmethod(reward_cheetah_dir)
