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
batch shape (``--eager`` disables compilation).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import tensorflow as tf

from mame_tf.algorithm import MetaAlgorithm
from mame_tf.config import field, validate
from mame_tf.batch import Batch
from mame_tf.dice import dice_weights
from mame_tf.networks import GaussianMLPPolicy, RegressionMLP
from mame_tf.optimizers import MultiAdam
from mame_tf.returns import discounted_returns, normalize_per_task
from mame_tf.value_functions import compute_advantages, fit_predict_values

INNER_OBJECTIVES = ("regression", "vpg")
INNER_TARGETS = ("return", "reward")
EXPLORE_ESTIMATORS = ("low_variance", "dice", "emaml")
MUJOCO_INNER_LR = 5.0  # α on cheetah_vel, cheetah_dir, ant_dir (see MAMEConfig.inner_lr)


@dataclasses.dataclass
class MAMEConfig:
    """MAME's own settings (the shared ones — env, tasks, episodes, discount — are in TrainConfig)."""

    latent_dim: int = field(8, "Size of the latent vector z shared by π_{θ,z} and M_{β,z}.", min=1)
    inner_lr: float = field(
        30.0, "Step size α of the inner gradient step on z (not given by the paper). The inner loss is a "
        "mean over the task's steps where the paper sums over t, so this α is H times the paper's. 30 was "
        "the best of 0.1, 1, 10, 30, 100 on point_corner_strict; the MuJoCo families' preset is 5, the "
        "best of 1, 5, 30 on cheetah_dir (30 diverges there).", min=0.0)
    inner_objective: str = field(
        "regression", "Inner loss: self-supervised regression of M (paper) or an importance-weighted "
        "policy-gradient step of π ('VPG-Inner loop' ablation).", choices=INNER_OBJECTIVES)
    inner_target: str = field(
        "return", "Regression target M̄: return-to-go (paper) or reward ('Reward Self-Supervision').",
        choices=INNER_TARGETS)
    explore_estimator: str = field(
        "low_variance", "Gradient estimator for the exploration policy φ: the low-variance advantage "
        "estimator (paper eqs. 2-5), vanilla DiCE backpropagation, or the E-MAML-style objective.",
        choices=EXPLORE_ESTIMATORS)
    outer_lr: float = field(7e-4, "Adam learning rate of θ, β and φ.", positive=True)
    z_lr: float = field(4e-5, "Adam learning rate of z.", positive=True)
    init_std: float = field(1.0, "Initial standard deviation of both Gaussian policies.", positive=True)
    inner_grad_clip: float = field(
        0.0, "Largest norm of each task's inner gradient ∇_z L_i; a longer one is scaled down to it before "
        "the step, so ‖z' − z‖ ≤ α · this (0: no clipping, as in the paper).", min=0.0)
    outer_grad_clip: float = field(
        0.0, "Largest global norm of the outer gradient of θ, β and φ before the Adam step; a longer one "
        "is scaled down to it (0: no clipping, as in the paper).", min=0.0)

    @staticmethod
    def env_presets(env: str) -> dict[str, Any]:
        """Per-family defaults, applied to the flags not given explicitly."""
        return {} if env.startswith("point_corner") else {"inner_lr": MUJOCO_INNER_LR}

    def validate(self) -> None:
        if self.inner_objective == "vpg" and self.inner_target != "return":
            raise ValueError(
                f"--inner_target={self.inner_target} has no effect with --inner_objective=vpg (the VPG "
                "inner step uses the exploration episodes' advantages, not a regression target); use "
                "--inner_objective=regression or leave --inner_target at 'return'")


# --------------------------------------------------------------------------------------------------
# Pure functions of explicit parameters (used by the class and by the float64 gradient tests).
# --------------------------------------------------------------------------------------------------
def explore_weights(logp_mu: tf.Tensor, mask: tf.Tensor, dice: bool) -> tf.Tensor:
    """Per-step weights of the inner loss: ⊡(τ_t) (gradient to φ) or the plain mask (value equal)."""
    mask = tf.cast(mask, logp_mu.dtype)
    return dice_weights(logp_mu, mask) if dice else mask


def inner_loss_per_step(
    cfg: MAMEConfig, pi: GaussianMLPPolicy, model: RegressionMLP, theta, beta, z, pre: dict
) -> tf.Tensor:
    """The unweighted per-step inner loss ℓ_t ``[T, E, H]`` at latent ``z`` (``[T, k]`` or ``[T, E, H, k]``).

    ``regression``: ``(M_{β,z}(s_t, a_t) − M̄_t)²``. ``vpg``: ``−ρ_t Â_t`` (a loss to descend).
    """
    if cfg.inner_objective == "regression":
        x = tf.concat([pre["obs"], pre["actions"]], axis=-1)
        pred = model.forward(beta, x, z)
        return tf.square(pred - pre["target"])
    logp_pi = pi.log_prob(theta, pre["obs"], pre["actions"], z)
    ratio = tf.exp(logp_pi - tf.stop_gradient(pre["logp_mu"]))
    return -ratio * pre["adv"]


def adapt_latent(
    cfg: MAMEConfig, pi, model, mu, theta, beta, phi, z, pre: dict, inner_steps: int, dice_to_phi: bool
) -> tuple[tf.Tensor, list[tf.Tensor], tf.Tensor]:
    """z' for every task: ``inner_steps`` gradient steps on the weighted inner loss.

    ``z``: ``[k]``; returns ``(z' [T, k], steps, mean inner loss of the first step)`` where ``steps``
    lists, for each inner step, ``(z before the step [T, k], ‖∇_z L_i‖ [T], scale [T])``; ``scale`` is
    the factor ``min(1, c/‖∇_z L_i‖)`` of ``inner_grad_clip`` = c (1 without clipping). The inner
    gradient is taken with its own tape *inside* whatever tape the caller records on, so an outer
    gradient differentiates through it (second order, clipping included).
    """
    T = tf.shape(pre["mask"])[0]
    mask = tf.cast(pre["mask"], z.dtype)
    n_steps = tf.maximum(tf.reduce_sum(mask, axis=[1, 2]), 1.0)  # [T]
    logp_mu = mu.log_prob(phi, pre["obs"], pre["actions"])
    weights = explore_weights(logp_mu, mask, dice_to_phi)
    zt = tf.tile(z[None, :], tf.stack([T, 1]))
    history, first_loss = [], tf.zeros([], z.dtype)
    for k in range(inner_steps):
        with tf.GradientTape() as inner:
            inner.watch(zt)
            per_step = inner_loss_per_step(cfg, pi, model, theta, beta, zt, pre)
            per_task = tf.reduce_sum(weights * per_step, axis=[1, 2]) / n_steps
            total = tf.reduce_sum(per_task)
        grad = inner.gradient(total, zt)
        norm = tf.sqrt(tf.reduce_sum(tf.square(grad), axis=-1) + 1e-24)  # [T]
        scale = tf.ones_like(norm)
        if cfg.inner_grad_clip > 0:
            scale = tf.minimum(1.0, cfg.inner_grad_clip / norm)
        history.append((zt, norm, scale))
        if k == 0:
            first_loss = tf.reduce_mean(per_task)
        zt = zt - cfg.inner_lr * scale[:, None] * grad
    return zt, history, first_loss


def outer_objective(pi, theta, z_adapted, post: dict) -> tf.Tensor:
    """Policy-gradient *loss* of the post-update episodes: ``−Σ log π_{θ,z'}(a|s)·Â / Σ mask``."""
    mask = tf.cast(post["mask"], z_adapted.dtype)
    logp = pi.log_prob(theta, post["obs"], post["actions"], z_adapted)
    return -tf.reduce_sum(logp * post["adv"] * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


def per_sample_inner_grads(cfg, pi, model, theta, beta, z_task, pre) -> tf.Tensor:
    """``∇_z ℓ_t`` for every step separately, ``[T, E, H, k]``: z broadcast to one copy per sample."""
    shape = tf.shape(pre["mask"])
    zb = tf.broadcast_to(z_task[:, None, None, :], tf.concat([shape, tf.shape(z_task)[-1:]], 0))
    with tf.GradientTape() as tape:
        tape.watch(zb)
        per_step = inner_loss_per_step(cfg, pi, model, theta, beta, zb, pre)
        total = tf.reduce_sum(per_step * tf.cast(pre["mask"], per_step.dtype))
    return tape.gradient(total, zb)


def explore_rewards(cfg, pi, model, theta, beta, history, g_z, pre) -> tf.Tensor:
    """r^μ_t ``[T, E, H]`` of eq. 5: how much step t's inner-loss term raises J through z'.

    ``g_z = ∂J/∂z'`` ``[T, k]`` (J the objective to *maximise*); step t moves z' by
    ``−α s_i/N_i ∇_z ℓ_t`` (``s_i`` the clipping scale of the step, held constant).
    """
    mask = tf.cast(pre["mask"], g_z.dtype)
    n_steps = tf.maximum(tf.reduce_sum(mask, axis=[1, 2]), 1.0)
    r = tf.zeros_like(mask)
    for z_k, _, scale in history:
        grads = per_sample_inner_grads(cfg, pi, model, theta, beta, z_k, pre)
        r += -cfg.inner_lr * tf.einsum("tehk,tk->teh", grads, g_z) * scale[:, None, None] / n_steps[:, None, None]
    return r * mask


def low_variance_advantages(r_mu: np.ndarray, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Eq. 4: ``A^μ_t = r^μ_t + V_{t+1} − V_t`` with V the linear baseline fitted on ``R^μ`` (γ = 1)."""
    returns = discounted_returns(r_mu, mask, 1.0)
    values = fit_predict_values(obs, returns, mask)
    v_next = np.concatenate([values[..., 1:], np.zeros(values.shape[:-1] + (1,))], axis=-1) * mask
    return (r_mu + v_next - values) * mask


def explore_policy_loss(mu, phi, pre: dict, advantages: tf.Tensor) -> tf.Tensor:
    """Surrogate whose gradient is ``−Σ_t ∇ log μ_φ(a_t|s_t) · A_t`` (a loss: descending it ascends J)."""
    logp = mu.log_prob(phi, pre["obs"], pre["actions"])
    mask = tf.cast(pre["mask"], logp.dtype)
    return -tf.reduce_sum(logp * tf.stop_gradient(advantages) * mask)


# --------------------------------------------------------------------------------------------------
class MAME(MetaAlgorithm):
    """MAME behind the shared :class:`~mame_tf.algorithm.MetaAlgorithm` interface."""

    name = "mame"
    config_class = MAMEConfig

    def __init__(self, train_config, algo_config: MAMEConfig, obs_dim: int, act_dim: int):
        validate(algo_config)
        self.train_config = train_config
        self.cfg = algo_config
        hidden = tuple(train_config.hidden_sizes)
        seed = int(train_config.seed)
        k = algo_config.latent_dim
        self.mu = GaussianMLPPolicy(obs_dim, act_dim, hidden, init_std=algo_config.init_std, seed=seed, name="mu")
        self.pi = GaussianMLPPolicy(obs_dim, act_dim, hidden, latent_dim=k, init_std=algo_config.init_std,
                                    seed=seed + 1, name="pi")
        self.model = RegressionMLP(obs_dim + act_dim, hidden, latent_dim=k, seed=seed + 2, name="M")
        self.z = tf.Variable(tf.zeros([k]), name="z")
        self.optimizer = MultiAdam({
            "networks": (algo_config.outer_lr, self.pi.params + self.model.params + self.mu.params),
            "z": (algo_config.z_lr, [self.z]),
        })
        self.discount = float(train_config.discount)
        self.gae_lambda = float(train_config.gae_lambda)
        self.inner_steps = int(train_config.inner_steps)
        compile_fn = (lambda f: f) if getattr(train_config, "eager", False) else \
            (lambda f: tf.function(f))
        self._main_step = compile_fn(self._main_step_impl)
        self._explore_step = compile_fn(self._explore_step_impl)
        self._adapt_fn = compile_fn(self._adapt_impl)

    # -- data ------------------------------------------------------------------------------------
    def _pre_tensors(self, batch: Batch) -> dict:
        mask = batch.mask
        if self.cfg.inner_target == "return":
            target = discounted_returns(batch.rewards, mask, self.discount)
        else:
            target = batch.rewards.astype(np.float64)
        valid = mask > 0
        mean = target[valid].mean() if valid.any() else 0.0
        std = target[valid].std() if valid.any() else 1.0
        self._target_stats = {"diag/target_mean": float(mean), "diag/target_std": float(std)}
        target = (target - mean) / (std + 1e-8) * mask
        data = {
            "obs": batch.obs, "actions": batch.actions, "mask": mask,
            "target": target.astype(np.float32), "logp_mu": batch.logp,
        }
        if self.cfg.inner_objective == "vpg":
            adv, _ = compute_advantages(batch.rewards, batch.obs, mask, self.discount, self.gae_lambda)
            data["adv"] = adv.astype(np.float32)
        else:
            data["adv"] = np.zeros_like(batch.rewards)
        return {key: tf.constant(value, tf.float32) for key, value in data.items()}

    def _post_tensors(self, batch: Batch) -> dict:
        adv, _ = compute_advantages(batch.rewards, batch.obs, batch.mask, self.discount, self.gae_lambda)
        return {
            "obs": tf.constant(batch.obs), "actions": tf.constant(batch.actions),
            "mask": tf.constant(batch.mask), "adv": tf.constant(adv, tf.float32),
        }

    # -- interface -------------------------------------------------------------------------------
    def num_exploration_batches(self, inner_steps: int) -> int:
        return min(int(inner_steps), 1)

    def exploration_policy(self, adapted: Any | None):
        return self.mu.sampling_fn()

    def _adapt_impl(self, pre: dict, steps: int):
        z_adapted, _, loss = adapt_latent(self.cfg, self.pi, self.model, self.mu, self.pi.params,
                                          self.model.params, self.mu.params, tf.convert_to_tensor(self.z),
                                          pre, steps, dice_to_phi=False)
        return z_adapted, loss

    def adapt(self, batch: Batch, adapted: Any | None, inner_steps: int) -> np.ndarray:
        z_adapted, _ = self._adapt_fn(self._pre_tensors(batch), int(inner_steps))
        return z_adapted.numpy()

    def exploitation_policy(self, adapted: Any | None):
        if adapted is None:
            return self.pi.sampling_fn(z=self.z.numpy())
        return self.pi.sampling_fn(z=np.asarray(adapted, np.float32))

    # -- update ----------------------------------------------------------------------------------
    def _main_step_impl(self, pre: dict | None, post: dict, steps: int):
        """Outer loss and the gradients of θ, β, z (and φ for the dice estimator); r^μ if needed."""
        theta, beta, phi = self.pi.params, self.model.params, self.mu.params
        z = self.z
        dice_to_phi = self.cfg.explore_estimator == "dice"
        with tf.GradientTape(persistent=True) as tape:
            if pre is not None and steps > 0:
                z_adapted, history, inner_loss = adapt_latent(
                    self.cfg, self.pi, self.model, self.mu, theta, beta, phi, tf.convert_to_tensor(z),
                    pre, steps, dice_to_phi)
            else:
                T = tf.shape(post["mask"])[0]
                z_adapted = tf.tile(tf.convert_to_tensor(z)[None], tf.stack([T, 1]))
                history, inner_loss = [], tf.zeros([])
            loss = outer_objective(self.pi, theta, z_adapted, post)
        diag = self._adaptation_diagnostics(pre, history, z_adapted, steps)
        variables = list(theta) + list(beta) + list(phi) + [z]
        grads = tape.gradient(loss, variables + [z_adapted])
        g_z_adapted = grads[-1]
        grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads[:-1], variables)]
        del tape
        r_mu = tf.zeros([1, 1, 1])
        if pre is not None and steps > 0 and self.cfg.explore_estimator == "low_variance":
            r_mu = explore_rewards(self.cfg, self.pi, self.model, theta, beta, history, -g_z_adapted, pre)
        return loss, inner_loss, grads, r_mu, diag

    def _adaptation_diagnostics(self, pre, history, z_adapted, steps) -> dict:
        """Per-task sizes of the inner step and M's fit before and after it (mean and max over tasks).

        ``inner_grad_norm`` is ‖∇_z L_i‖ of the first inner step; ``z_shift`` is ‖z'_i − z‖ after all
        steps; ``inner_error_pre/post`` are M's mean squared error on the standardised target at z and
        z' (regression objective only; the DiCE weights have value 1, so these are plain MSEs).
        """
        z = tf.convert_to_tensor(self.z)
        shift = tf.norm(z_adapted - z[None], axis=-1)
        out = {"diag/z_shift_mean": tf.reduce_mean(shift), "diag/z_shift_max": tf.reduce_max(shift)}
        if pre is None or steps == 0:
            return out
        gnorm = history[0][1]
        out.update({"diag/inner_grad_norm_mean": tf.reduce_mean(gnorm),
                    "diag/inner_grad_norm_max": tf.reduce_max(gnorm)})
        if self.cfg.inner_objective == "regression":
            mask = tf.cast(pre["mask"], z.dtype)
            n_steps = tf.maximum(tf.reduce_sum(mask, axis=[1, 2]), 1.0)
            for name, z_at in (("pre", history[0][0]), ("post", z_adapted)):
                per_step = inner_loss_per_step(self.cfg, self.pi, self.model, self.pi.params,
                                               self.model.params, tf.stop_gradient(z_at), pre)
                err = tf.reduce_sum(per_step * mask, axis=[1, 2]) / n_steps
                out[f"diag/inner_error_{name}_mean"] = tf.reduce_mean(err)
                out[f"diag/inner_error_{name}_max"] = tf.reduce_max(err)
        return out

    def _explore_step_impl(self, pre: dict, advantages: tf.Tensor):
        with tf.GradientTape() as tape:
            loss = explore_policy_loss(self.mu, self.mu.params, pre, advantages)
        return loss, tape.gradient(loss, self.mu.params)

    def compute_gradients(self, pre_batches: list[Batch], post_batch: Batch):
        """Gradients of every parameter group (without applying them) and the losses.

        Returns ``({"theta", "beta", "phi", "z"}: lists of gradients of the loss, info dict)``.
        """
        steps = self.inner_steps if pre_batches else 0
        self._target_stats = {}
        pre = self._pre_tensors(pre_batches[0]) if pre_batches else None
        post = self._post_tensors(post_batch)
        loss, inner_loss, grads, r_mu, diag = self._main_step(pre, post, steps)
        n_theta, n_beta, n_phi = len(self.pi.params), len(self.model.params), len(self.mu.params)
        out = {
            "theta": grads[:n_theta],
            "beta": grads[n_theta:n_theta + n_beta],
            "phi": grads[n_theta + n_beta:n_theta + n_beta + n_phi],
            "z": [grads[-1]],
        }
        explore_loss = 0.0
        if pre is not None and self.cfg.explore_estimator != "dice":
            mask = pre_batches[0].mask
            if self.cfg.explore_estimator == "low_variance":
                adv = low_variance_advantages(r_mu.numpy().astype(np.float64), pre_batches[0].obs, mask)
            else:  # emaml: the task's standardised post-update return rewards every exploration step
                post_ret = post_batch.episode_returns().mean(axis=1)
                post_ret = (post_ret - post_ret.mean()) / (post_ret.std() + 1e-8)
                adv = np.broadcast_to(post_ret[:, None, None], mask.shape) * mask / max(mask.sum(), 1.0)
            e_loss, out["phi"] = self._explore_step(pre, tf.constant(adv, tf.float32))
            explore_loss = float(e_loss)
        info = {"loss/outer": float(loss), "loss/inner": float(inner_loss), "loss/explore": explore_loss,
                **{key: float(value) for key, value in diag.items()}, **self._target_stats}
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
