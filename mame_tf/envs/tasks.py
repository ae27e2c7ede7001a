"""Tasks of the four families: small frozen records that expose their parameter by name."""
from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class GoalTask:
    """Point-corner task: reach ``goal`` (one of the four corners (±2, ±2))."""

    goal: tuple[float, float]


@dataclasses.dataclass(frozen=True)
class VelocityTask:
    """HalfCheetahVel task: run at ``velocity`` (m/s along x), drawn from U(0, 2)."""

    velocity: float


@dataclasses.dataclass(frozen=True)
class DirectionTask:
    """HalfCheetahDir / AntDir task: run along ``direction`` (+1 forward, -1 backward)."""

    direction: int


CORNERS = np.array([[2.0, 2.0], [2.0, -2.0], [-2.0, 2.0], [-2.0, -2.0]])


def make_rng(seed=None, rng: np.random.Generator | None = None) -> np.random.Generator:
    if rng is not None and seed is not None:
        raise ValueError("pass either seed or rng, not both")
    return rng if rng is not None else np.random.default_rng(seed)


def sample_goal_tasks(n: int, rng: np.random.Generator) -> list[GoalTask]:
    idx = rng.integers(0, len(CORNERS), size=n)
    return [GoalTask(goal=tuple(float(c) for c in CORNERS[i])) for i in idx]


def sample_velocity_tasks(n: int, rng: np.random.Generator) -> list[VelocityTask]:
    return [VelocityTask(velocity=float(v)) for v in rng.uniform(0.0, 2.0, size=n)]


def sample_direction_tasks(n: int, rng: np.random.Generator) -> list[DirectionTask]:
    return [DirectionTask(direction=int(d)) for d in rng.choice([-1, 1], size=n)]


def check_count(n) -> int:
    if int(n) != n or n < 1:
        raise ValueError(f"number of tasks n={n!r} must be a positive integer")
    return int(n)
