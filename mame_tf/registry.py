"""The one list of what the project can run: its algorithms and its task families with their presets.

Nothing here imports TensorFlow or MuJoCo, so launchers, the comparison driver and the plotting code can
read the lists cheaply. Code is named ``module:attr`` (an algorithm class, a gymnasium env class, a
batched backend) and imported only when it is used.

Adding a task family means one :class:`TaskFamily` in :data:`FAMILIES` plus its env code: importing
``mame_tf`` registers its gymnasium id, and the sampler, the presets, the launchers' choices and the
plots read everything else from here.
"""
from __future__ import annotations

import dataclasses
import importlib


def resolve(target: str):
    """The object named ``"module:attr"``, imported now."""
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


# Short name (the launcher's and the results' name) -> "module:Class". The order is the order of every
# table and legend: MAME first, then the baselines as in the paper's Fig. 2.
ALGORITHMS: dict[str, str] = {
    "mame": "mame_tf.mame:MAME",
    "maml_vpg": "baselines.maml_vpg:MAMLVPG",
    "maml_trpo": "baselines.maml_trpo:MAMLTRPO",
    "promp": "baselines.promp:ProMP",
    "emaml": "baselines.emaml:EMAML",
}
ALGO_ORDER: tuple[str, ...] = tuple(ALGORITHMS)


def algorithm_class(name: str):
    """The algorithm class registered as ``name``."""
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; valid names: {', '.join(ALGO_ORDER)}")
    return resolve(ALGORITHMS[name])


@dataclasses.dataclass(frozen=True)
class TaskFamily:
    """One task family: where its code lives and the settings every run on it starts from.

    ``env_class`` is the gymnasium env (``module:Class``, the entry point of ``gym_id``; it carries the
    family's ``task_class`` and ``task_sampler``), ``backend`` the batched backend (``module:Class``,
    built as ``Backend(family, num_envs, nthread)``). ``kind`` is ``"point"`` or ``"mujoco"``; a MuJoCo
    family names gymnasium's ``model`` file, and ``ant`` marks the Ant (contact forces in the
    observation and reward, early termination, threaded stepping). ``horizon`` (steps per episode) and
    ``iterations`` are the presets of every algorithm; ``mame_inner_lr`` is MAME's inner step size α
    (not given by the paper; see ``MAMEConfig.inner_lr``). Horizon 100 on the point task and 200 on
    MuJoCo follow Finn et al.'s MAML (2017), as do the 800 MuJoCo iterations; the point task gets 300
    (the README's "Flags not given take the per-family presets").
    """

    name: str
    gym_id: str
    env_class: str
    backend: str
    kind: str
    horizon: int
    iterations: int
    mame_inner_lr: float
    model: str | None = None
    ant: bool = False

    @property
    def presets(self) -> dict[str, int]:
        """The shared settings this family presets (the flags of ``TrainConfig`` left unset)."""
        return {"horizon": self.horizon, "iterations": self.iterations}


def _point(name: str, gym_id: str, env_class: str) -> TaskFamily:
    return TaskFamily(name, gym_id, env_class, "mame_tf.envs.batched:PointCornerBatched", kind="point", horizon=100,
                      iterations=300, mame_inner_lr=30.0)


def _mujoco(name: str, gym_id: str, env_class: str, model: str, ant: bool = False) -> TaskFamily:
    return TaskFamily(name, gym_id, env_class, "mame_tf.envs.batched:MujocoBatched", kind="mujoco", horizon=200,
                      iterations=800, mame_inner_lr=5.0, model=model, ant=ant)


# Short name -> family, in the order of every table.
FAMILIES: dict[str, TaskFamily] = {f.name: f for f in (
    _point("point_corner", "mame_tf/PointCorner-v0", "mame_tf.envs.point_corner:PointCornerEnv"),
    _point("point_corner_strict", "mame_tf/PointCornerStrict-v0", "mame_tf.envs.point_corner:PointCornerStrictEnv"),
    _mujoco("cheetah_vel", "mame_tf/HalfCheetahVel-v0", "mame_tf.envs.half_cheetah:HalfCheetahVelEnv",
            "half_cheetah.xml"),
    _mujoco("cheetah_dir", "mame_tf/HalfCheetahDir-v0", "mame_tf.envs.half_cheetah:HalfCheetahDirEnv",
            "half_cheetah.xml"),
    _mujoco("ant_dir", "mame_tf/AntDir-v0", "mame_tf.envs.ant_dir:AntDirEnv", "ant.xml", ant=True),
)}
_BY_GYM_ID = {f.gym_id: f for f in FAMILIES.values()}


def find_family(name) -> TaskFamily | None:
    """The family called ``name`` (short name or gymnasium id), or None for anything else."""
    if not isinstance(name, str):
        return None
    return FAMILIES.get(name) or _BY_GYM_ID.get(name)


def task_family(name) -> TaskFamily:
    """The family called ``name`` (short name or gymnasium id); ValueError listing the valid names."""
    family = find_family(name)
    if family is None:
        raise ValueError(f"unknown task family {name!r}; valid names: {', '.join(FAMILIES)}")
    return family
