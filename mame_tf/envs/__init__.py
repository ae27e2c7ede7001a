"""The four task families (and a point-corner variant) as registered gymnasium environments, and
their batched twins.

==================  ==============================  =============  =======  =======  =======
short name          gymnasium id                    task param     horizon  obs dim  act dim
==================  ==============================  =============  =======  =======  =======
``point_corner``    ``mame_tf/PointCorner-v0``      ``goal``       100      2        2
``point_corner_strict`` ``mame_tf/PointCornerStrict-v0`` ``goal``   100      2        2
``cheetah_vel``     ``mame_tf/HalfCheetahVel-v0``   ``velocity``   200      20       6
``cheetah_dir``     ``mame_tf/HalfCheetahDir-v0``   ``direction``  200      20       6
``ant_dir``         ``mame_tf/AntDir-v0``           ``direction``  200      125      8
==================  ==============================  =============  =======  =======  =======

``point_corner_strict`` is the point task with a reward that cannot be farmed (ours; see
``mame_tf.envs.point_corner``). Importing this package registers the ids and installs a MuJoCo warning callback that sends MuJoCo's
warnings to Python ``logging`` instead of ``MUJOCO_LOG.TXT`` in the working directory
(``mame_tf._mujoco_log``). Modules: ``tasks`` (task records), ``point_corner``, ``half_cheetah``,
``ant_dir`` (gymnasium envs and their array-level observation/reward functions; every env renders
with ``render_mode="rgb_array"``, the MuJoCo ones offscreen, see ``mame_tf.rendering``), ``mujoco_tasks``
(shared MuJoCo pieces) and ``batched`` (``make_batched_env``: all simulations stepped in one call).
The families themselves (id, horizon, presets, env class, batched backend) are declared once, in
``mame_tf.registry.FAMILIES``; this table only describes them.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np

from mame_tf import _mujoco_log
from mame_tf.registry import FAMILIES, find_family, resolve
from mame_tf.rendering import configure_offscreen_gl
from mame_tf.envs.tasks import DirectionTask, GoalTask, Task, VelocityTask  # noqa: F401

_mujoco_log.install()  # before any model is loaded
configure_offscreen_gl()  # MUJOCO_GL=egl (or osmesa) on a machine without a screen, unless set

for _family in FAMILIES.values():
    if _family.gym_id not in gym.registry:
        gym.register(id=_family.gym_id, entry_point=_family.env_class, max_episode_steps=_family.horizon)


def env_id(name: str) -> str:
    """The gymnasium id of a short name or id; other registered gymnasium ids pass through.

    Raises ValueError listing the valid names for anything else.
    """
    fam = find_family(name)
    if fam is not None:
        return fam.gym_id
    if isinstance(name, str) and name in gym.registry:
        return name
    raise ValueError(
        f"unknown environment {name!r}; valid names: {', '.join(sorted(FAMILIES))} "
        f"(or any registered gymnasium id, e.g. {', '.join(f.gym_id for f in FAMILIES.values())})"
    )


def sample_tasks(name: str, n: int, rng: np.random.Generator | int | None = None) -> list:
    """``n`` tasks of the family ``name`` (short name or gymnasium id) drawn with ``rng``.

    ``rng`` is a ``numpy.random.Generator`` (advanced in place) or a seed. For another registered
    gymnasium id, the env's ``unwrapped.sample_tasks(n, rng=...)`` is used.
    """
    from mame_tf.envs import tasks

    n = tasks.check_count(n)
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    fam = find_family(name)
    if fam is not None:
        return resolve(fam.env_class).task_sampler(n, rng)
    env = gym.make(env_id(name))
    try:
        unwrapped = env.unwrapped
        if not hasattr(unwrapped, "sample_tasks"):
            raise ValueError(f"environment {name!r} has no sample_tasks(n, rng=...) method; it cannot be meta-learned")
        return list(unwrapped.sample_tasks(n, rng=rng))
    finally:
        env.close()


def make(name: str, **kwargs) -> gym.Env:
    """``gymnasium.make`` for a short name or id."""
    return gym.make(env_id(name), **kwargs)
