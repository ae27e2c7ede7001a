"""The linear feature baseline (Duan et al. 2016), fitted per task and batched over tasks.

Per step the features are ``[o, o², t/100, (t/100)², (t/100)³, 1]`` with ``o`` the observation clipped
to ±10 and ``t`` the step index. For each task the weights solve the ridge regression of the
discounted returns on the features of its real (unmasked) steps,
``(FᵀF + λI) w = Fᵀ G`` with ``λ = 1e-5``, multiplied by 10 and retried while the solution is not
finite. All tasks are solved in one batched ``np.linalg.solve`` on ``[T, F, F]``.
"""
from __future__ import annotations

import numpy as np

from mame_tf.returns import discounted_returns, gae, normalize_per_task


def features(obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``obs [T, E, H, d], mask [T, E, H] -> [T, E, H, 2d + 4]`` (zero rows at masked steps)."""
    o = np.clip(np.asarray(obs, np.float64), -10.0, 10.0)
    H = o.shape[2]
    t = np.broadcast_to((np.arange(H) / 100.0)[None, None, :, None], o.shape[:3] + (1,))
    feats = np.concatenate([o, o * o, t, t**2, t**3, np.ones_like(t)], axis=-1)
    return feats * mask[..., None]


class LinearFeatureBaseline:
    """Per-task linear value function ``V(s_t) = w_taskᵀ φ(s_t, t)``."""

    def __init__(self, reg_coeff: float = 1e-5):
        self.reg_coeff = reg_coeff
        self.weights: np.ndarray | None = None  # [T, F]

    def fit(self, obs: np.ndarray, returns: np.ndarray, mask: np.ndarray) -> "LinearFeatureBaseline":
        f = features(obs, mask)
        T, F = f.shape[0], f.shape[-1]
        f = f.reshape(T, -1, F)
        y = (np.asarray(returns, np.float64) * mask).reshape(T, -1)
        ft = np.swapaxes(f, 1, 2)
        gram = ft @ f  # batched matrix products (BLAS), not einsum's loops
        rhs = (ft @ y[..., None])[..., 0]
        reg = self.reg_coeff
        eye = np.eye(F)[None]
        for _ in range(5):
            w = np.linalg.solve(gram + reg * eye, rhs[..., None])[..., 0]
            if np.all(np.isfinite(w)):
                break
            reg *= 10.0
        self.weights = w
        return self

    def predict(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if self.weights is None:
            raise RuntimeError("LinearFeatureBaseline.predict() called before fit()")
        f = features(obs, mask)
        T, F = f.shape[0], f.shape[-1]
        return (f.reshape(T, -1, F) @ self.weights[..., None]).reshape(mask.shape) * mask


def fit_predict_values(obs: np.ndarray, returns: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Fit the per-task baseline on ``returns`` and return its values ``[T, E, H]``."""
    return LinearFeatureBaseline().fit(obs, returns, mask).predict(obs, mask)


def compute_advantages(rewards, obs, mask, discount: float, gae_lambda: float, normalize: bool = True):
    """Per-task linear-baseline advantages: returns ``(advantages, returns)``, both ``[T, E, H]``."""
    returns = discounted_returns(rewards, mask, discount)
    values = fit_predict_values(obs, returns, mask)
    adv = gae(rewards, values, mask, discount, gae_lambda)
    if normalize:
        adv = normalize_per_task(adv, mask)
    return adv, returns
