"""Tasks of the four families: small frozen records that expose their parameter by name.

* :class:`GoalTask` (``point_corner``): ``goal``, a read-only float64 array of 2, one of the corners (±2, ±2);
* :class:`VelocityTask` (``cheetah_vel``): ``velocity``, the target velocity v* ~ U(0, 2);
* :class:`DirectionTask` (``cheetah_dir``, ``ant_dir``): ``direction``, +1 or -1 with probability ½ each.

Tasks compare equal by value and are hashable.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Union

import numpy as np

CORNERS = np.array([[2.0, 2.0], [2.0, -2.0], [-2.0, 2.0], [-2.0, -2.0]])
VELOCITY_RANGE = (0.0, 2.0)


@dataclasses.dataclass(frozen=True, eq=False)
class GoalTask:
    """Point-corner task: reach ``goal`` (float64 array ``[2]``, read-only)."""

    goal: np.ndarray

    def __post_init__(self):
        goal = np.array(self.goal, dtype=np.float64)
        if goal.shape != (2,) or not np.isfinite(goal).all():
            raise ValueError(f"GoalTask goal={self.goal!r} must be 2 finite numbers")
        goal.flags.writeable = False
        object.__setattr__(self, "goal", goal)

    def __eq__(self, other):
        if not isinstance(other, GoalTask):
            return NotImplemented
        return bool(np.array_equal(self.goal, other.goal))

    def __hash__(self):
        return hash(("GoalTask", self.goal.tobytes()))

    def __repr__(self):
        return f"GoalTask(goal=[{self.goal[0]:g}, {self.goal[1]:g}])"

    def __reduce__(self):  # pickles through __post_init__, so the copy's goal is read-only too
        return (GoalTask, (self.goal.tolist(),))


@dataclasses.dataclass(frozen=True)
class VelocityTask:
    """HalfCheetahVel task: run at ``velocity`` (m/s along x), drawn from U(0, 2)."""

    velocity: float

    def __post_init__(self):
        v = float(self.velocity)
        if not math.isfinite(v):
            raise ValueError(f"VelocityTask velocity={self.velocity!r} must be a finite number")
        object.__setattr__(self, "velocity", v)

    @property
    def parameter(self) -> float:
        """The number the reward reads (the batched backend's per-simulation parameter)."""
        return self.velocity


@dataclasses.dataclass(frozen=True)
class DirectionTask:
    """HalfCheetahDir / AntDir task: run along ``direction`` (+1 forward, -1 backward)."""

    direction: int

    def __post_init__(self):
        if self.direction not in (1, -1):
            raise ValueError(f"DirectionTask direction={self.direction!r} must be +1 or -1")
        object.__setattr__(self, "direction", int(self.direction))

    @property
    def parameter(self) -> int:
        """The number the reward reads (the batched backend's per-simulation parameter)."""
        return self.direction


Task = Union[GoalTask, VelocityTask, DirectionTask]  # noqa: V107 (public: the type of any task)


def make_rng(seed=None, rng: np.random.Generator | None = None) -> np.random.Generator:
    """The generator to sample with: ``rng`` itself, or a new one seeded with ``seed``."""
    if rng is not None and seed is not None:
        raise ValueError("pass either seed or rng, not both")
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng={rng!r} must be a numpy.random.Generator")
    return rng if rng is not None else np.random.default_rng(seed)


def check_count(n) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"number of tasks n={n!r} must be a positive integer")
    return int(n)


def sample_goal_tasks(n: int, rng: np.random.Generator) -> list[GoalTask]:
    """``n`` corners drawn uniformly from the four."""
    return [GoalTask(CORNERS[i]) for i in rng.integers(0, len(CORNERS), size=check_count(n))]


def sample_velocity_tasks(n: int, rng: np.random.Generator) -> list[VelocityTask]:
    """``n`` target velocities from U(0, 2)."""
    return [VelocityTask(float(v)) for v in rng.uniform(*VELOCITY_RANGE, size=check_count(n))]


def sample_direction_tasks(n: int, rng: np.random.Generator) -> list[DirectionTask]:
    """``n`` directions, +1 or -1 with probability ½ each."""
    return [DirectionTask(int(d)) for d in rng.choice(np.array([-1, 1]), size=check_count(n))]
