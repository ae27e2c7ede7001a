"""AntDir (the task of Finn et al. 2017) on gymnasium's v5 Ant model.

Observation (125): ``qpos`` (15), ``qvel`` (14), ``clip(cfrc_ext, −1, 1)`` of all 14 bodies (84,
world body included), the torso rotation matrix ``xmat`` (9) and the torso's ``subtree_com`` (3).
With ``v = (x' − x)/dt`` the root x displacement over the step (dt = 0.05; pytorch-maml-rl's
velocity, not Finn et al.'s centre-of-mass velocity), ``a`` the action clipped to [−1, 1]⁸ and ``d = ±1`` the
task's ``direction``, the reward is

    d·v − 0.005·Σa² − 0.0005·Σ clip(cfrc_ext, −1, 1)² + 0.05.

The episode terminates when the torso height ``qpos[2]`` leaves [0.2, 1.0] or the state
(qpos, qvel) is not finite; otherwise it lasts 200 steps. ``cfrc_ext`` is the value
``mj_rnePostConstraint`` computes after the step (zero right after a reset).
"""
from __future__ import annotations

import numpy as np

from mame_tf.envs.mujoco_tasks import MetaMujocoEnv
from mame_tf.envs.tasks import DirectionTask, sample_direction_tasks

OBS_DIM = 125
CTRL_COST = 0.005
CONTACT_COST = 0.0005
SURVIVE_REWARD = 0.05
HEALTHY_Z = (0.2, 1.0)


def obs_ant(qpos, qvel, cfrc_ext, torso_xmat, torso_com) -> np.ndarray:
    """``qpos [N, 15], qvel [N, 14], cfrc_ext [N, 14, 6], torso_xmat [N, 9] (or [N, 3, 3]),
    torso_com [N, 3] -> obs [N, 125]``."""
    n = qpos.shape[0]
    contact = np.clip(cfrc_ext, -1.0, 1.0).reshape(n, -1)
    return np.concatenate([qpos, qvel, contact, torso_xmat.reshape(n, 9), torso_com], axis=1)


def reward_ant_dir(x_before, x_after, action, dt, direction, cfrc_ext) -> np.ndarray:
    """``x_before, x_after [N], action [N, 8] (clipped), direction [N], cfrc_ext [N, 14, 6] -> [N]``."""
    v = (x_after - x_before) / dt
    n = action.shape[0]
    contact = np.sum(np.square(np.clip(cfrc_ext, -1.0, 1.0)).reshape(n, -1), axis=-1)
    ctrl = np.sum(np.square(action), axis=-1)
    return direction * v - CTRL_COST * ctrl - CONTACT_COST * contact + SURVIVE_REWARD


def ant_terminated(qpos, qvel) -> np.ndarray:
    """``qpos [N, 15], qvel [N, 14] -> [N]`` bool: torso z outside [0.2, 1.0] or a non-finite state."""
    finite = np.isfinite(qpos).all(axis=-1) & np.isfinite(qvel).all(axis=-1)
    z = qpos[:, 2]
    with np.errstate(invalid="ignore"):
        healthy = (z >= HEALTHY_Z[0]) & (z <= HEALTHY_Z[1])
    return ~(finite & healthy)


class AntDirEnv(MetaMujocoEnv):  # noqa: V102 (named in mame_tf.registry.FAMILIES)
    """Ant that must walk forward or backward along x (task: :class:`DirectionTask`, ``direction`` = ±1)."""

    family = "ant_dir"
    obs_dim = OBS_DIM
    task_class = DirectionTask
    task_sampler = staticmethod(sample_direction_tasks)

    def _get_obs(self):
        d, b = self.data, self._torso
        return obs_ant(d.qpos[None], d.qvel[None], d.cfrc_ext[None], d.xmat[b][None], d.subtree_com[b][None])[0]

    def step(self, action):
        a, x_before, x_after = self._advance(action)
        d = self.data
        x = np.array([x_before]), np.array([x_after])
        reward = reward_ant_dir(*x, a, self.dt, self._param(), d.cfrc_ext[None])[0]
        terminated = bool(ant_terminated(d.qpos[None], d.qvel[None])[0])
        info = {"x_velocity": (x_after - x_before) / self.dt}
        return self._get_obs(), float(reward), terminated, False, info
