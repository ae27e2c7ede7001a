"""The unit of experience: one `Batch` of arrays shaped ``[T, E, H, ...]``.

``T`` tasks, ``E`` episodes per task, ``H`` horizon. Every array is a numpy array; algorithms convert
what they need to tensors. Steps after an episode terminated are padding: ``mask`` is 0 there, and
rewards, log-probabilities and every other per-step quantity at those steps must be ignored.
An algorithm processes each batch once into tensors (``mame_tf.processed``).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import numpy as np


class SamplingPolicy(Protocol):
    """What the sampler calls at every step: ``obs [T, E, obs_dim] -> (mean, log_std)``.

    Both outputs are ``[T, E, act_dim]`` numpy arrays; the sampler draws
    ``a = mean + exp(log_std) * eps`` with its own seeded generator, so sampling is reproducible and the
    policy itself stays deterministic. A policy may carry different parameters per task: it sees the
    task axis and computes every task in one batched call.
    """

    def __call__(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


@dataclasses.dataclass(frozen=True)
class Batch:
    """Episodes of ``T`` tasks × ``E`` episodes × ``H`` steps (frozen: a batch is what was sampled).

    obs:       [T, E, H, obs_dim]  observation before each action
    actions:   [T, E, H, act_dim]  the sampled (unclipped) actions
    rewards:   [T, E, H]           reward of each step (0 where mask is 0)
    mask:      [T, E, H]           1.0 for real steps, 0.0 after termination
    logp:      [T, E, H]           log-probability of each action under the sampling policy
    mean:      [T, E, H, act_dim]  Gaussian mean at sampling time
    log_std:   [T, E, H, act_dim]  Gaussian log-std at sampling time
    tasks:     the T task objects
    infos:     extra per-step arrays ``[T, E, H, ...]`` (for example ``position`` for the point task)
    """

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    mask: np.ndarray
    logp: np.ndarray
    mean: np.ndarray
    log_std: np.ndarray
    tasks: list[Any]
    infos: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    @property
    def num_tasks(self) -> int:
        return self.rewards.shape[0]

    @property
    def episodes_per_task(self) -> int:
        return self.rewards.shape[1]

    @property
    def horizon(self) -> int:
        return self.rewards.shape[2]

    @property
    def env_steps(self) -> int:
        """Number of real (unmasked) environment steps in the batch."""
        return int(self.mask.sum())

    def episode_returns(self) -> np.ndarray:
        """Undiscounted return of every episode, ``[T, E]``."""
        return (self.rewards * self.mask).sum(axis=-1)

    def mean_return(self) -> float:
        """Average undiscounted episode return over all tasks and episodes."""
        return float(self.episode_returns().mean())

    def final_info(self, key: str) -> float:
        """Mean over episodes of ``infos[key]`` at each episode's last real step."""
        last = np.maximum(self.mask.sum(axis=-1).astype(int) - 1, 0)  # [T, E]
        values = np.take_along_axis(self.infos[key], last[..., None], axis=2)[..., 0]
        return float(values.mean())

    def fraction_outside(self, low: np.ndarray, high: np.ndarray, key: str = "actions") -> float:
        """Fraction of the real steps' action components (``key``: ``actions`` or ``mean``) outside [low, high]."""
        values = getattr(self, key)
        outside = (values < low) | (values > high)  # [T, E, H, act_dim]
        weights = np.broadcast_to(self.mask[..., None], outside.shape)
        return float((outside * weights).sum() / max(weights.sum(), 1.0))
