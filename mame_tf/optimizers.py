"""Optimisation shared by every algorithm: conjugate gradient, Hessian-vector products, TRPO, Adam.

Parameters are lists of variables (``tf.Variable`` or Keras 3 variables); losses are zero-argument
closures that read them, so the same code serves plain networks and objectives that run through an
inner adaptation step (the TRPO KL of MAML-TRPO is a function of the *pre-update* parameters through
the inner step).

* :func:`hessian_vector_product` — double backprop with nested ``GradientTape``s (exact, no finite
  differences): ``Hv = ∇(∇f · v)``.
* :func:`conjugate_gradient` — solves ``Hx = b`` for symmetric positive-definite ``H`` given only
  products ``v ↦ Hv``.
* :func:`trpo_step` — natural-gradient step on a surrogate loss under a mean-KL trust region, with a
  backtracking line search that accepts only steps that decrease the loss *and* keep the KL within the
  bound; if no step is accepted the parameters are restored exactly.
* :class:`MultiAdam` — Adam with a learning rate per parameter group (MAME: 7e-4 for the networks,
  4e-5 for z), refusing non-finite gradients with an error that names the variable.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf


def _value(v):
    """The tensor behind a tf.Variable or a Keras variable."""
    return v.value if isinstance(v, keras.Variable) else v


def flatten(tensors: Sequence[tf.Tensor]) -> tf.Tensor:
    """Concatenate tensors into one flat vector; every tensor must be given (a ``None`` gradient is an error)."""
    return tf.concat([tf.reshape(_value(t), [-1]) for t in tensors], axis=0)


def unflatten(flat: tf.Tensor, like: Sequence) -> list[tf.Tensor]:
    """Split a flat vector into tensors shaped like ``like``."""
    out, i = [], 0
    for v in like:
        n = int(np.prod(v.shape))
        out.append(tf.reshape(flat[i:i + n], v.shape))
        i += n
    return out


def _grads(tape, target, params):
    grads = tape.gradient(target, params)
    return [tf.zeros_like(_value(p)) if g is None else g for g, p in zip(grads, params)]


def hessian_vector_product(f: Callable[[], tf.Tensor], params: Sequence, damping: float = 0.0):
    """Returns ``v ↦ (∇²f + damping·I) v`` for flat ``v``, by double backprop."""

    def hvp(v: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                value = f()
            g = flatten(_grads(inner, value, params))
            gv = tf.reduce_sum(g * tf.stop_gradient(v))
        return flatten(_grads(outer, gv, params)) + damping * v

    return hvp


def conjugate_gradient(hvp_fn: Callable[[tf.Tensor], tf.Tensor], b: tf.Tensor, iters: int = 10,
                       residual_tol: float = 1e-10, return_residual: bool = False):
    """Approximately solve ``H x = b`` with at most ``iters`` conjugate-gradient iterations.

    With ``return_residual`` returns ``(x, r)`` where ``r = b − H x`` is CG's running residual, so
    that ``xᵀH x = xᵀ(b − r)`` costs no further product with ``H``.
    """
    x = tf.zeros_like(b)
    r = tf.identity(b)
    p = tf.identity(b)
    rr = tf.reduce_sum(r * r)
    for _ in range(iters):
        if float(rr) < residual_tol:
            break
        hp = hvp_fn(p)
        alpha = rr / (tf.reduce_sum(p * hp) + 1e-20)
        x = x + alpha * p
        r = r - alpha * hp
        rr_new = tf.reduce_sum(r * r)
        p = r + (rr_new / rr) * p
        rr = rr_new
    return (x, r) if return_residual else x


def _assign_flat(params, flat):
    for v, t in zip(params, unflatten(flat, params)):
        v.assign(tf.cast(t, v.dtype))


def trpo_step(
    params: Sequence,
    loss_and_gradient_fn: Callable[[], tuple[tf.Tensor, tf.Tensor]],
    loss_and_kl_fn: Callable[[], tuple[tf.Tensor, tf.Tensor]],
    hvp_fn: Callable[[tf.Tensor], tf.Tensor],
    max_kl: float = 0.01,
    cg_iters: int = 10,
    backtrack_ratio: float = 0.8,
    max_backtracks: int = 15,
) -> dict[str, float]:
    """One TRPO update of ``params`` minimising a surrogate loss subject to its mean KL ``≤ max_kl``.

    ``loss_and_gradient_fn()`` gives the surrogate and its flat gradient ``g``, ``loss_and_kl_fn()`` the
    surrogate and the KL at the current ``params`` and ``hvp_fn(v)`` the (damped) product of the KL's
    Hessian with a flat vector (e.g. :func:`hessian_vector_product`). The search direction is
    ``x = H⁻¹g`` by conjugate gradient, scaled so the quadratic KL model equals ``max_kl``; the step is
    then shrunk by ``backtrack_ratio`` up to ``max_backtracks`` times until the loss decreases and the
    exact KL is within the bound, else the parameters are restored.
    """
    if max_kl <= 0:
        raise ValueError(f"max_kl={max_kl} must be > 0")
    old = flatten(params)
    loss_before, g = loss_and_gradient_fn()
    loss_before = float(loss_before)
    direction, residual = conjugate_gradient(hvp_fn, -g, iters=cg_iters, return_residual=True)
    shs = float(tf.reduce_sum(direction * (-g - residual)))  # = directionᵀ H direction
    metrics = {"loss_before": loss_before, "loss_after": loss_before, "kl": 0.0, "accepted": 0.0,
               "num_backtracks": float(max_backtracks)}
    if not np.isfinite(shs) or shs <= 0:
        return metrics
    full_step = direction * np.sqrt(2.0 * max_kl / shs)
    for k in range(max_backtracks):
        _assign_flat(params, old + (backtrack_ratio ** k) * full_step)
        loss, kl = (float(x) for x in loss_and_kl_fn())
        if np.isfinite(loss) and np.isfinite(kl) and loss < loss_before and kl <= max_kl:
            metrics.update(loss_after=loss, kl=kl, accepted=1.0, num_backtracks=float(k))
            return metrics
    _assign_flat(params, old)
    return metrics


def check_finite(values: dict[str, float]) -> None:
    """Raise ``FloatingPointError("<name> became <value>")`` for the first NaN or Inf in ``values``."""
    for name, value in values.items():
        if not math.isfinite(float(value)):
            raise FloatingPointError(f"{name} became {float(value)}")


class MultiAdam:
    """Adam with one learning rate per named group of variables.

    ``groups = {"networks": (7e-4, [...]), "z": (4e-5, [z])}``. ``apply({name: grads}, losses)`` checks
    that every loss in ``losses`` and every gradient is finite first and raises ``FloatingPointError``
    naming the loss (or, for a finite loss with a non-finite gradient, the variable) otherwise, so a
    bad batch never reaches the weights.
    """

    def __init__(self, groups: dict[str, tuple[float, Sequence]]):
        self.groups = {}
        self.optimizers = {}
        for name, (lr, variables) in groups.items():
            if not lr > 0:
                raise ValueError(f"learning rate of group {name!r} is {lr}; it must be > 0")
            self.groups[name] = list(variables)
            self.optimizers[name] = keras.optimizers.Adam(learning_rate=lr, name=f"adam_{name}")
            self.optimizers[name].build(self.groups[name])

    def apply(self, grads_by_group: dict[str, Sequence[tf.Tensor]], losses: dict[str, float] | None = None) -> None:
        check_finite(losses or {})
        for name, grads in grads_by_group.items():
            for g, v in zip(grads, self.groups[name]):
                if g is not None and not bool(tf.reduce_all(tf.math.is_finite(g))):
                    raise FloatingPointError(f"non-finite gradient for variable {v.path if hasattr(v, 'path') else v.name}")
        for name, grads in grads_by_group.items():
            pairs = [(g, v) for g, v in zip(grads, self.groups[name]) if g is not None]
            self.optimizers[name].apply_gradients(pairs)
