"""The stability criterion on hand-made curves."""
import numpy as np
import pytest

from mame_tf.stability import is_stable, window_means


def test_window_means_are_first_best_and_last_windows():
    curve = np.concatenate([np.zeros(50), np.full(50, 10.0), np.full(50, 4.0)])
    first, best, final = window_means(curve, 50)
    assert (first, best, final) == pytest.approx((0.0, 10.0, 4.0))


def test_a_collapse_is_unstable_and_a_small_dip_is_not():
    rise = np.linspace(0, 100, 150)
    collapsed = np.concatenate([rise, np.full(100, 20.0)])  # keeps 20 % of its gain
    dipped = np.concatenate([rise, np.full(100, 80.0)])     # keeps ~ 83 % of its gain
    assert not is_stable(collapsed)
    assert is_stable(dipped)
    assert is_stable(rise)


def test_short_curves_are_refused():
    with pytest.raises(ValueError, match="no 50-iteration window"):
        window_means(np.zeros(10), 50)
