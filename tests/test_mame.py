"""MAME: exact second-order gradients, DiCE on an enumerable problem, the low-variance estimator, ablations."""
import dataclasses
import itertools

import numpy as np
import pytest
import tensorflow as tf

from mame_tf.algorithm import AlgorithmSettings
from mame_tf.batch import Batch
from mame_tf.dice import dice_weights
from mame_tf.mame import MAME, MAMEConfig, adapt_latent, outer_objective
from mame_tf.processed import Processed
from mame_tf.networks import GaussianMLPPolicy, RegressionMLP

T, E, H, OBS, ACT, K = 2, 3, 4, 2, 1, 2


def _train_config(**kw):
    base = dict(hidden_sizes=(6,), seed=0, discount=0.9, gae_lambda=1.0, inner_steps=1, eager=True)
    base.update(kw)
    return AlgorithmSettings(**base)


def _batch(rng, T=T, E=E, H=H, terminate=True):
    mask = np.ones((T, E, H), np.float32)
    if terminate:
        mask[0, 1, 2:] = 0.0  # one episode ends early
    obs = rng.normal(size=(T, E, H, OBS)).astype(np.float32) * mask[..., None]
    actions = rng.normal(size=(T, E, H, ACT)).astype(np.float32) * mask[..., None]
    return Batch(obs=obs, actions=actions, rewards=(rng.normal(size=(T, E, H)) * mask).astype(np.float32),
                 mask=mask, logp=np.zeros((T, E, H), np.float32), mean=np.zeros_like(actions),
                 log_std=np.zeros_like(actions), tasks=[None] * T)


# --------------------------------------------------------------------------------------------------
# Float64 finite differences of the outer objective through the inner step.
# --------------------------------------------------------------------------------------------------
def _f64_setup(inner_objective="regression", steps=1, inner_grad_clip=0.0):
    rng = np.random.default_rng(0)
    cfg = MAMEConfig(latent_dim=K, inner_lr=0.7, inner_objective=inner_objective, explore_estimator="dice",
                     inner_grad_clip=inner_grad_clip)
    pi = GaussianMLPPolicy(OBS, ACT, (5,), activation="tanh", latent_dim=K, seed=1)
    self_supervision = RegressionMLP(OBS + ACT, (5,), activation="tanh", latent_dim=K, seed=2)
    mu = GaussianMLPPolicy(OBS, ACT, (5,), activation="tanh", seed=3)
    f64 = lambda ps: [tf.constant(np.asarray(p, np.float64) + rng.normal(scale=0.3, size=p.shape)) for p in ps]  # noqa: E731
    theta, beta, phi = f64(pi.params), f64(self_supervision.params), f64(mu.params)
    z = tf.constant(rng.normal(size=K))
    pre_b, post_b = _batch(rng), _batch(rng)
    f64t = lambda x: tf.constant(x, tf.float64)  # noqa: E731
    pre = Processed(obs=f64t(pre_b.obs), actions=f64t(pre_b.actions), mask=f64t(pre_b.mask), target=f64t(pre_b.rewards),
                    logp=f64t(rng.normal(size=(T, E, H))), advantages=f64t(rng.normal(size=(T, E, H))),
                    mean=None, log_std=None, task_return=None)
    post = Processed(obs=f64t(post_b.obs), actions=f64t(post_b.actions), mask=f64t(post_b.mask),
                     advantages=f64t(rng.normal(size=(T, E, H))), logp=None, mean=None, log_std=None,
                     task_return=None)
    nets = (cfg, pi, self_supervision, mu)
    return nets, [theta, beta, phi, [z]], pre, post, steps


def _objective(nets, groups, pre, post, steps, first_order=False):
    cfg, pi, self_supervision, mu = nets
    theta, beta, phi, (z,) = groups
    if first_order:  # the shortcut: the inner gradient treated as a constant
        z_adapted, _, _ = adapt_latent(cfg, pi, self_supervision, mu, theta, beta, phi, z, pre, steps,
                                       dice_to_phi=True)
        z_adapted = z + tf.stop_gradient(z_adapted - z)
    else:
        z_adapted, _, _ = adapt_latent(cfg, pi, self_supervision, mu, theta, beta, phi, z, pre, steps,
                                       dice_to_phi=True)
    return outer_objective(pi, theta, z_adapted, post)


@pytest.mark.parametrize("inner_objective,steps,clip", [
    ("regression", 1, 0.0), ("regression", 2, 0.0), ("vpg", 1, 0.0), ("regression", 2, 0.05)])
def test_outer_gradient_through_inner_step_matches_finite_differences(inner_objective, steps, clip, monkeypatch):
    """θ, β, z and φ. For φ the sampled objective's *value* does not depend on φ (the magic box is 1):
    DiCE's φ-gradient is the gradient of the likelihood-ratio-weighted objective
    exp(τ_t(φ) − τ_t(φ₀)) at the sampling parameters φ₀, so the finite differences are taken of that.
    With ``clip`` > 0 the inner gradient is norm-clipped (the check below makes sure it is)."""
    nets, groups, pre, post, steps = _f64_setup(inner_objective, steps, clip)
    import mame_tf.mame as mame_module

    cfg, pi, self_supervision, mu = nets
    if clip:
        z_adapted, inner_record, _ = adapt_latent(cfg, pi, self_supervision, mu, *groups[:3], groups[3][0], pre,
                                                  steps, dice_to_phi=True)
        assert all(float(tf.reduce_max(step.clip_scale)) < 1.0 for step in inner_record), "clipping must be active"
        step = tf.norm(inner_record[1].z - inner_record[0].z, axis=-1)
        np.testing.assert_allclose(step.numpy(), cfg.inner_lr * clip, rtol=1e-9)
    logp0 = mu.log_prob(groups[2], pre.obs, pre.actions)
    tau0 = tf.cumsum(logp0 * pre.mask, axis=-1)

    def ratio_weights(logp_mu, mask):  # value 1 at φ₀, same φ-derivative as the magic box
        return tf.exp(tf.cumsum(logp_mu * mask, axis=-1) - tau0) * mask

    def fd_objective(groups_):
        with monkeypatch.context() as m:
            m.setattr(mame_module, "dice_weights", ratio_weights)
            return _objective(nets, groups_, pre, post, steps)

    flat = [p for g in groups for p in g]
    with tf.GradientTape() as tape:
        tape.watch(flat)
        value = _objective(nets, groups, pre, post, steps)
    analytic = tape.gradient(value, flat)
    with tf.GradientTape() as tape:
        tape.watch(flat)
        fo_value = _objective(nets, groups, pre, post, steps, first_order=True)
    first_order = tape.gradient(fo_value, flat)

    def rebuild(i, new):
        out, k = [], 0
        for g in groups:
            out.append([new if k + j == i else p for j, p in enumerate(g)])
            k += len(g)
        return out

    eps = 1e-6
    max_err, max_fo_err = 0.0, 0.0
    rng = np.random.default_rng(1)
    for i, p in enumerate(flat):
        a = np.zeros(p.shape) if analytic[i] is None else analytic[i].numpy()
        fo = np.zeros(p.shape) if first_order[i] is None else first_order[i].numpy()
        idx = rng.choice(p.numpy().size, size=min(4, p.numpy().size), replace=False)
        for j in idx:
            d = np.zeros(p.numpy().size)
            d[j] = eps
            d = d.reshape(p.shape)
            plus = float(fd_objective(rebuild(i, p + d)))
            minus = float(fd_objective(rebuild(i, p - d)))
            fd = (plus - minus) / (2 * eps)
            max_err = max(max_err, abs(fd - a.ravel()[j]) / max(1.0, abs(fd)))
            max_fo_err = max(max_fo_err, abs(fd - fo.ravel()[j]) / max(1.0, abs(fd)))
    assert max_err < 1e-7, max_err
    assert max_fo_err > 1e-4, "a first-order shortcut must fail this check"


# --------------------------------------------------------------------------------------------------
# DiCE-weighted inner step on an enumerable problem.
# --------------------------------------------------------------------------------------------------
def test_dice_weighted_inner_step_is_exact_on_an_enumerable_problem():
    """Two steps, two actions, softmax exploration policy (logits φ[t]); per-step regression loss
    ℓ_t = (w·z·f(a_t) − y(a_≤t))² depending on the actions so far. z' = z − α ∇_z E[Σ_t ℓ_t] and the
    outer objective is F(z') = sin(z')·c. The DiCE surrogate, averaged over all four trajectories with
    stop-gradient probabilities as weights, must reproduce the exact first and second derivatives of
    F(z'(φ, z)) with respect to φ and z."""
    alpha, c = 0.3, 1.7
    trajs = np.array(list(itertools.product([0, 1], repeat=2)))  # [4, 2]
    feat = np.array([0.5, -1.2])
    target = lambda a: np.array([a[0] * 1.0, a[0] - 2.0 * a[1] + 0.5])  # noqa: E731  y_t depends on a_≤t
    Y = tf.constant(np.array([target(a) for a in trajs]))  # [4, 2]
    F_a = tf.constant(feat[trajs])  # [4, 2]
    acts = tf.constant(trajs)

    def logp_steps(phi):  # [4, 2]
        logits = tf.stack([phi[0:2], phi[2:4]])  # per time step
        logsm = tf.nn.log_softmax(logits, axis=-1)  # [2, 2]
        return tf.stack([tf.gather(logsm[t], acts[:, t]) for t in range(2)], axis=1)

    def per_step_loss(z):
        return tf.square(1.3 * z * F_a - Y)  # [4, 2]

    def exact(phi, z):
        p = tf.exp(tf.reduce_sum(logp_steps(phi), axis=1))
        with tf.GradientTape() as inner:
            inner.watch(z)
            inner_obj = tf.reduce_sum(p * tf.reduce_sum(per_step_loss(z), axis=1))
        z2 = z - alpha * inner.gradient(inner_obj, z)
        return c * tf.sin(z2)

    def dice(phi, z):
        lp = logp_steps(phi)
        p_const = tf.stop_gradient(tf.exp(tf.reduce_sum(lp, axis=1)))
        w = dice_weights(lp, tf.ones_like(lp))
        with tf.GradientTape() as inner:
            inner.watch(z)
            inner_obj = tf.reduce_sum(p_const * tf.reduce_sum(w * per_step_loss(z), axis=1))
        z2 = z - alpha * inner.gradient(inner_obj, z)
        return c * tf.sin(z2)

    phi = tf.constant([0.2, -0.4, 0.9, 0.1], tf.float64)
    z = tf.constant(0.35, tf.float64)

    def derivs(fn):
        with tf.GradientTape(persistent=True) as outer:
            outer.watch([phi, z])
            with tf.GradientTape() as tape:
                tape.watch([phi, z])
                value = fn(phi, z)
            g_phi, g_z = tape.gradient(value, [phi, z])
        h_phi = outer.jacobian(g_phi, phi)
        h_z = outer.gradient(g_z, z)
        h_mixed = outer.gradient(g_z, phi)
        return value, g_phi, g_z, h_phi, h_z, h_mixed

    for a, b in zip(derivs(exact), derivs(dice)):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-10, atol=1e-12)
    # without the magic box the φ-gradient is lost entirely
    lp = logp_steps(phi)
    assert float(tf.reduce_max(tf.abs(dice_weights(lp, tf.ones_like(lp)) - 1.0))) == 0.0


# --------------------------------------------------------------------------------------------------
# The low-variance estimator against vanilla DiCE.
# --------------------------------------------------------------------------------------------------
def _toy_batches(algo, rng, n):
    """Exploration batches on fixed states s_t = (t/H, 1): only the actions are random."""
    T2, E2, H2 = 2, 12, 5
    obs = np.zeros((T2, E2, H2, OBS), np.float32)
    obs[..., 0] = np.arange(H2) / H2
    obs[..., 1] = 1.0
    mean, log_std = algo.mu.forward(algo.mu.params, obs)
    mean, std = mean.numpy(), np.exp(log_std.numpy())
    out = []
    for _ in range(n):
        actions = (mean + std * rng.normal(size=mean.shape)).astype(np.float32)
        rewards = (-np.square(actions[..., 0] - 0.5) + (np.arange(T2)[:, None, None] - 0.5)).astype(np.float32)
        out.append(Batch(obs=obs, actions=actions, rewards=rewards, mask=np.ones((T2, E2, H2), np.float32),
                         logp=np.zeros((T2, E2, H2), np.float32), mean=mean, log_std=np.log(std) + 0 * mean,
                         tasks=[0, 1]))
    post = _batch(np.random.default_rng(7), T=T2, E=E2, H=H2, terminate=False)
    return out, post


def test_low_variance_agrees_with_dice_in_expectation_and_has_lower_variance():
    tc = _train_config(eager=False)
    estimates = {}
    for estimator in ("dice", "low_variance"):
        algo = MAME(tc, MAMEConfig(latent_dim=K, explore_estimator=estimator), OBS, ACT)
        batches, post = _toy_batches(algo, np.random.default_rng(3), 150)
        rows = []
        for pre in batches:
            grads, _ = algo.compute_gradients([pre], post)
            rows.append(np.concatenate([tf.reshape(g, [-1]).numpy() for g in grads["phi"]]))
        estimates[estimator] = np.array(rows)
    d, lv = estimates["dice"], estimates["low_variance"]
    se = np.sqrt(d.var(0) / len(d) + lv.var(0) / len(lv))
    important = np.abs(d.mean(0)) > 3 * np.sqrt(d.var(0) / len(d))  # coordinates with a clear signal
    assert important.sum() >= 3
    z_scores = np.abs(d.mean(0) - lv.mean(0))[important] / se[important]
    assert np.median(z_scores) < 2.0 and z_scores.max() < 5.0, z_scores
    cos = d.mean(0) @ lv.mean(0) / np.linalg.norm(d.mean(0)) / np.linalg.norm(lv.mean(0))
    assert cos > 0.9, cos
    assert lv.var(0).sum() < 0.8 * d.var(0).sum(), (lv.var(0).sum(), d.var(0).sum())


# --------------------------------------------------------------------------------------------------
# Ablations change the computation; any number of inner steps works.
# --------------------------------------------------------------------------------------------------
def _deltas(cfg_kwargs, inner_steps=1):
    tc = _train_config(inner_steps=inner_steps)
    algo = MAME(tc, MAMEConfig(latent_dim=K, **cfg_kwargs), OBS, ACT)
    rng = np.random.default_rng(11)
    pre, post = _batch(rng), _batch(rng)
    before = {n: [v.numpy().copy() for v in vs] for n, vs in
              (("theta", algo.pi.params), ("beta", algo.self_supervision.params), ("phi", algo.mu.params),
               ("z", [algo.z]))}
    metrics = algo.update([pre] if inner_steps else [], post)
    after = {n: [v.numpy() for v in vs] for n, vs in
             (("theta", algo.pi.params), ("beta", algo.self_supervision.params), ("phi", algo.mu.params),
              ("z", [algo.z]))}
    assert all(np.isfinite(v) for v in metrics.values())
    return {n: np.concatenate([(a - b).ravel() for a, b in zip(after[n], before[n])]) for n in before}


def _gradients(cfg_kwargs):
    """Every group's gradient (before Adam, whose first step only keeps each coordinate's sign).

    α = 1: with the default α = 30 the random toy data throws z' so far that π's mean is linear in z'
    over the whole batch; per-task advantages sum to zero, so ∂J/∂z' no longer depends on z' and the
    z gradients of the two regression targets coincide.
    """
    algo = MAME(_train_config(), MAMEConfig(latent_dim=K, inner_lr=1.0, **cfg_kwargs), OBS, ACT)
    rng = np.random.default_rng(11)
    pre, post = _batch(rng), _batch(rng)
    grads, _ = algo.compute_gradients([pre], post)
    return {n: np.concatenate([tf.reshape(g, [-1]).numpy() for g in gs]) for n, gs in grads.items()}


def test_each_ablation_changes_the_computation():
    for name, vec in _deltas({}).items():
        assert np.abs(vec).max() > 0, f"{name} did not move"
    base = _gradients({})
    for option in ({"inner_target": "reward"}, {"inner_objective": "vpg"}):
        other = _gradients(option)
        assert not np.allclose(other["z"], base["z"]) and not np.allclose(other["phi"], base["phi"]), option
    for option in ({"explore_estimator": "dice"}, {"explore_estimator": "emaml"}):
        other = _gradients(option)
        assert not np.allclose(other["phi"], base["phi"]), option
        for name in ("theta", "beta", "z"):  # φ's estimator only changes φ's update
            np.testing.assert_allclose(other[name], base[name], rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("steps", [0, 1, 2, 3])
def test_any_number_of_inner_steps(steps):
    deltas = _deltas({}, inner_steps=steps)
    assert np.abs(deltas["theta"]).max() > 0
    algo = MAME(_train_config(), MAMEConfig(latent_dim=K), OBS, ACT)
    rng = np.random.default_rng(5)
    assert algo.num_exploration_batches(steps) == min(steps, 1)
    z_adapted = algo.adapt(_batch(rng), None, steps) if steps else None
    if steps:
        assert z_adapted.shape == (T, K) and np.isfinite(z_adapted).all()
    mean, log_std = algo.exploitation_policy(z_adapted)(np.zeros((T, E, OBS), np.float32))
    assert mean.shape == (T, E, ACT)


def test_bad_settings_are_rejected():
    from mame_tf.config import validate

    with pytest.raises(ValueError, match="--explore_estimator='foo' is invalid; valid choices"):
        validate(MAMEConfig(explore_estimator="foo"))
    with pytest.raises(ValueError, match="--z_lr=0"):
        MAME(_train_config(), dataclasses.replace(MAMEConfig(), z_lr=0), OBS, ACT)


@pytest.mark.parametrize("clip", [0.0, 0.05])
def test_low_variance_rewards_sum_to_the_inner_step(clip):
    """One inner step: Σ_t r^μ_t = g_{z'}ᵀ (z' − z) for each task (every step's share of the move of z'),
    with and without norm clipping of the inner gradient."""
    from mame_tf.mame import explore_rewards

    nets, groups, pre, _, _ = _f64_setup("regression", 1, clip)
    cfg, pi, self_supervision, mu = nets
    theta, beta, phi, (z,) = groups
    z_adapted, inner_record, _ = adapt_latent(cfg, pi, self_supervision, mu, theta, beta, phi, z, pre, 1,
                                              dice_to_phi=False)
    if clip:
        assert float(tf.reduce_max(inner_record[0].clip_scale)) < 1.0, "clipping must be active"
    g = tf.constant(np.random.default_rng(4).normal(size=(T, K)))
    r = explore_rewards(cfg, pi, self_supervision, theta, beta, inner_record, g, pre)
    expected = tf.reduce_sum(g * (z_adapted - z[None]), axis=-1)
    np.testing.assert_allclose(tf.reduce_sum(r, axis=[1, 2]).numpy(), expected.numpy(), rtol=1e-10)


def test_the_exploration_batch_is_processed_once_and_an_evaluation_adaptation_is_forgotten(monkeypatch):
    import mame_tf.mame as mame_module

    processed = []
    real = mame_module.process_batch
    monkeypatch.setattr(mame_module, "process_batch",
                        lambda batch, *a, **k: processed.append(batch) or real(batch, *a, **k))
    algo, fresh = (MAME(_train_config(), MAMEConfig(latent_dim=K), OBS, ACT) for _ in range(2))
    rng = np.random.default_rng(12)
    pre, post, evaluation = _batch(rng), _batch(rng), _batch(rng)
    algo.adapt(pre, None, 1)
    algo.update([pre], post)
    assert [id(b) for b in processed] == [id(pre), id(post)]
    fresh.update([pre], post)
    algo.adapt(evaluation, None, 1)  # meta-testing: no update follows
    processed.clear()
    algo.adapt(pre, None, 1)
    assert [id(b) for b in processed] == [id(pre)]  # the evaluation batch's result was not kept for pre
    for a, b in zip(algo.checkpoint_items().values(), fresh.checkpoint_items().values()):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))



def test_checkpoint_names_are_those_of_existing_checkpoints():
    """M_{β,z} (``self_supervision``) is stored as ``model/...``, the name every checkpoint so far uses."""
    names = list(MAME(_train_config(), MAMEConfig(latent_dim=K), OBS, ACT).checkpoint_items())
    layers = ["kernel_0", "bias_0", "kernel_1", "bias_1"]
    assert names[:15] == ([f"mu/{n}" for n in layers] + ["mu/log_std"] + [f"pi/{n}" for n in layers] + ["pi/log_std"]
                          + [f"model/{n}" for n in layers] + ["z"])
    assert not any(n.startswith("self_supervision") for n in names)
