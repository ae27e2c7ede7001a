"""MAML-VPG (Finn et al., 2017): policy-gradient inner step, Adam on the post-update policy gradient.

Outer loss ``−Σ log π_{θ'(θ)}(a|s)·Â_post / N`` differentiated through the inner steps (second order);
Adam with learning rate 1e-3 (the value the ProMP code uses for its VPG-based MAML).
"""
from __future__ import annotations

import dataclasses

import tensorflow as tf

from baselines.maml import MAMLFamily, pg_loss
from mame_tf.config import field
from mame_tf.optimizers import MultiAdam


@dataclasses.dataclass
class MAMLVPGConfig:
    inner_lr: float = field(0.1, "Inner policy-gradient step size α (Finn et al.: 0.1).", min=0.0)
    outer_lr: float = field(1e-3, "Adam learning rate of the outer step.", positive=True)
    init_std: float = field(1.0, "Initial policy standard deviation.", positive=True)


class MAMLVPG(MAMLFamily):
    name = "maml_vpg"
    config_class = MAMLVPGConfig
    inner_objective = "vpg"

    def __init__(self, train_config, algo_config, obs_dim, act_dim):
        super().__init__(train_config, algo_config, obs_dim, act_dim)
        self.optimizer = MultiAdam({"policy": (algo_config.outer_lr, self.policy.params)})
        self._grad_fn = self.compile(self._grad_impl)

    def extra_loss(self, pre, post, chain) -> tf.Tensor:
        """Hook for E-MAML's exploration term (0 for MAML-VPG)."""
        return tf.zeros([])

    def _grad_impl(self, pre, post):
        with tf.GradientTape() as tape:
            logp, chain = self.adapted_post_logp(pre, post)
            outer = pg_loss(logp, post)
            extra = self.extra_loss(pre, post, chain)
            loss = outer + extra
        return outer, extra, tape.gradient(loss, self.policy.params)

    def update(self, pre_batches, post_batch):
        pre, post = self.prepare(pre_batches, post_batch)
        outer, extra, grads = self._grad_fn(pre, post)
        self.optimizer.apply({"policy": grads}, losses={"loss/outer": float(outer), "loss/explore": float(extra)})
        return {"loss/outer": float(outer), "loss/explore": float(extra),
                "grad_norm/policy": float(tf.linalg.global_norm(grads)),
                "policy_std": float(tf.reduce_mean(tf.exp(self.policy.log_std)))}
