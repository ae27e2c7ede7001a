"""MAML-TRPO (Finn et al., 2017): policy-gradient inner step, TRPO outer step through the inner step.

Outer problem: minimise the post-update surrogate ``−mean(π_{θ'(θ)}/π_old'·Â)`` subject to
``mean KL(π_old' ‖ π_{θ'(θ)}) ≤ δ`` (δ = 0.01), both functions of the pre-update θ *through* the inner
steps. The natural-gradient direction comes from 10 conjugate-gradient iterations on Hessian-vector
products of that KL (double backprop through the inner step: third-order terms of the policy), damped
by 1e-5; a backtracking line search (0.8 × 15) accepts the first step that lowers the surrogate and
keeps the KL measured on the full batch within δ, else restores θ (``mame_tf.optimizers.trpo_step``).

Cost: the Hessian-vector products are computed on ``hvp_subsample`` of each task's episodes (pre- and
post-update, the inner step recomputed on that subsample), as is standard practice; the gradient, the
surrogate and the KL checked by the line search use all the data.
"""
from __future__ import annotations

import dataclasses

import tensorflow as tf

from baselines.maml import MAMLFamily, adapt_chain, mean_kl, policy_std
from mame_tf.config import setting
from mame_tf.masked import masked_mean
from mame_tf.optimizers import flatten, hessian_vector_product, trpo_step
from mame_tf.processed import Processed


@dataclasses.dataclass
class MAMLTRPOConfig:
    inner_lr: float = setting(0.1, "Inner policy-gradient step size α (Finn et al.: 0.1).", min=0.0)
    max_kl: float = setting(0.01, "Trust region: bound δ on the mean KL of the post-update policy.", positive=True)
    cg_iters: int = setting(10, "Conjugate-gradient iterations.", positive=True)
    cg_damping: float = setting(1e-5, "Damping added to the KL Hessian in conjugate gradient.", min=0.0)
    backtrack_ratio: float = setting(0.8, "Line-search shrink factor.", positive=True, max=1.0)
    max_backtracks: int = setting(15, "Line-search steps before the update is rejected.", positive=True)
    hvp_subsample: float = setting(0.2, "Fraction of each task's episodes used for the Hessian-vector products.",
                                 positive=True, max=1.0)
    init_std: float = setting(1.0, "Initial policy standard deviation.", positive=True)

    def validate(self) -> None:
        if not 0 < self.backtrack_ratio < 1:
            raise ValueError(f"--backtrack_ratio={self.backtrack_ratio} is invalid: must be in (0, 1)")


class MAMLTRPO(MAMLFamily):
    name = "maml_trpo"
    config_class = MAMLTRPOConfig
    inner_objective = "vpg"

    def __init__(self, settings, config, obs_dim, act_dim):
        super().__init__(settings, config, obs_dim, act_dim)
        self._loss_and_kl_fn = self.compiled(self._loss_and_kl)
        self._loss_and_grad_fn = self.compiled(self._loss_and_grad)
        self._hvp_fn = self.compiled(self._hvp)

    def _surrogate_from_logp(self, logp, post: Processed):
        return -masked_mean(tf.exp(logp - post.logp) * post.advantages, post.mask)

    def _kl_from_chain(self, chain, post: Processed):
        if chain:
            return mean_kl(self.policy, chain[-1], post, per_task=True)
        return mean_kl(self.policy, self.policy.params, post, per_task=False)

    def _surrogate(self, pre: list[Processed], post: Processed):
        logp, _ = self.adapted_post_logp(pre, post)
        return self._surrogate_from_logp(logp, post)

    def _kl(self, pre: list[Processed], post: Processed):
        chain = adapt_chain(self.policy, self.policy.params, pre, self.cfg.inner_lr, self.inner_objective)
        return self._kl_from_chain(chain, post)

    def _loss_and_kl(self, pre, post):
        """The surrogate and the KL from one adaptation (what each line-search trial needs)."""
        logp, chain = self.adapted_post_logp(pre, post)
        return self._surrogate_from_logp(logp, post), self._kl_from_chain(chain, post)

    def _loss_and_grad(self, pre, post):
        with tf.GradientTape() as tape:
            loss = self._surrogate(pre, post)
        grads = tape.gradient(loss, self.policy.params)
        return loss, flatten([tf.zeros_like(p) if g is None else g for g, p in zip(grads, self.policy.params)])

    def _hvp(self, pre, post, v):
        return hessian_vector_product(lambda: self._kl(pre, post), self.policy.params, self.cfg.cg_damping)(v)

    def update(self, pre_batches, post_batch):
        pre, post = self.process_update_data(pre_batches, post_batch)
        frac = self.cfg.hvp_subsample
        pre_sub = [data.first_episodes(frac) for data in pre]
        post_sub = post.first_episodes(frac)
        result = trpo_step(
            self.policy.params,
            loss_and_gradient_fn=lambda: self._loss_and_grad_fn(pre, post),
            loss_and_kl_fn=lambda: self._loss_and_kl_fn(pre, post),
            hvp_fn=lambda v: self._hvp_fn(pre_sub, post_sub, v),
            max_kl=self.cfg.max_kl, cg_iters=self.cfg.cg_iters, backtrack_ratio=self.cfg.backtrack_ratio,
            max_backtracks=self.cfg.max_backtracks,
        )
        return {"loss/outer": result["loss_after"], "loss/outer_before": result["loss_before"],
                "kl/post": result["kl"], "trpo/accepted": result["accepted"],
                "trpo/backtracks": result["num_backtracks"], "diag/policy_std": policy_std(self.policy)}
