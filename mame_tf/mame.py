"""MAME: Model-Agnostic Meta-Exploration (Gurumurthy, Kumar and Yue, 2019).

Three networks (paper §4.1): the exploration policy μ_φ(a|s), the exploitation policy π_{θ,z}(a|s)
and the self-supervision network M_{β,z}(s, a); the last two read a shared latent vector z
concatenated to their input. One meta-iteration (Algorithm 1), for a batch of T tasks:

1. sample exploration episodes τ ~ μ_φ (``[T, E, H]``);
2. adapt z per task with ``inner_steps`` gradient steps on the DiCE-weighted regression loss
   (Alg. 1 line 6)::

       L_i(z) = 1/N_i Σ_{e,t} ⊡(τ_{e,t}) · (M_{β,z}(s_t, a_t) − M̄_t)²,     z' = z − α ∇_z L_i(z)

   ``⊡(τ_t)`` is the magic box of the causal sum of log μ_φ (``mame_tf.dice``); ``M̄`` is the
   return-to-go (default) or the reward, standardised over the meta-batch; ``N_i`` is the task's
   number of real steps (the paper sums over t; averaging only rescales α);
3. sample post-update episodes τ' ~ π_{θ,z'};
4. update θ, z, β, φ with Adam (7e-4; 4e-5 for z) on the policy-gradient objective of the
   post-update episodes ``J = mean(log π_{θ,z'}(a|s) · Â)`` (per-task linear-baseline advantages),
   differentiating *through* the inner step (nested ``GradientTape``s: second order in z and β).

φ's gradient (``explore_estimator``):

* ``low_variance`` (paper eqs. 2–5, the default). Step t of the exploration data moves z' by
  ``−α/N_i ∇_z ℓ_t``, so it earns the "reward" ``r^μ_t = −α/N_i · g_{z'}ᵀ ∇_z ℓ_t`` with
  ``g_{z'} = ∂J/∂z'``. A per-task linear feature baseline V is fitted on the returns
  ``R^μ_t = Σ_{t'≥t} r^μ_{t'}`` and φ follows the policy gradient with ``A^μ_t = r^μ_t + V_{t+1} − V_t``.
  The DiCE weights of the inner loss pass no gradient to φ in this mode (z and β are unaffected).
  Without the baseline (``R^μ`` in place of ``A^μ``) this is exactly the DiCE gradient below. With
  several inner steps r^μ sums the steps' contributions, each with ∇_z ℓ_t at that step's z and
  ``g`` at the final z' (the Jacobians of later steps are neglected; exact for one step).
* ``dice``: vanilla DiCE — φ's gradient is the backpropagation through the magic boxes in the
  inner loss (Fig. 3 "Vanilla DiCE").
* ``emaml``: E-MAML style — REINFORCE on μ_φ with the task's post-update return (standardised
  over the meta-batch) as the reward of every exploration step (Fig. 3 "E-MAML Based").

Inner objective (``inner_objective``): ``regression`` (above; ``inner_target`` = ``return`` or
``reward`` — Fig. 3 "Reward Self-Supervision") or ``vpg`` (Fig. 3 "VPG-Inner loop"): an
importance-weighted policy-gradient step of π_{θ,z} on the exploration episodes,
``z' = z + α ∇_z 1/N_i Σ ⊡(τ_t) · ρ_t · Â_t`` with the per-decision ratio
``ρ_t = π_{θ,z}(a_t|s_t) / ⊥μ_φ(a_t|s_t)`` (the per-decision form of the paper's trajectory ratio,
which overflows over 100–200 steps).

All tasks are computed together with a leading task axis; the update is one ``tf.function`` per
batch shape (``--eager`` disables compilation). ``pre``/``post`` are the processed
(:class:`~mame_tf.processed.Processed`) exploration and post-update batches; ``pre_batches``/``post_batch``
the sampled ones.
"""
from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf

from mame_tf.algorithm import AlgorithmSettings, MetaAlgorithm
from mame_tf.batch import Batch
from mame_tf.config import setting
from mame_tf.dice import dice_weights
from mame_tf.masked import masked_mean, masked_mean_per_task, standardize, steps_per_task
from mame_tf.networks import GaussianMLPPolicy, RegressionMLP
from mame_tf.optimizers import MultiAdam
from mame_tf.processed import REGRESSION_TARGETS, Processed, process_batch
from mame_tf.registry import FAMILIES
from mame_tf.returns import discounted_returns
from mame_tf.value_functions import fit_predict_values

INNER_OBJECTIVES = ("regression", "vpg")
EXPLORE_ESTIMATORS = ("low_variance", "dice", "emaml")


@dataclasses.dataclass
class MAMEConfig:
    """MAME's own settings (the shared ones — env, tasks, episodes, discount — are in TrainConfig)."""

    latent_dim: int = setting(8, "Size of the latent vector z shared by π_{θ,z} and M_{β,z}.", min=1)
    inner_lr: float = setting(
        30.0, "Step size α of the inner gradient step on z (not given by the paper). The inner loss is a "
        "mean over the task's steps where the paper sums over t, so this α is H times the paper's. 30 was "
        "the best of 0.1, 1, 10, 30, 100 on point_corner_strict; the MuJoCo families' preset is 5, the "
        "best of 1, 5, 30 on cheetah_dir (30 diverges there).", min=0.0)
    inner_objective: str = setting(
        "regression", "Inner loss: self-supervised regression of M (paper) or an importance-weighted "
        "policy-gradient step of π ('VPG-Inner loop' ablation).", choices=INNER_OBJECTIVES)
    inner_target: str = setting(
        "return", "Regression target M̄: return-to-go (paper) or reward ('Reward Self-Supervision').",
        choices=REGRESSION_TARGETS)
    explore_estimator: str = setting(
        "low_variance", "Gradient estimator for the exploration policy φ: the low-variance advantage "
        "estimator (paper eqs. 2-5), vanilla DiCE backpropagation, or the E-MAML-style objective.",
        choices=EXPLORE_ESTIMATORS)
    outer_lr: float = setting(7e-4, "Adam learning rate of θ, β and φ.", positive=True)
    z_lr: float = setting(4e-5, "Adam learning rate of z.", positive=True)
    init_std: float = setting(1.0, "Initial standard deviation of both Gaussian policies.", positive=True)
    inner_grad_clip: float = setting(
        0.0, "Largest norm of each task's inner gradient ∇_z L_i; a longer one is scaled down to it before "
        "the step, so ‖z' − z‖ ≤ α · this (0: no clipping, as in the paper).", min=0.0)
    outer_grad_clip: float = setting(
        0.0, "Largest global norm of the outer gradient of θ, β and φ before the Adam step; a longer one "
        "is scaled down to it (0: no clipping, as in the paper).", min=0.0)

    def validate(self) -> None:
        if self.inner_objective == "vpg" and self.inner_target != "return":
            raise ValueError(
                f"--inner_target={self.inner_target} has no effect with --inner_objective=vpg (the VPG "
                "inner step uses the exploration episodes' advantages, not a regression target); use "
                "--inner_objective=regression or leave --inner_target at 'return'")


# --------------------------------------------------------------------------------------------------
# Pure functions of explicit parameters (used by the class and by the float64 gradient tests).
# --------------------------------------------------------------------------------------------------
class InnerStep(NamedTuple):
    """What one inner step on z saw: z before the step ``[T, k]``, the weighted inner loss L_i there
    ``[T]``, ‖∇_z L_i‖ ``[T]`` and the clipping factor ``min(1, c/‖∇_z L_i‖)`` of ``inner_grad_clip`` = c
    ``[T]`` (1 without clipping)."""

    z: tf.Tensor
    loss: tf.Tensor
    grad_norm: tf.Tensor
    clip_scale: tf.Tensor


class Adaptation(NamedTuple):
    """The result of :func:`adapt_latent`."""

    z_adapted: tf.Tensor              # z' [T, k]
    inner_record: list[InnerStep]     # one entry per inner step, in order
    first_inner_loss: tf.Tensor       # mean over tasks of L_i at the first step (0 without steps)


def tile_latent(z: tf.Tensor, num_tasks) -> tf.Tensor:
    """The shared ``z [k]`` as one copy per task, ``[T, k]``."""
    return tf.tile(z[None, :], tf.stack([num_tasks, 1]))


def inner_loss_per_step(cfg: MAMEConfig, pi: GaussianMLPPolicy, self_supervision: RegressionMLP, theta, beta, z,
                        pre: Processed) -> tf.Tensor:
    """The unweighted per-step inner loss ℓ_t ``[T, E, H]`` at latent ``z`` (``[T, k]`` or ``[T, E, H, k]``).

    ``regression``: ``(M_{β,z}(s_t, a_t) − M̄_t)²``. ``vpg``: ``−ρ_t Â_t`` (a loss to descend).
    """
    if cfg.inner_objective == "regression":
        x = tf.concat([pre.obs, pre.actions], axis=-1)
        pred = self_supervision.forward(beta, x, z)
        return tf.square(pred - pre.target)
    logp_pi = pi.log_prob(theta, pre.obs, pre.actions, z)
    ratio = tf.exp(logp_pi - tf.stop_gradient(pre.logp))
    return -ratio * pre.advantages


def adapt_latent(cfg: MAMEConfig, pi, self_supervision, mu, theta, beta, phi, z, pre: Processed, inner_steps: int,
                 *, dice_to_phi: bool) -> Adaptation:
    """z' for every task: ``inner_steps`` gradient steps on the weighted inner loss, from ``z [k]``.

    The per-step weights are the DiCE weights ⊡(τ_t) of μ_φ's log-probabilities when ``dice_to_phi``
    (value 1, gradient to φ), else the mask. The inner gradient is taken with its own tape *inside*
    whatever tape the caller records on, so an outer gradient differentiates through it (second
    order, clipping included).
    """
    mask = tf.cast(pre.mask, z.dtype)
    weights = dice_weights(mu.log_prob(phi, pre.obs, pre.actions), mask) if dice_to_phi else mask
    zt = tile_latent(z, tf.shape(pre.mask)[0])
    record, first_loss = [], tf.zeros([], z.dtype)
    for k in range(inner_steps):
        with tf.GradientTape() as inner:
            inner.watch(zt)
            per_step = inner_loss_per_step(cfg, pi, self_supervision, theta, beta, zt, pre)
            per_task = masked_mean_per_task(per_step, mask, weights)
            total = tf.reduce_sum(per_task)
        grad = inner.gradient(total, zt)
        norm = tf.sqrt(tf.reduce_sum(tf.square(grad), axis=-1) + 1e-24)  # [T]
        scale = tf.ones_like(norm)
        if cfg.inner_grad_clip > 0:
            scale = tf.minimum(1.0, cfg.inner_grad_clip / norm)
        record.append(InnerStep(zt, per_task, norm, scale))
        if k == 0:
            first_loss = tf.reduce_mean(per_task)
        zt = zt - cfg.inner_lr * scale[:, None] * grad
    return Adaptation(zt, record, first_loss)


def outer_objective(pi, theta, z_adapted, post: Processed) -> tf.Tensor:
    """Policy-gradient *loss* of the post-update episodes: ``−Σ log π_{θ,z'}(a|s)·Â / Σ mask``."""
    logp = pi.log_prob(theta, post.obs, post.actions, z_adapted)
    return -masked_mean(logp * post.advantages, post.mask)


def per_sample_inner_grads(cfg, pi, self_supervision, theta, beta, z_task, pre: Processed) -> tf.Tensor:
    """``∇_z ℓ_t`` for every step separately, ``[T, E, H, k]``: z broadcast to one copy per sample."""
    shape = tf.shape(pre.mask)
    zb = tf.broadcast_to(z_task[:, None, None, :], tf.concat([shape, tf.shape(z_task)[-1:]], 0))
    with tf.GradientTape() as tape:
        tape.watch(zb)
        per_step = inner_loss_per_step(cfg, pi, self_supervision, theta, beta, zb, pre)
        total = tf.reduce_sum(per_step * tf.cast(pre.mask, per_step.dtype))
    return tape.gradient(total, zb)


def explore_rewards(cfg, pi, self_supervision, theta, beta, inner_record: list[InnerStep], g_z,
                    pre: Processed) -> tf.Tensor:
    """r^μ_t ``[T, E, H]`` of eq. 5: how much step t's inner-loss term raises J through z'.

    ``g_z = ∂J/∂z'`` ``[T, k]`` (J the objective to *maximise*); step t moves z' by
    ``−α s_i/N_i ∇_z ℓ_t`` (``s_i`` the clipping scale of the step, held constant).
    """
    mask = tf.cast(pre.mask, g_z.dtype)
    n_steps = steps_per_task(mask)
    r = tf.zeros_like(mask)
    for step in inner_record:
        grads = per_sample_inner_grads(cfg, pi, self_supervision, theta, beta, step.z, pre)
        r += (-cfg.inner_lr * tf.einsum("tehk,tk->teh", grads, g_z) * step.clip_scale[:, None, None]
              / n_steps[:, None, None])
    return r * mask


def low_variance_advantages(r_mu: np.ndarray, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Eq. 4: ``A^μ_t = r^μ_t + V_{t+1} − V_t`` with V the linear baseline fitted on ``R^μ`` (γ = 1)."""
    returns = discounted_returns(r_mu, mask, 1.0)
    values = fit_predict_values(obs, returns, mask)
    v_next = np.concatenate([values[..., 1:], np.zeros(values.shape[:-1] + (1,))], axis=-1) * mask
    return (r_mu + v_next - values) * mask


def emaml_advantages(post_batch: Batch, mask: np.ndarray) -> np.ndarray:
    """E-MAML-style credit: the task's post-update return, standardised over the meta-batch, rewards
    every exploration step (divided by the number of real steps of the meta-batch)."""
    post_return = standardize(post_batch.episode_returns().mean(axis=1))
    return np.broadcast_to(post_return[:, None, None], mask.shape) * mask / max(mask.sum(), 1.0)


def explore_policy_loss(mu, phi, pre: Processed, advantages: tf.Tensor) -> tf.Tensor:
    """Surrogate whose gradient is ``−Σ_t ∇ log μ_φ(a_t|s_t) · A_t`` (a loss: descending it ascends J)."""
    logp = mu.log_prob(phi, pre.obs, pre.actions)
    mask = tf.cast(pre.mask, logp.dtype)
    return -tf.reduce_sum(logp * tf.stop_gradient(advantages) * mask)


class MainStep(NamedTuple):
    """The result of one outer pass (:meth:`MAME._main_step_impl`)."""

    outer_loss: tf.Tensor         # the policy-gradient loss of the post-update episodes
    inner_loss: tf.Tensor         # mean inner loss of the first inner step
    grads: list[tf.Tensor]        # gradients of θ, β, φ (DiCE estimator only; else zeros) and z, in that order
    explore_rewards: tf.Tensor    # r^μ [T, E, H] for the low-variance estimator (else a [1, 1, 1] zero)
    diagnostics: dict             # diag/... tensors of the adaptation


# --------------------------------------------------------------------------------------------------
class MAME(MetaAlgorithm):
    """MAME behind the shared :class:`~mame_tf.algorithm.MetaAlgorithm` interface.

    Networks: ``mu`` (μ_φ), ``pi`` (π_{θ,z}), ``self_supervision`` (M_{β,z}) and the latent ``z``.
    """

    name = "mame"
    config_class = MAMEConfig

    def __init__(self, settings: AlgorithmSettings, config: MAMEConfig, obs_dim: int, act_dim: int):
        super().__init__(settings, config, obs_dim, act_dim)
        hidden = tuple(settings.hidden_sizes)
        seed = int(settings.seed)
        k = config.latent_dim
        self.mu = GaussianMLPPolicy(obs_dim, act_dim, hidden, init_std=config.init_std, seed=seed, name="mu")
        self.pi = GaussianMLPPolicy(obs_dim, act_dim, hidden, latent_dim=k, init_std=config.init_std,
                                    seed=seed + 1, name="pi")
        self.self_supervision = RegressionMLP(obs_dim + act_dim, hidden, latent_dim=k, seed=seed + 2, name="M")
        self.z = tf.Variable(tf.zeros([k]), name="z")
        self.optimizer = MultiAdam({
            "networks": (config.outer_lr, self.pi.params + self.self_supervision.params + self.mu.params),
            "z": (config.z_lr, [self.z]),
        })
        self._main_step = self.compiled(self._main_step_impl)
        self._explore_step = self.compiled(self._explore_step_impl)
        self._adapt_fn = self.compiled(self._adapt_impl)

    @classmethod
    def env_presets(cls, env: str) -> dict[str, Any]:
        return {"inner_lr": FAMILIES[env].mame_inner_lr}

    def checkpoint_items(self) -> dict[str, Any]:
        """As the base class, but M_{β,z} keeps the name it has in every existing checkpoint, ``model/...``."""
        prefix = "self_supervision/"
        return {(f"model/{name[len(prefix):]}" if name.startswith(prefix) else name): var
                for name, var in super().checkpoint_items().items()}

    # -- data ------------------------------------------------------------------------------------
    def process_exploration(self, batch: Batch) -> Processed:
        """The regression target (its moments are logged for either objective); advantages for ``vpg``."""
        return process_batch(batch, self.settings.discount, self.settings.gae_lambda,
                             advantages=self.cfg.inner_objective == "vpg", target=self.cfg.inner_target)

    # -- interface -------------------------------------------------------------------------------
    def num_exploration_batches(self, inner_steps: int) -> int:
        return min(int(inner_steps), 1)

    def exploration_policy(self, adapted: Any | None):
        return self.mu.sampling_fn()

    def _adapt_impl(self, pre: Processed, inner_steps: int):
        adaptation = adapt_latent(self.cfg, self.pi, self.self_supervision, self.mu, self.pi.params,
                                  self.self_supervision.params, self.mu.params, tf.convert_to_tensor(self.z),
                                  pre, inner_steps, dice_to_phi=False)
        return adaptation.z_adapted

    def adapt(self, batch: Batch, adapted: Any | None, inner_steps: int) -> tf.Tensor:
        """z' ``[T, k]`` after ``inner_steps`` steps on the exploration batch."""
        return self._adapt_fn(self.processed_exploration(batch, new_adaptation=True), int(inner_steps))

    def exploitation_policy(self, adapted: Any | None):
        return self.pi.sampling_fn(z=self.z.numpy() if adapted is None else np.asarray(adapted, np.float32))

    # -- update ----------------------------------------------------------------------------------
    def _main_step_impl(self, pre: Processed | None, post: Processed, inner_steps: int) -> MainStep:
        """Outer loss and the gradients of θ, β, z (and φ for the dice estimator); r^μ if needed."""
        theta, beta, phi = self.pi.params, self.self_supervision.params, self.mu.params
        z = self.z
        adapting = pre is not None and inner_steps > 0
        with tf.GradientTape(persistent=True) as tape:
            if adapting:
                adaptation = adapt_latent(self.cfg, self.pi, self.self_supervision, self.mu, theta, beta, phi,
                                          tf.convert_to_tensor(z), pre, inner_steps,
                                          dice_to_phi=self.cfg.explore_estimator == "dice")
            else:
                adaptation = Adaptation(tile_latent(tf.convert_to_tensor(z), tf.shape(post.mask)[0]), [],
                                        tf.zeros([]))
            loss = outer_objective(self.pi, theta, adaptation.z_adapted, post)
        diag = self._adaptation_diagnostics(pre if adapting else None, adaptation)
        variables = list(theta) + list(beta) + list(phi) + [z]
        grads = tape.gradient(loss, variables + [adaptation.z_adapted])
        g_z_adapted = grads[-1]
        grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads[:-1], variables)]
        del tape
        r_mu = tf.zeros([1, 1, 1])
        if adapting and self.cfg.explore_estimator == "low_variance":
            r_mu = explore_rewards(self.cfg, self.pi, self.self_supervision, theta, beta, adaptation.inner_record,
                                   -g_z_adapted, pre)
        return MainStep(loss, adaptation.first_inner_loss, grads, r_mu, diag)

    def _adaptation_diagnostics(self, pre: Processed | None, adaptation: Adaptation) -> dict:
        """Per-task sizes of the inner step and M's fit before and after it (mean and max over tasks).

        ``inner_grad_norm`` is ‖∇_z L_i‖ of the first inner step; ``z_shift`` is ‖z'_i − z‖ after all
        steps; ``inner_error_pre/post`` are M's mean squared error on the standardised target at z and
        z' (regression objective only; the DiCE weights have value 1, so these are plain MSEs).
        """
        z = tf.convert_to_tensor(self.z)
        shift = tf.norm(adaptation.z_adapted - z[None], axis=-1)
        out = {"diag/z_shift_mean": tf.reduce_mean(shift), "diag/z_shift_max": tf.reduce_max(shift)}
        if pre is None:
            return out
        gnorm = adaptation.inner_record[0].grad_norm
        out.update({"diag/inner_grad_norm_mean": tf.reduce_mean(gnorm),
                    "diag/inner_grad_norm_max": tf.reduce_max(gnorm)})
        if self.cfg.inner_objective == "regression":  # the first step's loss is M's error at z already
            per_step = inner_loss_per_step(self.cfg, self.pi, self.self_supervision, self.pi.params,
                                           self.self_supervision.params, tf.stop_gradient(adaptation.z_adapted), pre)
            errors = {"pre": tf.stop_gradient(adaptation.inner_record[0].loss),
                      "post": masked_mean_per_task(per_step, tf.cast(pre.mask, z.dtype))}
            for name, err in errors.items():
                out[f"diag/inner_error_{name}_mean"] = tf.reduce_mean(err)
                out[f"diag/inner_error_{name}_max"] = tf.reduce_max(err)
        return out

    def _explore_step_impl(self, pre: Processed, advantages: tf.Tensor):
        with tf.GradientTape() as tape:
            loss = explore_policy_loss(self.mu, self.mu.params, pre, advantages)
        return loss, tape.gradient(loss, self.mu.params)

    def compute_gradients(self, pre_batches: list[Batch], post_batch: Batch):
        """Gradients of every parameter group (without applying them) and the losses.

        Returns ``({"theta", "beta", "phi", "z"}: lists of gradients of the loss, info dict)``.
        """
        pre_list = self.take_processed_exploration(pre_batches)
        pre = pre_list[0] if pre_list else None
        post = process_batch(post_batch, self.settings.discount, self.settings.gae_lambda)
        step = self._main_step(pre, post, self.settings.inner_steps if pre is not None else 0)
        sizes = np.cumsum([len(self.pi.params), len(self.self_supervision.params), len(self.mu.params)])
        out = {"theta": step.grads[:sizes[0]], "beta": step.grads[sizes[0]:sizes[1]],
               "phi": step.grads[sizes[1]:sizes[2]], "z": [step.grads[-1]]}
        explore_loss = 0.0
        if pre is not None and self.cfg.explore_estimator != "dice":
            mask = pre_batches[0].mask
            if self.cfg.explore_estimator == "low_variance":
                adv = low_variance_advantages(step.explore_rewards.numpy().astype(np.float64), pre_batches[0].obs,
                                              mask)
            else:
                adv = emaml_advantages(post_batch, mask)
            e_loss, out["phi"] = self._explore_step(pre, tf.constant(adv, tf.float32))
            explore_loss = float(e_loss)
        info = {"loss/outer": float(step.outer_loss), "loss/inner": float(step.inner_loss),
                "loss/explore": explore_loss, **{key: float(value) for key, value in step.diagnostics.items()}}
        if pre is not None:
            info.update({"diag/target_mean": float(pre.target_stats[0]), "diag/target_std": float(pre.target_stats[1])})
        return out, info

    def update(self, pre_batches: list[Batch], post_batch: Batch) -> dict[str, float]:
        grads, info = self.compute_gradients(pre_batches, post_batch)
        network_grads = grads["theta"] + grads["beta"] + list(grads["phi"])
        if self.cfg.outer_grad_clip > 0:
            network_grads, _ = tf.clip_by_global_norm(network_grads, self.cfg.outer_grad_clip)
        self.optimizer.apply({"networks": network_grads, "z": grads["z"]},
                             losses={k: v for k, v in info.items() if k.startswith("loss/")})
        norm = lambda gs: float(tf.linalg.global_norm(list(gs)))  # noqa: E731
        return {
            **info,
            **{f"grad_norm/{name}": norm(g) for name, g in grads.items()},
            "diag/z_norm": float(tf.norm(self.z)),
            "diag/explore_log_std": float(tf.reduce_mean(self.mu.log_std)),
            "diag/exploit_log_std": float(tf.reduce_mean(self.pi.log_std)),
            "diag/exploit_log_std_min": float(tf.reduce_min(self.pi.log_std)),
        }
