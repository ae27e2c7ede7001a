"""The stability criterion of a training curve.

With ``first``, ``best`` and ``final`` the means of the first, the best (highest-mean sliding) and the
last ``window``-iteration windows of a curve, a run is *stable* when it keeps at least three quarters
of what it gained over its first window at its best::

    final ≥ best − 0.25 · (best − first)

A run that never rises above its first window (``best == first``) is stable only if it ends there
too, so the criterion measures holding on to progress, not making it.
"""
from __future__ import annotations

import numpy as np


def window_means(curve, window: int = 50) -> tuple[float, float, float]:
    """``(first, best, final)`` window means of ``curve`` (1-D, one value per iteration)."""
    y = np.asarray(curve, dtype=np.float64)
    if y.ndim != 1:
        raise ValueError(f"curve must be one-dimensional, got shape {y.shape}")
    if window < 1 or len(y) < window:
        raise ValueError(f"a curve of {len(y)} iterations has no {window}-iteration window")
    sliding = np.convolve(y, np.ones(window) / window, mode="valid")
    return float(sliding[0]), float(sliding.max()), float(sliding[-1])


def is_stable(curve, window: int = 50, tolerance: float = 0.25) -> bool:
    """Whether ``final ≥ best − tolerance · (best − first)`` (see the module docstring)."""
    first, best, final = window_means(curve, window)
    return final >= best - tolerance * (best - first)
