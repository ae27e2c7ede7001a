"""Shared optimisers: conjugate gradient, Hessian-vector products, the TRPO step, MultiAdam."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from mame_tf.optimizers import MultiAdam, conjugate_gradient, flatten, hessian_vector_product, trpo_step, unflatten


def test_conjugate_gradient_matches_direct_solve():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20, 20))
    spd = a @ a.T + 20 * np.eye(20)
    b = rng.normal(size=20)
    x = conjugate_gradient(lambda v: tf.linalg.matvec(tf.constant(spd), v), tf.constant(b), iters=60,
                           residual_tol=1e-30)
    np.testing.assert_allclose(x.numpy(), np.linalg.solve(spd, b), rtol=1e-8, atol=1e-10)


def test_conjugate_gradient_residual_gives_the_quadratic_form_after_few_iterations():
    """The TRPO step scales its direction by xᵀHx computed as xᵀ(b − r) from CG's residual."""
    rng = np.random.default_rng(1)
    a = rng.normal(size=(30, 30))
    spd = a @ a.T + 0.1 * np.eye(30)  # ill-conditioned: 5 iterations are far from the solution
    b = rng.normal(size=30)
    x, r = conjugate_gradient(lambda v: tf.linalg.matvec(tf.constant(spd), v), tf.constant(b), iters=5,
                              return_residual=True)
    x, r = x.numpy(), r.numpy()
    assert np.linalg.norm(spd @ x - b) > 1e-2 * np.linalg.norm(b)  # truly not converged
    np.testing.assert_allclose(r, b - spd @ x, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(x @ (b - r), x @ spd @ x, rtol=1e-9)


def test_hessian_vector_product_matches_finite_differences():
    rng = np.random.default_rng(1)
    w1 = tf.Variable(rng.normal(size=(3, 4)))
    w2 = tf.Variable(rng.normal(size=(4,)))
    x = tf.constant(rng.normal(size=(5, 3)))
    params = [w1, w2]

    def f():
        return tf.reduce_sum(tf.tanh(x @ w1) ** 2 * w2) + tf.reduce_sum(w2 ** 3)

    v = tf.constant(rng.normal(size=16))
    hv = hessian_vector_product(f, params)(v).numpy()

    def grad_at(flat):
        for p, t in zip(params, unflatten(tf.constant(flat), params)):
            p.assign(t)
        with tf.GradientTape() as tape:
            value = f()
        return flatten(tape.gradient(value, params)).numpy()

    base = flatten(params).numpy()
    eps = 1e-6
    fd = (grad_at(base + eps * v.numpy()) - grad_at(base - eps * v.numpy())) / (2 * eps)
    grad_at(base)
    np.testing.assert_allclose(hv, fd, rtol=1e-6, atol=1e-8)


def _logistic_problem(seed=0):
    rng = np.random.default_rng(seed)
    X = tf.constant(rng.normal(size=(64, 3)))
    y = tf.constant((rng.random(64) < 0.5).astype(np.float64))
    w = tf.Variable(rng.normal(scale=0.1, size=3))
    w_old = tf.constant(w.numpy())

    def probs(wv):
        return tf.sigmoid(tf.linalg.matvec(X, wv))

    def loss():
        return -tf.reduce_mean(y * tf.math.log(probs(w)) + (1 - y) * tf.math.log(1 - probs(w)))

    def kl():
        p, q = probs(w_old), probs(w)
        return tf.reduce_mean(p * tf.math.log(p / q) + (1 - p) * tf.math.log((1 - p) / (1 - q)))

    return w, loss, kl


def test_trpo_step_respects_the_bound_and_improves():
    w, loss, kl = _logistic_problem()
    before = float(loss())
    result = trpo_step([w], lambda: (loss(), flatten(_grad(loss, w))), lambda: (loss(), kl()),
                       hessian_vector_product(kl, [w], 1e-5), max_kl=0.01)
    assert result["accepted"] == 1.0
    assert float(kl()) <= 0.01 + 1e-12
    assert float(loss()) < before


def test_trpo_step_restores_parameters_when_no_step_is_accepted():
    """A gradient with the wrong sign: every candidate step raises the loss, so none is accepted."""
    target = tf.constant([1.0, -2.0, 0.5], tf.float64)
    w = tf.Variable([0.3, 0.1, -0.2], dtype=tf.float64)
    w0 = tf.constant(w.numpy())
    loss = lambda: tf.reduce_sum(tf.square(w - target))  # noqa: E731
    kl = lambda: tf.reduce_sum(tf.square(w - w0))  # noqa: E731
    start = w.numpy().copy()
    result = trpo_step([w], lambda: (loss(), -flatten(_grad(loss, w))), lambda: (loss(), kl()),
                       hessian_vector_product(kl, [w], 1e-5), max_kl=0.01)
    assert result["accepted"] == 0.0
    np.testing.assert_array_equal(w.numpy(), start)


def _grad(f, w):
    with tf.GradientTape() as tape:
        value = f()
    return [tape.gradient(value, w)]


def test_multi_adam_groups_and_non_finite_gradients():
    a = tf.Variable(np.zeros(2, np.float32), name="a")
    k = keras.Variable(np.zeros(3, np.float32), name="kv")
    opt = MultiAdam({"fast": (0.1, [a]), "slow": (0.001, [k])})
    opt.apply({"fast": [tf.ones(2)], "slow": [tf.ones(3)]})
    assert a.numpy()[0] == pytest.approx(-0.1, rel=1e-3) and k.numpy()[0] == pytest.approx(-0.001, rel=1e-3)
    with pytest.raises(FloatingPointError, match="kv"):
        opt.apply({"fast": [tf.ones(2)], "slow": [tf.constant([1.0, np.nan, 0.0])]})
    assert a.numpy()[0] == pytest.approx(-0.1, rel=1e-3)  # nothing was applied
    with pytest.raises(ValueError, match="learning rate"):
        MultiAdam({"x": (0.0, [a])})
