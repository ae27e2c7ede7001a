"""Returns, GAE, per-task normalisation and the linear feature baseline, against hand-computed values."""
import numpy as np
import pytest

from mame_tf.returns import discounted_returns, gae, normalize_per_task
from mame_tf.value_functions import LinearFeatureBaseline, compute_advantages, features

# Two tasks, one episode each, horizon 3; task 1's episode terminates after its second step.
REWARDS = np.array([[[1.0, 2.0, 3.0]], [[1.0, 1.0, 7.0]]])
MASK = np.array([[[1.0, 1.0, 1.0]], [[1.0, 1.0, 0.0]]])


def test_discounted_returns_golden():
    g = discounted_returns(REWARDS, MASK, 0.5)
    # task 0: G2 = 3, G1 = 2 + 0.5*3 = 3.5, G0 = 1 + 0.5*3.5 = 2.75
    # task 1: the 7 after termination is ignored: G1 = 1, G0 = 1 + 0.5 = 1.5, G2 = 0 (masked)
    np.testing.assert_allclose(g, [[[2.75, 3.5, 3.0]], [[1.5, 1.0, 0.0]]])


def test_gae_golden():
    values = np.array([[[1.0, 1.0, 1.0]], [[2.0, 0.5, 9.0]]])
    adv = gae(REWARDS, values, MASK, discount=0.5, gae_lambda=0.5)
    # task 0: δ = [1 + .5*1 - 1, 2 + .5*1 - 1, 3 + 0 - 1] = [0.5, 1.5, 2.0]
    #         A2 = 2, A1 = 1.5 + .25*2 = 2, A0 = 0.5 + .25*2 = 1.0
    # task 1 (ends after step 1, V after the end = 0): δ = [1 + .5*.5 - 2, 1 + 0 - .5] = [-0.75, 0.5]
    #         A1 = 0.5, A0 = -0.75 + .25*.5 = -0.625
    np.testing.assert_allclose(adv, [[[1.0, 2.0, 2.0]], [[-0.625, 0.5, 0.0]]])
    # λ = 1: advantages are returns minus values
    adv1 = gae(REWARDS, values, MASK, 0.5, 1.0)
    np.testing.assert_allclose(adv1, (discounted_returns(REWARDS, MASK, 0.5) - values) * MASK)


def test_normalize_per_task_golden():
    x = np.array([[[1.0, 2.0, 3.0]], [[4.0, 8.0, 100.0]]])
    out = normalize_per_task(x, MASK, eps=0.0)
    s = np.sqrt(2.0 / 3.0)
    # task 0: mean 2, std sqrt(2/3); task 1 over its 2 real steps: mean 6, std 2; the masked 100 is ignored
    np.testing.assert_allclose(out, [[[-1 / s, 0.0, 1 / s]], [[-1.0, 1.0, 0.0]]])


def test_features_golden():
    obs = np.array([[[[20.0], [-1.0]]]])  # [T=1, E=1, H=2, d=1]
    f = features(obs, np.ones((1, 1, 2)))
    # [clip(o), clip(o)^2, t/100, (t/100)^2, (t/100)^3, 1]
    np.testing.assert_allclose(f[0, 0, 0], [10.0, 100.0, 0.0, 0.0, 0.0, 1.0])
    np.testing.assert_allclose(f[0, 0, 1], [-1.0, 1.0, 0.01, 1e-4, 1e-6, 1.0])


def test_linear_baseline_recovers_a_linear_function_per_task():
    rng = np.random.default_rng(0)
    T, E, H, d = 3, 6, 8, 2
    obs = rng.uniform(-2, 2, size=(T, E, H, d))
    mask = np.ones((T, E, H))
    mask[0, 0, 5:] = 0
    w = rng.normal(size=(T, 2 * d + 4))
    target = np.einsum("tehf,tf->teh", features(obs, mask), w)
    values = LinearFeatureBaseline().fit(obs, target, mask).predict(obs, mask)
    np.testing.assert_allclose(values, target * mask, rtol=1e-3, atol=1e-3)  # ridge 1e-5 shrinks slightly
    # per-task independence: changing task 2's data leaves tasks 0 and 1 untouched
    target2 = target.copy()
    target2[2] += 5.0
    values2 = LinearFeatureBaseline().fit(obs, target2, mask).predict(obs, mask)
    np.testing.assert_allclose(values2[:2], values[:2], atol=1e-9)
    assert not np.allclose(values2[2], values[2])


def test_compute_advantages_normalises_per_task_and_masks():
    rng = np.random.default_rng(1)
    rewards = rng.normal(size=(2, 4, 6))
    mask = np.ones((2, 4, 6))
    mask[1, 2, 3:] = 0
    obs = rng.normal(size=(2, 4, 6, 3))
    adv, ret = compute_advantages(rewards, obs, mask, 0.99, 1.0)
    for t in range(2):
        valid = adv[t][mask[t] > 0]
        assert valid.mean() == pytest.approx(0.0, abs=1e-9) and valid.std() == pytest.approx(1.0, abs=1e-6)
    assert (adv[mask == 0] == 0).all() and (ret[mask == 0] == 0).all()
