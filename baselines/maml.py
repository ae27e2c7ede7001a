"""Shared machinery of the MAML family (MAML-VPG, MAML-TRPO, ProMP, E-MAML).

Pre-update policy π_θ (a Gaussian MLP). For a batch of T tasks the adapted parameters carry a
leading task axis, ``θ'_i: [T, ...]``, and every task's inner step is computed together: the gradient
of ``Σ_i L_i(θ_i)`` with respect to the tiled parameters is exactly the per-task gradients. One inner
step on the batch sampled with ``θ_k``::

    θ_{k+1} = θ_k − α ∇ L(θ_k),     L_i(θ) = −1/N_i Σ_{e,t} w_t(θ) Â_{e,t}

with ``w_t = log π_θ(a_t|s_t)`` (vanilla policy gradient: MAML-VPG, MAML-TRPO, E-MAML) or
``w_t = exp(log π_θ(a_t|s_t) − ⊥log π_old(a_t|s_t))`` (ProMP's low-variance curvature objective, LVC),
``Â`` the per-task linear-baseline advantages normalised per task. ``update`` recomputes the whole
chain θ → θ_1 → … → θ_n from the processed pre-update batches *inside* the outer tape, so the
meta-gradient is second order (and, with LVC, includes ProMP's curvature term).

Naming: ``pre_batches``/``post_batch`` are sampled :class:`~mame_tf.batch.Batch`es; ``pre``/``post``
are their :class:`~mame_tf.processed.Processed` forms.
"""
from __future__ import annotations

from typing import Any

import tensorflow as tf

from mame_tf.algorithm import AlgorithmSettings, MetaAlgorithm
from mame_tf.batch import Batch
from mame_tf.masked import masked_mean, masked_mean_per_task
from mame_tf.networks import GaussianMLPPolicy, gaussian_kl
from mame_tf.processed import Processed, process_batch


def inner_loss(policy: GaussianMLPPolicy, params_t, data: Processed, objective: str) -> tf.Tensor:
    """``Σ_i L_i(θ_i)`` for per-task parameters ``params_t`` (leading task axis)."""
    logp = policy.log_prob(params_t, data.obs, data.actions, per_task=True)
    if objective == "lvc":
        weight = tf.exp(logp - tf.stop_gradient(tf.cast(data.logp, logp.dtype)))
    else:
        weight = logp
    return tf.reduce_sum(-masked_mean_per_task(weight * tf.cast(data.advantages, logp.dtype), data.mask))


def inner_step(policy, params_t, data: Processed, inner_lr: float, objective: str) -> list[tf.Tensor]:
    """One per-task gradient step; differentiable (second order) when recorded by an outer tape."""
    with tf.GradientTape() as tape:
        tape.watch(params_t)
        loss = inner_loss(policy, params_t, data, objective)
    grads = tape.gradient(loss, params_t)
    return [p - inner_lr * g for p, g in zip(params_t, grads)]


def adapt_chain(policy, params, pre: list[Processed], inner_lr: float, objective: str) -> list[list[tf.Tensor]]:
    """θ_0 (tiled), θ_1, …, θ_n from the processed pre-update batches; each step on the batch θ_k sampled."""
    if not pre:
        return []
    chain = [policy.tile_params(pre[0].mask.shape[0], params)]
    for data in pre:
        chain.append(inner_step(policy, chain[-1], data, inner_lr, objective))
    return chain


def post_log_prob(policy, adapted, data: Processed) -> tf.Tensor:
    """log π_{θ'}(a|s) on the post-update batch, ``[T, E, H]`` (shared params if not adapted)."""
    if adapted is None:
        return policy.log_prob(policy.params, data.obs, data.actions)
    return policy.log_prob(adapted, data.obs, data.actions, per_task=True)


def mean_kl(policy, params, data: Processed, per_task: bool) -> tf.Tensor:
    """Mean over real steps of KL(π_old ‖ π_params) on ``data`` (π_old: the sampling distribution)."""
    mean, log_std = policy.forward(params, data.obs, per_task=per_task)
    kl = gaussian_kl(tf.cast(data.mean, mean.dtype), tf.cast(data.log_std, mean.dtype), mean, log_std)
    return masked_mean(kl, data.mask)


def pg_loss(logp, data: Processed) -> tf.Tensor:
    """Vanilla policy-gradient loss ``−Σ log π·Â / Σ mask`` over all tasks."""
    return -masked_mean(logp * tf.cast(data.advantages, logp.dtype), data.mask)


def policy_std(policy: GaussianMLPPolicy) -> float:
    """Mean standard deviation of the pre-update policy (a diagnostic)."""
    return float(tf.reduce_mean(tf.exp(policy.log_std)))


class MAMLFamily(MetaAlgorithm):
    """Interface plumbing shared by the MAML-family algorithms; each subclass writes ``update``.

    ``num_exploration_batches(n) = n``: the trainer samples a new batch with the current adapted
    parameters after each inner step, as the reference implementations do. The adapted state is the
    list of per-task parameter tensors ``[T, ...]``.
    """

    inner_objective = "vpg"

    def __init__(self, settings: AlgorithmSettings, config, obs_dim: int, act_dim: int):
        super().__init__(settings, config, obs_dim, act_dim)
        shapes = self.network_shapes(settings.hidden_sizes, config)
        self.policy = GaussianMLPPolicy(obs_dim, act_dim, tuple(shapes["hidden_sizes"]),
                                        activation=shapes["activation"], init_std=config.init_std,
                                        seed=int(settings.seed), name="policy")
        self._inner_step_fn = self.compiled(self._inner_step_impl)

    # -- data ------------------------------------------------------------------------------------
    def process_exploration(self, batch: Batch) -> Processed:
        return process_batch(batch, self.settings.discount, self.settings.gae_lambda)

    def process_update_data(self, pre_batches: list[Batch], post_batch: Batch) -> tuple[list[Processed], Processed]:
        """``(pre, post)``: the pre-update batches as processed when adapting, and the post-update batch."""
        pre = self.take_processed_exploration(pre_batches)
        return pre, process_batch(post_batch, self.settings.discount, self.settings.gae_lambda)

    # -- interface -------------------------------------------------------------------------------
    def num_exploration_batches(self, inner_steps: int) -> int:
        return int(inner_steps)

    def exploration_policy(self, adapted: Any | None):
        if adapted is None:
            return self.policy.sampling_fn()
        return self.policy.sampling_fn(params=adapted, per_task=True)

    def _inner_step_impl(self, params_t, data: Processed):
        return inner_step(self.policy, params_t, data, self.cfg.inner_lr, self.inner_objective)

    def adapt(self, batch: Batch, adapted: Any | None, inner_steps: int) -> list[tf.Tensor]:
        params_t = self.policy.tile_params(batch.num_tasks) if adapted is None else adapted
        data = self.processed_exploration(batch, new_adaptation=adapted is None)
        return self._inner_step_fn(params_t, data)

    def exploitation_policy(self, adapted: Any | None):
        return self.exploration_policy(adapted)

    # -- helpers for update ----------------------------------------------------------------------
    def adapted_post_logp(self, pre: list[Processed], post: Processed):
        """(log π_{θ'}(post) [T, E, H], the adaptation chain) recomputed from the variables."""
        chain = adapt_chain(self.policy, self.policy.params, pre, self.cfg.inner_lr, self.inner_objective)
        adapted = chain[-1] if chain else None
        return post_log_prob(self.policy, adapted, post), chain
