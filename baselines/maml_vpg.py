"""MAML-VPG (Finn et al., 2017): policy-gradient inner step, Adam on the post-update policy gradient.

Outer loss ``−Σ log π_{θ'(θ)}(a|s)·Â_post / N`` differentiated through the inner steps (second order);
Adam with learning rate 1e-3 (the value the ProMP code uses for its VPG-based MAML).
"""
from __future__ import annotations

import dataclasses

import tensorflow as tf

from baselines.maml import MAMLFamily, pg_loss, policy_std
from mame_tf.config import setting
from mame_tf.optimizers import MultiAdam
from mame_tf.processed import Processed


@dataclasses.dataclass
class MAMLVPGConfig:
    inner_lr: float = setting(0.1, "Inner policy-gradient step size α (Finn et al.: 0.1).", min=0.0)
    outer_lr: float = setting(1e-3, "Adam learning rate of the outer step.", positive=True)
    init_std: float = setting(1.0, "Initial policy standard deviation.", positive=True)


class MAMLVPG(MAMLFamily):
    name = "maml_vpg"
    config_class = MAMLVPGConfig
    inner_objective = "vpg"

    def __init__(self, settings, config, obs_dim, act_dim):
        super().__init__(settings, config, obs_dim, act_dim)
        self.optimizer = MultiAdam({"policy": (config.outer_lr, self.policy.params)})
        self._grad_fn = self.compiled(self._grad_impl)

    def exploration_loss(self, pre: list[Processed], post: Processed, chain) -> tf.Tensor:
        """The loss term that rewards the pre-update policy for exploring: 0 here, E-MAML's term in EMAML."""
        return tf.zeros([])

    def _grad_impl(self, pre: list[Processed], post: Processed):
        with tf.GradientTape() as tape:
            logp, chain = self.adapted_post_logp(pre, post)
            outer = pg_loss(logp, post)
            explore = self.exploration_loss(pre, post, chain)
            loss = outer + explore
        return outer, explore, tape.gradient(loss, self.policy.params)

    def update(self, pre_batches, post_batch):
        pre, post = self.process_update_data(pre_batches, post_batch)
        outer, explore, grads = self._grad_fn(pre, post)
        self.optimizer.apply({"policy": grads}, losses={"loss/outer": float(outer), "loss/explore": float(explore)})
        return {"loss/outer": float(outer), "loss/explore": float(explore),
                "grad_norm/policy": float(tf.linalg.global_norm(grads)),
                "diag/policy_std": policy_std(self.policy)}
