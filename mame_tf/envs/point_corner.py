"""Sparse point-corner navigation (the paper's "2DPointEnvCorner").

State: the 2-D position. Each task is one of the four corners g ∈ {(±2, ±2)}. The start position is
drawn from U(−0.2, 0.2)², the action is clipped to [−0.2, 0.2]² and added to the position (no walls).
The reward of a step s → s' is sparse:

* 0 while the agent is still near the centre (‖s'‖₁ < 0.5);
* otherwise, if g is the corner nearest to s' (ties count), the progress toward g,
  ‖s − g‖₂ − ‖s' − g‖₂;
* otherwise 0.

A full-speed straight run to the right corner earns about 2.55 over the 100-step horizon; a wrong
corner or standing still earns 0. Note that this reward (the same as ProMP's sparse corner env) can be
farmed: each step that *enters* the goal's region from a neighbouring one earns its progress, and
stepping back out costs nothing, so oscillating across a region boundary earns up to ~0.28 every two
steps — more than the straight run, and without knowing the task. The return alone therefore does not
show that a policy found its corner; ``info["goal_distance"]`` (logged by the trainer as
``final_goal_distance``) does.

``point_corner_strict`` (``mame_tf/PointCornerStrict-v0``, :class:`PointCornerStrictEnv`) is the same
task with the loophole closed: the progress ‖s − g‖₂ − ‖s' − g‖₂ is paid whenever *either* end of
the step lies in the rewarded set (outside the centre and nearest to g), so leaving the goal's region
costs what entering it earned and a round trip across a boundary earns nothing. The reward stays
sparse (0 away from the goal's region), a straight run to the goal still earns about 2.55 and a
policy that ignores the task still averages at most about 0.64. This variant is ours, not the
paper's or ProMP's.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np

from mame_tf.envs.tasks import CORNERS, GoalTask, make_rng, sample_goal_tasks

MAX_ACTION = 0.2
START_RANGE = 0.2
CENTRE_RADIUS_L1 = 0.5


def _rewarded(pos: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """``[..., 2] -> [...]`` bool: outside the centre and ``goal`` is the nearest corner (ties count)."""
    d_goal = np.linalg.norm(pos - goal, axis=-1)
    d_corners = np.linalg.norm(pos[..., None, :] - CORNERS, axis=-1).min(axis=-1)
    return (d_goal <= d_corners + 1e-12) & (np.abs(pos).sum(axis=-1) >= CENTRE_RADIUS_L1)


def point_reward(pos: np.ndarray, new_pos: np.ndarray, goal: np.ndarray, strict: bool = False) -> np.ndarray:
    """Vectorised sparse reward of the steps ``pos -> new_pos``: ``pos, new_pos, goal [..., 2]`` -> ``[...]``.

    The progress toward ``goal`` if ``new_pos`` is in the rewarded set (with ``strict``: if ``pos`` or
    ``new_pos`` is), else 0.
    """
    progress = np.linalg.norm(pos - goal, axis=-1) - np.linalg.norm(new_pos - goal, axis=-1)
    paid = _rewarded(new_pos, goal)
    if strict:
        paid |= _rewarded(pos, goal)
    return np.where(paid, progress, 0.0)


def point_step(pos: np.ndarray, action: np.ndarray, goal: np.ndarray,
               strict: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """One step for any batch shape ``[..., 2]``: the clipped action is added; returns ``(new_pos, reward)``."""
    new_pos = pos + np.clip(action, -MAX_ACTION, MAX_ACTION)
    return new_pos, point_reward(pos, new_pos, goal, strict)


class PointCornerEnv(gym.Env):
    """gymnasium env of the sparse point-corner task family (see the module docstring).

    Observation: the position ``[2]`` (float64). Action: a displacement, clipped to ``[-0.2, 0.2]²``.
    ``info``: ``position`` ``[2]`` and ``goal_distance`` (Euclidean distance to the task's corner).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}
    strict = False
    task_class = GoalTask
    task_sampler = staticmethod(sample_goal_tasks)

    def __init__(self, task: GoalTask | None = None, render_mode: str | None = None, render_size: int = 256):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode={render_mode!r} is invalid; valid choices: None, "
                             + ", ".join(map(repr, self.metadata["render_modes"])))
        self.render_mode = render_mode
        self._render_size = int(render_size)
        self._path: list[np.ndarray] = []
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float64)
        self.action_space = gym.spaces.Box(-MAX_ACTION, MAX_ACTION, shape=(2,), dtype=np.float32)
        self._task = GoalTask(CORNERS[0]) if task is None else task
        self.set_task(self._task)
        self._pos = np.zeros(2)

    # Task interface -------------------------------------------------------------------------
    def sample_tasks(self, n: int, seed: int | None = None, rng: np.random.Generator | None = None) -> list[GoalTask]:
        """``n`` tasks (corners drawn uniformly), from ``rng`` or a generator seeded with ``seed``."""
        return self.task_sampler(n, make_rng(seed, rng))

    def set_task(self, task: GoalTask) -> None:
        if not isinstance(task, GoalTask):
            raise ValueError(f"PointCorner expects a GoalTask, got {task!r}")
        self._task = task

    def get_task(self) -> GoalTask:
        return self._task

    # gymnasium API ----------------------------------------------------------------------------
    def _info(self):
        return {"position": self._pos.copy(), "goal_distance": float(np.linalg.norm(self._pos - self._task.goal))}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._pos = self.np_random.uniform(-START_RANGE, START_RANGE, size=2)
        self._path = [self._pos.copy()]
        return self._pos.copy(), self._info()

    def set_state(self, pos: np.ndarray) -> None:
        """Place the point at ``pos [2]``."""
        pos = np.array(pos, dtype=np.float64)
        if pos.shape != (2,):
            raise ValueError(f"position has shape {pos.shape}, expected (2,)")
        self._pos = pos
        self._path = [pos.copy()]

    def get_state(self) -> np.ndarray:
        return self._pos.copy()

    def step(self, action):
        self._pos, reward = point_step(self._pos, np.asarray(action, dtype=np.float64), self._task.goal, self.strict)
        if self.render_mode is not None:
            self._path.append(self._pos.copy())
        return self._pos.copy(), float(reward), False, False, self._info()

    def render(self):
        """With ``render_mode="rgb_array"``: the arena as an RGB array ``[size, size, 3]`` (uint8) with the
        goal's rewarded region, the corners (the goal in red), the start and the path since the reset."""
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='rgb_array' to gym.make")
            return None
        from mame_tf.rendering import point_frame

        return point_frame(np.array(self._path or [self._pos]), self._task.goal, self._render_size)


class PointCornerStrictEnv(PointCornerEnv):  # noqa: V102 (named in mame_tf.registry.FAMILIES)
    """``point_corner_strict``: the point-corner task whose reward cannot be farmed (module docstring)."""

    strict = True
