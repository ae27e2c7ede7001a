"""DiCE, the infinitely differentiable Monte-Carlo estimator (Foerster et al., 2018).

The magic box ``⊡(x) = exp(x − ⊥(x))`` evaluates to 1 and has derivative ``⊡(x)·∂x``. Applied to the
causal running sum of log-probabilities ``τ_t = Σ_{t' ≤ t} log μ(a_{t'}|s_{t'})`` it weights a per-step
quantity ``c_t`` so that ``∇ E[Σ_t c_t] = E[∇ Σ_t ⊡(τ_t) c_t]`` to any order: each step's term gets the
score-function gradient of exactly the actions that could have influenced it.
"""
from __future__ import annotations

import tensorflow as tf


def magic_box(x: tf.Tensor) -> tf.Tensor:
    """``exp(x − stop_gradient(x))``: value 1, gradient ``∂x``."""
    return tf.exp(x - tf.stop_gradient(x))


def dice_weights(logp: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """``⊡(τ_t)`` for ``logp, mask: [..., H]``: the magic box of the causal cumulative log-probability."""
    logp = tf.convert_to_tensor(logp)
    mask = tf.cast(mask, logp.dtype)
    return magic_box(tf.cumsum(logp * mask, axis=-1)) * mask
