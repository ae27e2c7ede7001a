"""Means over the real steps of ``[T, E, H]`` tensors, and standardisation over the meta-batch.

``mask`` is 1 at real steps and 0 after an episode terminated; a task (or batch) with no real step
counts as one step, so its mean is 0 rather than NaN.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf


def steps_per_task(mask: tf.Tensor, dtype=None) -> tf.Tensor:
    """``N_i = max(Σ_{e,t} mask, 1)`` for every task: ``[T]``."""
    mask = tf.cast(mask, dtype or mask.dtype)
    return tf.maximum(tf.reduce_sum(mask, axis=[1, 2]), 1.0)


def masked_mean_per_task(x: tf.Tensor, mask: tf.Tensor, weights: tf.Tensor | None = None) -> tf.Tensor:
    """``Σ_{e,t} w·x / N_i`` for every task, ``[T]``; the weights ``w`` default to the mask.

    Weights (e.g. the DiCE weights of MAME's inner loss) must be 0 where the mask is.
    """
    mask = tf.cast(mask, x.dtype)
    w = mask if weights is None else weights
    return tf.reduce_sum(x * w, axis=[1, 2]) / steps_per_task(mask)


def masked_mean(x: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """``Σ x·mask / max(Σ mask, 1)`` over every axis: one scalar for the whole meta-batch."""
    mask = tf.cast(mask, x.dtype)
    return tf.reduce_sum(x * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


def standardize(x, mask: np.ndarray | None = None, eps: float = 1e-8):
    """``(x − mean) / (std + eps)`` over the whole meta-batch (population std).

    ``x`` may be a numpy array (computed in its own precision, float64 for returns) or a tensor
    (computed in TensorFlow, differentiable). With ``mask`` (numpy only) the moments are taken over
    the real steps and the result is 0 at the others; returns ``(standardised, mean, std)`` then.
    """
    if isinstance(x, (tf.Tensor, tf.Variable)):
        return (x - tf.reduce_mean(x)) / (tf.math.reduce_std(x) + eps)
    if mask is None:
        return (x - x.mean()) / (x.std() + eps)
    valid = mask > 0
    mean = x[valid].mean() if valid.any() else 0.0
    std = x[valid].std() if valid.any() else 1.0
    return (x - mean) / (std + eps) * mask, mean, std
