"""Shared machinery of the MAML family (MAML-VPG, MAML-TRPO, ProMP, E-MAML).

Pre-update policy π_θ (a Gaussian MLP). For a batch of T tasks the adapted parameters carry a
leading task axis, ``θ'_i: [T, ...]``, and every task's inner step is computed together: the gradient
of ``Σ_i L_i(θ_i)`` with respect to the tiled parameters is exactly the per-task gradients. One inner
step on the batch sampled with ``θ_k``::

    θ_{k+1} = θ_k − α ∇ L(θ_k),     L_i(θ) = −1/N_i Σ_{e,t} w_t(θ) Â_{e,t}

with ``w_t = log π_θ(a_t|s_t)`` (vanilla policy gradient: MAML-VPG, MAML-TRPO, E-MAML) or
``w_t = exp(log π_θ(a_t|s_t) − ⊥log π_old(a_t|s_t))`` (ProMP's low-variance curvature objective, LVC),
``Â`` the per-task linear-baseline advantages normalised per task. ``update`` recomputes the whole
chain θ → θ_1 → … → θ_n from the stored pre-update batches *inside* the outer tape, so the meta-gradient
is second order (and, with LVC, includes ProMP's curvature term).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from mame_tf.algorithm import MetaAlgorithm
from mame_tf.batch import Batch
from mame_tf.config import validate
from mame_tf.networks import GaussianMLPPolicy, gaussian_kl
from mame_tf.value_functions import compute_advantages

INNER_OBJECTIVES = ("vpg", "lvc")


def inner_data(batch: Batch, discount: float, gae_lambda: float) -> dict:
    """Tensors of a pre-update batch for the inner step (advantages per task, normalised)."""
    adv, _ = compute_advantages(batch.rewards, batch.obs, batch.mask, discount, gae_lambda)
    return {"obs": tf.constant(batch.obs), "actions": tf.constant(batch.actions), "mask": tf.constant(batch.mask),
            "adv": tf.constant(adv, tf.float32), "logp_old": tf.constant(batch.logp),
            "mean_old": tf.constant(batch.mean), "log_std_old": tf.constant(batch.log_std)}


def outer_data(batch: Batch, discount: float, gae_lambda: float) -> dict:
    """Tensors of the post-update batch (same fields; also the episode returns per task)."""
    data = inner_data(batch, discount, gae_lambda)
    data["task_return"] = tf.constant(batch.episode_returns().mean(axis=1), tf.float32)
    return data


def subsample(data: dict, fraction: float) -> dict:
    """The first ``ceil(fraction·E)`` episodes of every task (for cheaper curvature estimates)."""
    if fraction >= 1.0:
        return data
    E = data["mask"].shape[1]
    keep = max(1, int(np.ceil(fraction * E)))
    return {k: (v[:, :keep] if len(v.shape) >= 3 else v) for k, v in data.items()}


def masked_mean_per_task(x: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """``Σ_{e,t} x·mask / N_i`` for every task: ``[T]``."""
    mask = tf.cast(mask, x.dtype)
    return tf.reduce_sum(x * mask, axis=[1, 2]) / tf.maximum(tf.reduce_sum(mask, axis=[1, 2]), 1.0)


def inner_loss(policy: GaussianMLPPolicy, params_t, data: dict, objective: str) -> tf.Tensor:
    """``Σ_i L_i(θ_i)`` for per-task parameters ``params_t`` (leading task axis)."""
    logp = policy.log_prob(params_t, data["obs"], data["actions"], per_task=True)
    if objective == "lvc":
        weight = tf.exp(logp - tf.stop_gradient(tf.cast(data["logp_old"], logp.dtype)))
    else:
        weight = logp
    return tf.reduce_sum(-masked_mean_per_task(weight * tf.cast(data["adv"], logp.dtype), data["mask"]))


def inner_step(policy, params_t, data, inner_lr: float, objective: str) -> list[tf.Tensor]:
    """One per-task gradient step; differentiable (second order) when recorded by an outer tape."""
    with tf.GradientTape() as tape:
        tape.watch(params_t)
        loss = inner_loss(policy, params_t, data, objective)
    grads = tape.gradient(loss, params_t)
    return [p - inner_lr * g for p, g in zip(params_t, grads)]


def tile(params, num_tasks) -> list[tf.Tensor]:
    return [tf.tile(tf.convert_to_tensor(p)[None], [num_tasks] + [1] * len(p.shape)) for p in params]


def adapt_chain(policy, params, pre_data: list[dict], inner_lr: float, objective: str) -> list[list[tf.Tensor]]:
    """θ_0 (tiled), θ_1, …, θ_n from the pre-update batches; each step on the batch θ_k sampled."""
    T = pre_data[0]["mask"].shape[0] if pre_data else None
    chain = [tile(params, T)] if pre_data else []
    for data in pre_data:
        chain.append(inner_step(policy, chain[-1], data, inner_lr, objective))
    return chain


def post_log_prob(policy, adapted, data) -> tf.Tensor:
    """log π_{θ'}(a|s) on the post-update batch, ``[T, E, H]`` (shared params if not adapted)."""
    if adapted is None:
        return policy.log_prob(policy.params, data["obs"], data["actions"])
    return policy.log_prob(adapted, data["obs"], data["actions"], per_task=True)


def mean_kl(policy, params, data, per_task: bool) -> tf.Tensor:
    """Mean over real steps of KL(π_old ‖ π_params) on ``data`` (π_old: the sampling distribution)."""
    mean, log_std = policy.forward(params, data["obs"], per_task=per_task)
    kl = gaussian_kl(tf.cast(data["mean_old"], mean.dtype), tf.cast(data["log_std_old"], mean.dtype), mean, log_std)
    mask = tf.cast(data["mask"], kl.dtype)
    return tf.reduce_sum(kl * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


def pg_loss(logp, data) -> tf.Tensor:
    """Vanilla policy-gradient loss ``−Σ log π·Â / Σ mask`` over all tasks."""
    mask = tf.cast(data["mask"], logp.dtype)
    return -tf.reduce_sum(logp * tf.cast(data["adv"], logp.dtype) * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


class MAMLFamily(MetaAlgorithm):
    """Interface plumbing shared by the MAML-family algorithms; each subclass writes ``update``.

    ``num_exploration_batches(n) = n``: the trainer samples a new batch with the current adapted
    parameters after each inner step, as the reference implementations do.
    """

    inner_objective = "vpg"

    def __init__(self, train_config, algo_config, obs_dim: int, act_dim: int,
                 hidden_sizes=None, activation: str = "relu"):
        validate(algo_config)
        self.train_config = train_config
        self.cfg = algo_config
        self.discount = float(train_config.discount)
        self.gae_lambda = float(train_config.gae_lambda)
        self.inner_steps = int(train_config.inner_steps)
        self.policy = GaussianMLPPolicy(obs_dim, act_dim, tuple(hidden_sizes or train_config.hidden_sizes),
                                        activation=activation, init_std=algo_config.init_std,
                                        seed=int(train_config.seed), name="policy")
        self.eager = bool(getattr(train_config, "eager", False))
        self._inner_step_fn = self.compile(self._inner_step_impl)

    def compile(self, fn):
        return fn if self.eager else tf.function(fn)

    # -- interface -------------------------------------------------------------------------------
    def num_exploration_batches(self, inner_steps: int) -> int:
        return int(inner_steps)

    def exploration_policy(self, adapted: Any | None):
        if adapted is None:
            return self.policy.sampling_fn()
        return self.policy.sampling_fn(params=adapted, per_task=True)

    def _inner_step_impl(self, params_t, data):
        return inner_step(self.policy, params_t, data, self.cfg.inner_lr, self.inner_objective)

    def adapt(self, batch: Batch, adapted: Any | None, inner_steps: int):
        params_t = tile(self.policy.params, batch.num_tasks) if adapted is None else \
            [tf.convert_to_tensor(p) for p in adapted]
        new = self._inner_step_fn(params_t, inner_data(batch, self.discount, self.gae_lambda))
        return [p.numpy() for p in new]

    def exploitation_policy(self, adapted: Any | None):
        return self.exploration_policy(adapted)

    # -- helpers for update ----------------------------------------------------------------------
    def prepare(self, pre_batches: list[Batch], post_batch: Batch):
        pre = [inner_data(b, self.discount, self.gae_lambda) for b in pre_batches]
        post = outer_data(post_batch, self.discount, self.gae_lambda)
        return pre, post

    def adapted_post_logp(self, pre, post):
        """(log π_{θ'}(post) [T, E, H], the adaptation chain) recomputed from the variables."""
        chain = adapt_chain(self.policy, self.policy.params, pre, self.cfg.inner_lr, self.inner_objective)
        adapted = chain[-1] if chain else None
        return post_log_prob(self.policy, adapted, post), chain
