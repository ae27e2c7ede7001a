"""Discounted returns, GAE(λ) and per-task normalisation, batched over tasks and masked.

Arrays are ``[T, E, H]`` (tasks, episodes, steps); ``mask`` is 1 for real steps and 0 after an
episode terminated. Rewards at masked steps are ignored, and every output is 0 there. A value after
the last step (termination or the horizon) is taken as 0, as the reference implementations do with
the linear feature baseline.
"""
from __future__ import annotations

import numpy as np


def discounted_returns(rewards: np.ndarray, mask: np.ndarray, discount: float) -> np.ndarray:
    """Reward-to-go ``G_t = Σ_{t' ≥ t} γ^{t'−t} r_{t'}`` along the last axis."""
    r = np.asarray(rewards, np.float64) * mask
    out = np.zeros_like(r)
    running = np.zeros(r.shape[:-1])
    for t in range(r.shape[-1] - 1, -1, -1):
        running = r[..., t] + discount * running
        out[..., t] = running
    return out * mask


def gae(rewards, values, mask, discount: float, gae_lambda: float) -> np.ndarray:
    """Generalised advantage estimation.

    ``δ_t = r_t + γ V_{t+1} − V_t`` with ``V`` zero after the last real step, and
    ``A_t = Σ_{l ≥ 0} (γλ)^l δ_{t+l}``. With λ = 1 this is ``G_t − V_t``.
    """
    r = np.asarray(rewards, np.float64) * mask
    v = np.asarray(values, np.float64) * mask
    v_next = np.concatenate([v[..., 1:], np.zeros(v.shape[:-1] + (1,))], axis=-1)
    delta = (r + discount * v_next - v) * mask
    out = np.zeros_like(delta)
    running = np.zeros(delta.shape[:-1])
    for t in range(delta.shape[-1] - 1, -1, -1):
        running = delta[..., t] + discount * gae_lambda * running
        out[..., t] = running
    return out * mask


def normalize_per_task(x: np.ndarray, mask: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """``(x − mean) / (std + eps)`` per task over its real steps (axes E, H); 0 at masked steps."""
    x = np.asarray(x, np.float64)
    axes = tuple(range(1, x.ndim))
    n = np.maximum(mask.sum(axis=axes, keepdims=True), 1.0)
    mean = (x * mask).sum(axis=axes, keepdims=True) / n
    var = (np.square(x - mean) * mask).sum(axis=axes, keepdims=True) / n
    return (x - mean) / (np.sqrt(var) + eps) * mask
