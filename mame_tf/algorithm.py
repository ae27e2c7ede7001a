"""The one small interface every meta-RL algorithm implements, so one trainer drives them all.

One meta-iteration, for a batch of tasks, reads as follows (the trainer implements exactly this and
never branches on the algorithm)::

    adapted = None                                   # "not adapted yet"
    pre_batches = []
    for k in range(algo.num_exploration_batches(inner_steps)):
        batch = sample(tasks, algo.exploration_policy(adapted))
        pre_batches.append(batch)
        adapted = algo.adapt(batch, adapted, inner_steps)
    post_batch = sample(tasks, algo.exploitation_policy(adapted))
    metrics = algo.update(pre_batches, post_batch)   # training only

* MAML-style baselines (VPG, TRPO, ProMP, E-MAML): the exploration policy is the pre-update policy
  with the current adapted parameters, ``num_exploration_batches(n) == n`` and each ``adapt`` does one
  policy-gradient step on the batch just sampled (re-sampling after each step, as the reference
  implementations do); ``adapted`` holds the per-task parameters with a leading task axis.
* MAME: the exploration policy is μ_φ, ``num_exploration_batches(n) == min(n, 1)`` and ``adapt`` takes
  ``n`` gradient steps on the latent z using that one exploration batch; ``adapted`` is z' ``[T, k]``.

``adapt`` only produces numbers to sample with; ``update`` recomputes the whole inner computation
inside its gradient tapes so that the outer gradient is exact (second order). Meta-testing uses the
same ``exploration_policy`` / ``adapt`` / ``exploitation_policy`` calls with its own number of steps.
"""
from __future__ import annotations

import abc
from typing import Any

from mame_tf.batch import Batch, SamplingPolicy


class MetaAlgorithm(abc.ABC):
    """Abstract meta-RL algorithm. Subclasses set ``name`` and implement the methods below."""

    name: str = "abstract"

    @abc.abstractmethod
    def num_exploration_batches(self, inner_steps: int) -> int:
        """How many pre-update batches one adaptation with ``inner_steps`` steps samples."""

    @abc.abstractmethod
    def exploration_policy(self, adapted: Any | None) -> SamplingPolicy:
        """The policy that samples the next pre-update batch (``adapted is None`` before any step)."""

    @abc.abstractmethod
    def adapt(self, batch: Batch, adapted: Any | None, inner_steps: int) -> Any:
        """Adapt to the tasks of ``batch``; returns the new adapted state (per-task, task axis first)."""

    @abc.abstractmethod
    def exploitation_policy(self, adapted: Any | None) -> SamplingPolicy:
        """The post-update policy of the adapted state."""

    @abc.abstractmethod
    def update(self, pre_batches: list[Batch], post_batch: Batch) -> dict[str, float]:
        """One meta-update from a full iteration's data; returns metrics named ``loss/...`` etc."""

    def checkpoint_items(self) -> dict[str, Any]:
        """Every variable of the training state, by name: found by walking this object's attributes.

        Subclasses do not list their variables; whatever network, latent vector or optimizer they hold
        is saved and restored (see ``mame_tf.checkpoint.state_variables``).
        """
        from mame_tf.checkpoint import state_variables

        return state_variables(self)
