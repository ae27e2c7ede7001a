"""E-MAML (Stadie et al., 2018): MAML-VPG plus a REINFORCE term on the pre-update policy.

The pre-update episodes of task i are credited with that task's post-update return (standardised over
the meta-batch), ``R̂_i``, as a constant reward for every pre-update step: the extra loss
``−coeff · Σ_k Σ_{e,t} log π_{θ_k}(a|s)·R̂_i / N`` pushes the pre-update policy toward episodes after
which adaptation did well. Its gradient flows through the pre-update log-probabilities (and, for k > 0,
through the earlier inner steps).
"""
from __future__ import annotations

import dataclasses

import tensorflow as tf

from baselines.maml_vpg import MAMLVPG, MAMLVPGConfig
from mame_tf.config import setting
from mame_tf.masked import masked_mean_per_task, standardize


@dataclasses.dataclass
class EMAMLConfig(MAMLVPGConfig):
    emaml_coeff: float = setting(1.0, "Weight of the E-MAML exploration term.", min=0.0)


class EMAML(MAMLVPG):
    name = "emaml"
    config_class = EMAMLConfig

    def exploration_loss(self, pre, post, chain) -> tf.Tensor:
        ret = standardize(post.task_return)
        total = tf.zeros([])
        for params_k, data in zip(chain[:-1], pre):
            logp = self.policy.log_prob(params_k, data.obs, data.actions, per_task=True)
            total += -tf.reduce_mean(masked_mean_per_task(logp, data.mask) * tf.stop_gradient(ret))
        return self.cfg.emaml_coeff * total
