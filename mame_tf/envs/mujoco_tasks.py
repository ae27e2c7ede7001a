"""Shared pieces of the MuJoCo task families (HalfCheetahVel, HalfCheetahDir, AntDir).

The tasks follow Finn et al.'s definitions on gymnasium's v5 MuJoCo models (HalfCheetah: timestep
0.01, frame skip 5, dt 0.05; Ant: RK4, same dt, ctrlrange ±1, gear 150), except the velocity: it is
the root's x displacement over dt, as in ProMP and pytorch-maml-rl, where Finn et al.'s rllab envs
use the torso subtree's centre-of-mass velocity after the step (the README tabulates every term). The family modules
(``half_cheetah``, ``ant_dir``) define the observation, reward and termination as array functions
of the simulator state, shared by their gymnasium envs and the batched backend
(``mame_tf.envs.batched``), so the two cannot drift apart.

Conventions (gymnasium's, reproduced exactly by the batched backend):

* after ``mj_step`` the derived fields (``subtree_com``, ``xmat``) are those MuJoCo computed in the
  last substep, i.e. at the state before it;
* ``cfrc_ext`` is computed by ``mj_rnePostConstraint`` after each step (``mj_step`` does not);
* reset: ``mj_resetData``, then qpos = qpos0 + U(−0.1, 0.1) and qvel = 0.1·N(0, 1) for both models,
  then ``mj_forward`` (which leaves ``cfrc_ext`` zero);
* the "torso centre of mass" is ``subtree_com`` of the torso (rllab's ``get_body_com``, as in
  Finn et al.'s code), i.e. the centre of mass of the whole robot.
"""
from __future__ import annotations

import os

import gymnasium as gym
import numpy as np
from gymnasium.envs.mujoco.mujoco_env import MujocoEnv

from mame_tf.registry import FAMILIES, task_family

ASSETS = os.path.join(os.path.dirname(gym.__file__), "envs", "mujoco", "assets")
FRAME_SKIP = 5
RESET_NOISE = 0.1


def model_path(family: str) -> str:
    """Path of gymnasium's v5 model file of the MuJoCo family ``family`` (its ``model`` in the registry)."""
    model = task_family(family).model
    if model is None:
        mujoco_families = [f.name for f in FAMILIES.values() if f.model]
        raise ValueError(f"no MuJoCo model for family {family!r}; valid: {', '.join(sorted(mujoco_families))}")
    return os.path.join(ASSETS, model)


def task_parameter(tasks) -> np.ndarray:
    """The per-task parameter of the MuJoCo families as an array ``[N]`` (velocity or direction)."""
    return np.array([t.parameter for t in tasks], dtype=np.float64)


def reset_noise(rng: np.random.Generator, qpos0: np.ndarray, nv: int, n: int | None = None):
    """gymnasium v5's reset state: ``(qpos0 + U(−0.1, 0.1), 0.1·N(0, 1))``, shapes ``[nq], [nv]``
    or, with ``n``, ``[n, nq], [n, nv]`` (all qpos noise is drawn before the qvel noise)."""
    shape = () if n is None else (n,)
    qpos = qpos0 + rng.uniform(-RESET_NOISE, RESET_NOISE, size=shape + qpos0.shape)
    qvel = RESET_NOISE * rng.standard_normal(shape + (nv,))
    return qpos, qvel


class MetaMujocoEnv(MujocoEnv):
    """Base of our MuJoCo task envs: a gymnasium ``MujocoEnv`` with the task interface.

    Subclasses set ``family``, ``obs_dim``, ``task_class``, ``task_sampler`` and implement ``_get_obs`` and
    ``step``. Frame skip 5 and gymnasium v5's reset noise.
    """

    family: str = ""
    obs_dim: int = 0
    task_class: type = object
    metadata = {"render_modes": ["human", "rgb_array", "depth_array", "rgbd_tuple"], "render_fps": 20}

    def __init__(self, task=None, **kwargs):
        space = gym.spaces.Box(-np.inf, np.inf, shape=(self.obs_dim,), dtype=np.float64)
        if kwargs.get("camera_id") is None:
            kwargs.setdefault("camera_name", "track")  # the model's camera that follows the robot
        MujocoEnv.__init__(self, model_path(self.family), FRAME_SKIP, observation_space=space, **kwargs)
        self._torso = self.model.body("torso").id
        self._task = None
        self.set_task(task if task is not None else self.sample_tasks(1, seed=0)[0])

    # Task interface -------------------------------------------------------------------------
    @staticmethod
    def task_sampler(n: int, rng: np.random.Generator) -> list:
        """``n`` tasks of the family drawn with ``rng``."""
        raise NotImplementedError

    def sample_tasks(self, n: int, seed: int | None = None, rng: np.random.Generator | None = None) -> list:
        """``n`` tasks of this family, from ``rng`` or a generator seeded with ``seed``."""
        from mame_tf.envs.tasks import make_rng

        return self.task_sampler(n, make_rng(seed, rng))

    def set_task(self, task) -> None:
        if not isinstance(task, self.task_class):
            raise ValueError(f"{type(self).__name__} expects a {self.task_class.__name__}, got {task!r}")
        self._task = task

    def get_task(self):
        return self._task

    def _param(self) -> np.ndarray:
        return task_parameter([self._task])

    # gymnasium API ----------------------------------------------------------------------------
    def reset_model(self):  # noqa: V105 (the hook gymnasium's MujocoEnv.reset calls)
        qpos, qvel = reset_noise(self.np_random, self.init_qpos, self.model.nv)
        self.set_state(qpos, self.init_qvel + qvel)
        return self._get_obs()

    def _clip(self, action) -> np.ndarray:
        """The action clipped to the bounds, as the reward sees it, ``[1, act_dim]``."""
        a = np.asarray(action, dtype=np.float64).reshape(1, -1)
        return np.clip(a, self.action_space.low, self.action_space.high)

    def _advance(self, action):
        """Step the simulation with the clipped action; returns ``(a [1, act_dim], x_before, x_after)``."""
        a = self._clip(action)
        x_before = float(self.data.qpos[0])
        self.do_simulation(a[0], self.frame_skip)  # mj_step × 5, then mj_rnePostConstraint
        return a, x_before, float(self.data.qpos[0])
