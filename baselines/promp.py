"""ProMP (Rothfuss et al., 2018): LVC inner objective, clipped outer objective, inner-KL penalty.

Inner step on the low-variance curvature objective ``exp(log π_θ − ⊥log π_old)·Â`` (π_old: the
sampling distribution, so the ratio is exactly 1 at the sampling parameters while its gradient carries
the pre-update credit assignment). Outer loss, minimised with Adam for ``num_epochs`` epochs on the same
data (each epoch recomputes the inner steps from the current θ)::

    −mean( min(r·Â, clip(r, 1−ε, 1+ε)·Â) ) + η · Σ_k mean KL(π_old,k ‖ π_{θ_k}),   r = π_{θ'}/π_old'

with ε = 0.3, η = 5e-4 (fixed, as in the published defaults), Adam 1e-3, 5 epochs, and the published
network (64, 64) tanh: ProMP's policy is shaped by ``--promp_hidden_sizes``/``--promp_activation``,
not ``--hidden_sizes`` (both flags say so, and ``config.json`` records the shape used under ``networks``).
"""
from __future__ import annotations

import dataclasses

import tensorflow as tf

from baselines.maml import MAMLFamily, mean_kl, policy_std
from mame_tf.config import setting
from mame_tf.masked import masked_mean
from mame_tf.optimizers import MultiAdam
from mame_tf.processed import Processed


@dataclasses.dataclass
class ProMPConfig:
    inner_lr: float = setting(0.1, "Inner LVC step size α.", min=0.0)
    outer_lr: float = setting(1e-3, "Adam learning rate of the outer step.", positive=True)
    num_epochs: int = setting(5, "Outer optimisation epochs per batch.", positive=True)
    clip_eps: float = setting(0.3, "Clipping range ε of the outer likelihood ratio.", positive=True)
    inner_kl_penalty: float = setting(5e-4, "Coefficient η of the inner-KL penalty.", min=0.0)
    init_std: float = setting(1.0, "Initial policy standard deviation.", positive=True)
    promp_hidden_sizes: tuple = setting(
        (64, 64), "Hidden sizes of ProMP's policy; ProMP uses these in place of --hidden_sizes "
        "(published: 64,64).")
    promp_activation: str = setting("tanh", "Hidden activation of ProMP's policy (published: tanh; the other "
                                    "algorithms use relu).", choices=("tanh", "relu"))

    def validate(self) -> None:
        if not 0 < self.clip_eps < 1:
            raise ValueError(f"--clip_eps={self.clip_eps} is invalid: must be in (0, 1)")


class ProMP(MAMLFamily):
    name = "promp"
    config_class = ProMPConfig
    inner_objective = "lvc"

    def __init__(self, settings, config, obs_dim, act_dim):
        super().__init__(settings, config, obs_dim, act_dim)
        self.optimizer = MultiAdam({"policy": (config.outer_lr, self.policy.params)})
        self._grad_fn = self.compiled(self._grad_impl)

    @classmethod
    def network_shapes(cls, hidden_sizes, config) -> dict:
        """ProMP's own network: ``--promp_hidden_sizes`` and ``--promp_activation`` (not ``--hidden_sizes``)."""
        return {"hidden_sizes": list(config.promp_hidden_sizes), "activation": config.promp_activation}

    def clipped_surrogate_and_inner_kl(self, pre: list[Processed], post: Processed):
        """(clipped outer surrogate, Σ_k inner KL, mean likelihood ratio r) at the current θ."""
        logp, chain = self.adapted_post_logp(pre, post)
        ratio = tf.exp(logp - post.logp)
        adv = post.advantages
        clipped = tf.clip_by_value(ratio, 1.0 - self.cfg.clip_eps, 1.0 + self.cfg.clip_eps)
        surrogate = -masked_mean(tf.minimum(ratio * adv, clipped * adv), post.mask)
        inner_kl = tf.add_n([mean_kl(self.policy, params_k, data, per_task=True)
                             for params_k, data in zip(chain[:-1], pre)]) if pre else tf.zeros([])
        return surrogate, inner_kl, masked_mean(ratio, post.mask)

    def _grad_impl(self, pre: list[Processed], post: Processed):
        with tf.GradientTape() as tape:
            surrogate, inner_kl, mean_ratio = self.clipped_surrogate_and_inner_kl(pre, post)
            loss = surrogate + self.cfg.inner_kl_penalty * inner_kl
        return surrogate, inner_kl, mean_ratio, tape.gradient(loss, self.policy.params)

    def update(self, pre_batches, post_batch):
        pre, post = self.process_update_data(pre_batches, post_batch)
        first = None
        for _ in range(self.cfg.num_epochs):
            surrogate, inner_kl, mean_ratio, grads = self._grad_fn(pre, post)
            if first is None:
                first = (float(surrogate), float(mean_ratio))
            self.optimizer.apply({"policy": grads}, losses={"loss/outer": float(surrogate), "kl/inner": float(inner_kl)})
        return {"loss/outer": float(surrogate), "loss/outer_first_epoch": first[0], "kl/inner": float(inner_kl),
                "ratio/first_epoch": first[1], "ratio/last_epoch": float(mean_ratio),
                "grad_norm/policy": float(tf.linalg.global_norm(grads)),
                "diag/policy_std": policy_std(self.policy)}
