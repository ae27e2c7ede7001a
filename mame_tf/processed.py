"""A sampled :class:`~mame_tf.batch.Batch` processed once into the tensors ``adapt`` and ``update`` read.

Processing computes the discounted returns, the linear-baseline fit and the advantages (and MAME's
regression target) in float64 numpy, once per batch, and converts everything to float32 tensors. The
result, :class:`Processed`, is a ``NamedTuple`` so it passes through ``tf.function`` as a nest of
tensors; fields an algorithm does not ask for are ``None``.

An algorithm processes each exploration batch when it adapts to it and reuses that result when it
updates: :class:`ExplorationCache` keeps the batches of the current adaptation, found by identity
(it holds the batch itself, and a ``Batch`` is frozen, so an entry can never answer for another batch).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
import tensorflow as tf

from mame_tf.batch import Batch
from mame_tf.masked import standardize
from mame_tf.returns import discounted_returns
from mame_tf.value_functions import compute_advantages

REGRESSION_TARGETS = ("return", "reward")


class Processed(NamedTuple):
    """One batch of ``T`` tasks × ``E`` episodes × ``H`` steps as tensors (float32 unless built by hand).

    obs:           [T, E, H, obs_dim]  observations
    actions:       [T, E, H, act_dim]  sampled actions
    mask:          [T, E, H]           1 at real steps, 0 after termination
    logp:          [T, E, H]           log-probability of each action under the sampling policy
    mean:          [T, E, H, act_dim]  the sampling policy's Gaussian mean
    log_std:       [T, E, H, act_dim]  the sampling policy's Gaussian log-std
    task_return:   [T]                 mean undiscounted episode return of each task
    advantages:    [T, E, H] or None   GAE(λ) with the per-task linear baseline, normalised per task
    target:        [T, E, H] or None   MAME's regression target M̄ (return-to-go or reward), standardised
                                       over the meta-batch's real steps
    target_stats:  [2] float64 or None the target's mean and std before standardisation (diagnostics)
    """

    obs: tf.Tensor
    actions: tf.Tensor
    mask: tf.Tensor
    logp: tf.Tensor
    mean: tf.Tensor
    log_std: tf.Tensor
    task_return: tf.Tensor
    advantages: tf.Tensor | None = None
    target: tf.Tensor | None = None
    target_stats: tf.Tensor | None = None

    def first_episodes(self, fraction: float) -> "Processed":
        """The first ``ceil(fraction·E)`` episodes of every task (for cheaper curvature estimates)."""
        if fraction >= 1.0:
            return self
        keep = max(1, int(np.ceil(fraction * self.mask.shape[1])))
        per_step = ("obs", "actions", "mask", "logp", "mean", "log_std", "advantages", "target")
        return self._replace(**{name: getattr(self, name)[:, :keep] for name in per_step
                                if getattr(self, name) is not None})


def regression_target(batch: Batch, discount: float, kind: str) -> tuple[np.ndarray, float, float]:
    """M̄ standardised over all tasks' real steps: ``(target [T, E, H] float64, mean, std)``."""
    if kind == "return":
        raw = discounted_returns(batch.rewards, batch.mask, discount)
    elif kind == "reward":
        raw = batch.rewards.astype(np.float64)
    else:
        raise ValueError(f"unknown regression target {kind!r}; valid: {', '.join(REGRESSION_TARGETS)}")
    return standardize(raw, batch.mask)


def process_batch(batch: Batch, discount: float, gae_lambda: float, *, advantages: bool = True,
                  target: str | None = None) -> Processed:
    """The batch's tensors, its advantages (unless ``advantages=False``) and, if asked, a regression target."""
    f32 = lambda x: tf.constant(np.asarray(x, np.float32))  # noqa: E731
    fields = dict(obs=f32(batch.obs), actions=f32(batch.actions), mask=f32(batch.mask), logp=f32(batch.logp),
                  mean=f32(batch.mean), log_std=f32(batch.log_std),
                  task_return=f32(batch.episode_returns().mean(axis=1)))
    if advantages:
        adv, _ = compute_advantages(batch.rewards, batch.obs, batch.mask, discount, gae_lambda)
        fields["advantages"] = f32(adv)
    if target is not None:
        values, mean, std = regression_target(batch, discount, target)
        fields["target"] = f32(values)
        fields["target_stats"] = tf.constant([mean, std], tf.float64)
    return Processed(**fields)


class ExplorationCache:
    """The processed exploration batches of the current adaptation, found by the batch's identity."""

    def __init__(self):
        self._entries: list[tuple[Batch, Processed]] = []

    def get(self, batch: Batch, process: Callable[[Batch], Processed]) -> Processed:
        """The cached result for this very batch object, else ``process(batch)`` (and cache it)."""
        for seen, processed in self._entries:
            if seen is batch:
                return processed
        processed = process(batch)
        self._entries.append((batch, processed))
        return processed

    def clear(self) -> None:
        self._entries = []
