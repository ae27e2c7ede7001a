"""Networks: shapes, per-task batching, exact gradients through the functional forward (float64 FD)."""
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from mame_tf.networks import GaussianMLPPolicy, RegressionMLP, gaussian, gaussian_family, gaussian_kl

tfd = tfp.distributions


def _f64(params):
    return [tf.constant(np.asarray(p, dtype=np.float64)) for p in params]


def test_policy_shapes_and_defaults():
    pol = GaussianMLPPolicy(obs_dim=3, act_dim=2, seed=0)
    assert pol.hidden_sizes == (100, 100)
    assert [tuple(p.shape) for p in pol.params] == [(3, 100), (100,), (100, 100), (100,), (100, 2), (2,), (2,)]
    np.testing.assert_allclose(pol.log_std.numpy(), 0.0)  # init std 1.0
    obs = np.random.default_rng(0).normal(size=(4, 5, 6, 3))
    mean, log_std = pol.forward(pol.params, obs)
    assert mean.shape == (4, 5, 6, 2) and log_std.shape == (4, 5, 6, 2)


def test_same_seed_same_weights_and_bad_arguments():
    a, b = GaussianMLPPolicy(3, 2, seed=7), GaussianMLPPolicy(3, 2, seed=7)
    for p, q in zip(a.params, b.params):
        np.testing.assert_array_equal(p.numpy(), q.numpy())
    with pytest.raises(ValueError, match="activation='gelu'.*valid choices"):
        GaussianMLPPolicy(3, 2, activation="gelu")
    with pytest.raises(ValueError, match="hidden_sizes"):
        GaussianMLPPolicy(3, 2, hidden_sizes=(0,))
    with pytest.raises(ValueError, match="latent_dim=2 but z was not given"):
        GaussianMLPPolicy(3, 2, latent_dim=2).forward(GaussianMLPPolicy(3, 2, latent_dim=2).params, np.zeros((1, 3)))


def test_per_task_forward_equals_separate_forwards():
    rng = np.random.default_rng(1)
    pol = GaussianMLPPolicy(3, 2, hidden_sizes=(8, 8), latent_dim=4, seed=1)
    T = 3
    per_task = [p + tf.constant(rng.normal(scale=0.1, size=tuple(p.shape)), tf.float32) for p in pol.tile_params(T)]
    z = tf.constant(rng.normal(size=(T, 4)), tf.float32)
    obs = rng.normal(size=(T, 5, 3)).astype(np.float32)
    mean, log_std = pol.forward(per_task, obs, z, per_task=True)
    for t in range(T):
        m_t, ls_t = pol.forward([p[t] for p in per_task], obs[t:t + 1], z[t])
        np.testing.assert_allclose(mean[t].numpy(), m_t[0].numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(log_std[t].numpy(), ls_t[0].numpy(), rtol=1e-6)


def _gaussians():
    rng = np.random.default_rng(2)
    m1, m2 = rng.normal(size=(2, 4, 3))
    s1, s2 = rng.normal(scale=0.3, size=(2, 4, 3))
    return m1, s1, m2, s2, rng.normal(size=(4, 3))


def _diagonal_gaussian_log_prob(a, mean, log_std):
    return -0.5 * np.sum(((a - mean) / np.exp(log_std)) ** 2 + 2 * log_std + np.log(2 * np.pi), axis=-1)


def test_log_prob_and_kl_are_the_diagonal_gaussian_formulas():
    """tfp's distribution, as built here (scale exp(log_std), KL(p ‖ q) in that order), in float64."""
    m1, s1, m2, s2, a = _gaussians()
    kl = np.sum(s2 - s1 + (np.exp(2 * s1) + (m1 - m2) ** 2) / (2 * np.exp(2 * s2)) - 0.5, axis=-1)
    np.testing.assert_allclose(gaussian(tf.constant(m1), tf.constant(s1)).log_prob(a),
                               _diagonal_gaussian_log_prob(a, m1, s1), rtol=1e-12)
    np.testing.assert_allclose(gaussian_kl(m1, s1, m2, s2), kl, rtol=1e-12)
    # The policy's log_prob: with zero weights its mean is the output bias for every observation.
    pol = GaussianMLPPolicy(3, 3, hidden_sizes=(4,), seed=2)
    params = _f64([np.zeros(p.shape) for p in pol.params[:-2]]) + [tf.constant(m1[0]), tf.constant(s1[0])]
    np.testing.assert_allclose(pol.log_prob(params, np.ones((4, 3)), a),
                               _diagonal_gaussian_log_prob(a, m1[0], s1[0]), rtol=1e-12)


def test_gaussian_family_substitutes_and_restores():
    m1, s1, m2, s2, a = _gaussians()
    built = []

    def independent(mean, log_std):
        built.append(mean)
        return tfd.Independent(tfd.Normal(mean, tf.exp(log_std)), 1)

    with gaussian_family(independent):
        lp, kl = gaussian(tf.constant(m1), tf.constant(s1)).log_prob(a), gaussian_kl(m1, s1, m2, s2)
    assert len(built) == 3
    np.testing.assert_allclose(lp, gaussian(tf.constant(m1), tf.constant(s1)).log_prob(a), rtol=1e-12)
    np.testing.assert_allclose(kl, gaussian_kl(m1, s1, m2, s2), rtol=1e-12)
    with pytest.raises(RuntimeError):
        with gaussian_family(independent):
            raise RuntimeError
    gaussian_kl(m1, s1, m2, s2)
    assert len(built) == 3  # restored after the exception


def test_keras_call_is_the_forward_on_the_variables():
    rng = np.random.default_rng(6)
    pol = GaussianMLPPolicy(3, 2, hidden_sizes=(8,), latent_dim=2, seed=6)
    net = RegressionMLP(5, hidden_sizes=(8,), latent_dim=2, seed=7)
    obs, z = rng.normal(size=(2, 4, 3)).astype(np.float32), np.array([0.5, -1.0], np.float32)
    x = rng.normal(size=(2, 4, 5)).astype(np.float32)
    np.testing.assert_allclose(pol(obs, z).numpy(), pol.forward(pol.params, obs, z)[0].numpy(), rtol=1e-6)
    np.testing.assert_allclose(net(x, z).numpy(), net.forward(net.params, x, z).numpy(), rtol=1e-6)


def _central_fd(f, params, eps=1e-6):
    """d f / d params by central differences, param by param, element by element (float64)."""
    grads = []
    for i, p in enumerate(params):
        g = np.zeros(p.shape)
        flat = p.numpy().ravel()
        for j in range(flat.size):
            for sign in (1, -1):
                q = flat.copy()
                q[j] += sign * eps
                moved = list(params)
                moved[i] = tf.constant(q.reshape(p.shape))
                g.flat[j] += sign * float(f(moved)) / (2 * eps)
        grads.append(g)
    return grads


@pytest.mark.parametrize("per_task", [False, True])
def test_gradients_through_forward_are_exact_float64(per_task):
    rng = np.random.default_rng(3)
    T = 2
    pol = GaussianMLPPolicy(2, 2, hidden_sizes=(3,), latent_dim=1, activation="tanh", seed=3)
    net = RegressionMLP(4, hidden_sizes=(3,), latent_dim=1, activation="tanh", seed=4)
    pol_p = _f64(pol.params)
    net_p = _f64(net.params)
    if per_task:
        pol_p = [tf.constant(np.stack([p.numpy() + rng.normal(scale=0.1, size=p.shape) for _ in range(T)])) for p in pol_p]
    z = tf.constant(rng.normal(size=(T, 1)))
    obs = rng.normal(size=(T, 3, 2))
    act = rng.normal(size=(T, 3, 2))
    n_pol = len(pol_p)

    def objective(all_params):
        p, q, zz = all_params[:n_pol], all_params[n_pol:-1], all_params[-1]
        lp = pol.log_prob(p, obs, act, zz, per_task=per_task)
        pred = net.forward(q, np.concatenate([obs, act], -1), zz)
        return tf.reduce_sum(lp * pred) + tf.reduce_sum(tf.square(pred))

    params = pol_p + net_p + [z]
    with tf.GradientTape() as tape:
        tape.watch(params)
        value = objective(params)
    analytic = tape.gradient(value, params)
    numeric = _central_fd(objective, params)
    for a, n in zip(analytic, numeric):
        np.testing.assert_allclose(a.numpy(), n, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("latent", [None, "shared", "per_task"])
@pytest.mark.parametrize("per_task", [False, True])
def test_sampling_fn_matches_forward(activation, latent, per_task):
    """The sampler's numpy forward computes the TF forward: shared or distinct per-task parameters,
    no z, one z for all tasks or one per task."""
    rng = np.random.default_rng(5)
    pol = GaussianMLPPolicy(3, 2, hidden_sizes=(8, 4), activation=activation,
                            latent_dim=0 if latent is None else 2, seed=5)
    obs = rng.normal(size=(2, 4, 3)).astype(np.float32)
    z = {None: None, "shared": np.array([0.5, -1.0], np.float32),
         "per_task": np.array([[0.5, -1.0], [2.0, 0.0]], np.float32)}[latent]
    params = pol.params
    if per_task:  # a different perturbation for each task, so a mix-up of tasks would show
        params = [p + tf.constant(rng.normal(scale=0.3, size=p.shape), tf.float32) for p in pol.tile_params(2)]
    mean, log_std = pol.sampling_fn(params=params if per_task else None, z=z, per_task=per_task)(obs)
    ref_mean, ref_log_std = pol.forward(params, obs, z, per_task=per_task)
    np.testing.assert_allclose(mean, ref_mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(log_std, ref_log_std.numpy(), rtol=1e-6, atol=1e-7)
    assert mean.shape == log_std.shape == (2, 4, 2)


def test_sampling_fn_reads_the_parameters_when_made():
    pol = GaussianMLPPolicy(3, 2, hidden_sizes=(8,), seed=0)
    obs = np.ones((1, 2, 3), np.float32)
    fn = pol.sampling_fn()
    before = fn(obs)[0].copy()
    pol.params[0].assign_add(tf.ones_like(pol.params[0]))
    np.testing.assert_array_equal(fn(obs)[0], before)
    assert not np.allclose(pol.sampling_fn()(obs)[0], before)
    with pytest.raises(ValueError, match="latent_dim=0 but z was given"):
        pol.sampling_fn(z=np.zeros(2, np.float32))
