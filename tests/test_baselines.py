"""MAML-family baselines: exact second-order meta-gradients, TRPO through the inner step, ProMP, updates."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from baselines.emaml import EMAML, EMAMLConfig
from baselines.maml import adapt_chain, mean_kl, pg_loss, post_log_prob
from baselines.maml_trpo import MAMLTRPO, MAMLTRPOConfig
from baselines.maml_vpg import MAMLVPG, MAMLVPGConfig
from baselines.promp import ProMP, ProMPConfig
from mame_tf.algorithm import AlgorithmSettings
from mame_tf.batch import Batch
from mame_tf.networks import GaussianMLPPolicy
from mame_tf.optimizers import flatten, hessian_vector_product
from mame_tf.processed import process_batch

T, E, H, OBS, ACT = 2, 3, 4, 2, 1


def _tc(**kw):
    base = dict(hidden_sizes=(6,), seed=0, discount=0.9, gae_lambda=1.0, inner_steps=1, eager=True)
    base.update(kw)
    return AlgorithmSettings(**base)


def _batch(rng, policy=None, params=None):
    mask = np.ones((T, E, H), np.float32)
    mask[1, 0, 3:] = 0.0
    obs = (rng.normal(size=(T, E, H, OBS)) * mask[..., None]).astype(np.float32)
    actions = (rng.normal(size=(T, E, H, ACT)) * mask[..., None]).astype(np.float32)
    if policy is not None:  # record the sampling distribution of these parameters, as the sampler does
        per_task = params is not None
        mean, log_std = policy.forward(params if per_task else policy.params, obs, per_task=per_task)
        logp = policy.log_prob(params if per_task else policy.params, obs, actions, per_task=per_task)
        mean, log_std, logp = mean.numpy(), log_std.numpy(), logp.numpy() * mask
    else:
        mean, log_std, logp = np.zeros_like(actions), np.zeros_like(actions), np.zeros((T, E, H), np.float32)
    return Batch(obs=obs, actions=actions, rewards=(rng.normal(size=(T, E, H)) * mask).astype(np.float32),
                 mask=mask, logp=logp.astype(np.float32), mean=mean, log_std=log_std, tasks=[0, 1])


def _f64(params, rng):
    return [tf.constant(np.asarray(p, np.float64) + rng.normal(scale=0.2, size=p.shape)) for p in params]


def _fd_check(fn, params, analytic, rng, per_param=4, eps=1e-6):
    err = 0.0
    for i, p in enumerate(params):
        for j in rng.choice(int(np.prod(p.shape)), size=min(per_param, int(np.prod(p.shape))), replace=False):
            d = np.zeros(int(np.prod(p.shape)))
            d[j] = eps
            d = tf.constant(d.reshape(p.shape))
            plus = [q + d if k == i else q for k, q in enumerate(params)]
            minus = [q - d if k == i else q for k, q in enumerate(params)]
            fd = (float(fn(plus)) - float(fn(minus))) / (2 * eps)
            err = max(err, abs(fd - analytic[i].numpy().ravel()[j]) / max(1.0, abs(fd)))
    return err


@pytest.mark.parametrize("steps,objective", [(1, "vpg"), (2, "vpg"), (1, "lvc")])
def test_second_order_meta_gradient_matches_finite_differences(steps, objective):
    rng = np.random.default_rng(0)
    policy = GaussianMLPPolicy(OBS, ACT, (5,), activation="tanh", seed=0)
    params = _f64(policy.params, rng)
    pre = [process_batch(_batch(rng, policy), 0.9, 1.0) for _ in range(steps)]
    post = process_batch(_batch(rng), 0.9, 1.0)

    def meta_loss(ps, first_order=False):
        if first_order:
            chain = [[tf.tile(p[None], [T] + [1] * len(p.shape)) for p in ps]]
            for data in pre:
                with tf.GradientTape() as tape:
                    tape.watch(chain[-1])
                    from baselines.maml import inner_loss
                    inner = inner_loss(policy, chain[-1], data, objective)
                grads = tape.gradient(inner, chain[-1])
                chain.append([p - 0.4 * tf.stop_gradient(g) for p, g in zip(chain[-1], grads)])
        else:
            chain = adapt_chain(policy, ps, pre, 0.4, objective)
        return pg_loss(post_log_prob(policy, chain[-1], post), post)

    with tf.GradientTape() as tape:
        tape.watch(params)
        value = meta_loss(params)
    analytic = tape.gradient(value, params)
    with tf.GradientTape() as tape:
        tape.watch(params)
        value = meta_loss(params, first_order=True)
    first_order = tape.gradient(value, params)
    assert _fd_check(meta_loss, params, analytic, np.random.default_rng(1)) < 1e-7
    assert _fd_check(meta_loss, params, first_order, np.random.default_rng(1)) > 1e-4


def test_trpo_kl_hessian_vector_product_through_the_inner_step():
    rng = np.random.default_rng(2)
    policy = GaussianMLPPolicy(OBS, ACT, (5,), activation="tanh", seed=0)
    params = [tf.Variable(p) for p in _f64(policy.params, rng)]
    pre = [process_batch(_batch(rng, policy), 0.9, 1.0)]
    post_b = _batch(rng)
    post_b = dataclasses.replace(post_b, mean=post_b.mean + 0.3)
    post = process_batch(post_b, 0.9, 1.0)

    def kl():
        chain = adapt_chain(policy, params, pre, 0.4, "vpg")
        return mean_kl(policy, chain[-1], post, per_task=True)

    v = tf.constant(rng.normal(size=sum(int(np.prod(p.shape)) for p in params)))
    hv = hessian_vector_product(kl, params)(v).numpy()

    def grad_at(flat):
        i = 0
        for p in params:
            n = int(np.prod(p.shape))
            p.assign(tf.reshape(flat[i:i + n], p.shape))
            i += n
        with tf.GradientTape() as tape:
            value = kl()
        return flatten(tape.gradient(value, params)).numpy()

    base = flatten(params).numpy()
    eps = 1e-6
    fd = (grad_at(base + eps * v.numpy()) - grad_at(base - eps * v.numpy())) / (2 * eps)
    np.testing.assert_allclose(hv, fd, rtol=1e-5, atol=1e-7)


def test_trpo_step_respects_the_kl_bound_or_leaves_parameters_unchanged():
    rng = np.random.default_rng(3)
    algo = MAMLTRPO(_tc(eager=False), MAMLTRPOConfig(hvp_subsample=0.5), OBS, ACT)
    for _ in range(3):
        pre = [_batch(rng, algo.policy)]
        adapted = algo.adapt(pre[0], None, 1)
        post = _batch(rng, algo.policy, [tf.constant(a) for a in adapted])
        before = [p.numpy().copy() for p in algo.policy.params]
        pre_t, post_t = algo.process_update_data(pre, post)
        surrogate_before = float(algo._surrogate(pre_t, post_t))
        metrics = algo.update(pre, post)
        kl_after = float(algo._kl(pre_t, post_t))
        if metrics["trpo/accepted"]:
            assert kl_after <= 0.01 + 1e-6
            assert float(algo._surrogate(pre_t, post_t)) < surrogate_before
        else:
            for a, b in zip(before, algo.policy.params):
                np.testing.assert_array_equal(a, b.numpy())


def test_promp_likelihood_ratios_are_one_at_the_sampling_parameters():
    rng = np.random.default_rng(4)
    algo = ProMP(_tc(), ProMPConfig(), OBS, ACT)
    pre = [_batch(rng, algo.policy)]
    adapted = algo.adapt(pre[0], None, 1)
    post = _batch(rng, algo.policy, [tf.constant(a) for a in adapted])
    pre_t, post_t = algo.process_update_data(pre, post)
    # inner LVC ratio at θ_old
    logp = algo.policy.log_prob(algo.policy.params, pre_t[0].obs, pre_t[0].actions)
    ratio = tf.exp(logp - pre_t[0].logp).numpy()[pre[0].mask > 0]
    np.testing.assert_allclose(ratio, 1.0, atol=1e-5)
    # outer ratio on the first epoch (θ' recomputed from the same θ)
    metrics = algo.update(pre, post)
    assert metrics["ratio/first_epoch"] == pytest.approx(1.0, abs=1e-5)
    assert metrics["ratio/last_epoch"] != pytest.approx(1.0, abs=1e-7)


ALGOS = [(MAMLVPG, MAMLVPGConfig()), (MAMLTRPO, MAMLTRPOConfig()), (ProMP, ProMPConfig()), (EMAML, EMAMLConfig())]


@pytest.mark.parametrize("cls,cfg", ALGOS, ids=[c.name for c, _ in ALGOS])
@pytest.mark.parametrize("steps", [0, 1, 2, 3])
def test_update_is_finite_and_changes_parameters(cls, cfg, steps):
    rng = np.random.default_rng(5)
    algo = cls(_tc(inner_steps=steps), cfg, OBS, ACT)
    assert algo.num_exploration_batches(steps) == steps
    adapted, pre = None, []
    for _ in range(steps):
        params = None if adapted is None else [tf.constant(a) for a in adapted]
        pre.append(_batch(rng, algo.policy, params))
        adapted = algo.adapt(pre[-1], adapted, steps)
        assert all(np.isfinite(a).all() and a.shape[0] == T for a in adapted)
    params = None if adapted is None else [tf.constant(a) for a in adapted]
    post = _batch(rng, algo.policy, params)
    post = dataclasses.replace(  # tasks differ
        post, rewards=post.rewards + np.arange(T)[:, None, None].astype(np.float32) * post.mask)
    before = [p.numpy().copy() for p in algo.policy.params]
    metrics = algo.update(pre, post)
    assert all(np.isfinite(v) for v in metrics.values()), metrics
    moved = max(float(np.abs(p.numpy() - b).max()) for p, b in zip(algo.policy.params, before))
    if cls is MAMLTRPO and not metrics["trpo/accepted"]:
        assert moved == 0.0
    else:
        assert moved > 0.0


def test_emaml_term_changes_the_update_and_bad_settings_fail():
    rng = np.random.default_rng(6)
    deltas = []
    for cls, cfg in ((MAMLVPG, MAMLVPGConfig()), (EMAML, EMAMLConfig())):
        algo = cls(_tc(), cfg, OBS, ACT)
        r = np.random.default_rng(6)
        pre = [_batch(r, algo.policy)]
        post = _batch(r)
        post = dataclasses.replace(post, rewards=post.rewards + np.arange(T)[:, None, None].astype(np.float32))
        before = flatten(algo.policy.params).numpy()
        algo.update(pre, post)
        deltas.append(flatten(algo.policy.params).numpy() - before)
    assert not np.allclose(deltas[0], deltas[1])
    with pytest.raises(ValueError, match="--clip_eps=1.5"):
        ProMPConfig(clip_eps=1.5).validate()
    with pytest.raises(ValueError, match="--backtrack_ratio=1"):
        MAMLTRPOConfig(backtrack_ratio=1.0).validate()
    del rng


def test_each_exploration_batch_is_processed_once_and_never_for_another(monkeypatch):
    """adapt processes each exploration batch once and update reuses it; a batch that was not adapted to
    is processed when updating (never answered by another batch's result), with the same update."""
    import baselines.maml as maml_module

    processed = []
    real = maml_module.process_batch
    monkeypatch.setattr(maml_module, "process_batch",
                        lambda batch, *a, **k: processed.append(batch) or real(batch, *a, **k))
    rng = np.random.default_rng(8)
    algo, fresh = (MAMLVPG(_tc(inner_steps=2), MAMLVPGConfig(), OBS, ACT) for _ in range(2))
    b0 = _batch(rng, algo.policy)
    adapted = algo.adapt(b0, None, 2)
    b1 = _batch(rng, algo.policy, adapted)
    adapted = algo.adapt(b1, adapted, 2)
    post = _batch(rng, algo.policy, adapted)
    algo.update([b0, b1], post)
    assert [id(b) for b in processed] == [id(b0), id(b1), id(post)]
    fresh.update([b0, b1], post)  # nothing adapted: everything processed by the update
    for a, b in zip(algo.policy.params, fresh.policy.params):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # meta-testing adapts without updating; an update of other batches then processes those
    processed.clear()
    algo.adapt(b0, None, 2)
    other = dataclasses.replace(b0, rewards=b0.rewards + 1.0)
    algo.update([other], post)
    fresh.update([other], post)
    assert [id(b) for b in processed] == [id(b0), id(other), id(post), id(other), id(post)]
    for a, b in zip(algo.policy.params, fresh.policy.params):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
