"""What tensorflow-probability distributions cost inside the second-order updates, against the closed forms.

    python benchmarks/tfp_cost.py                       # paper scale: cheetah_dir, 40 tasks x 20 episodes x 200 steps
    python benchmarks/tfp_cost.py --meta_batch_size=4 --episodes_per_task=2 --horizon=50 --reps=3   # quick check
    python benchmarks/tfp_cost.py --json=tfp_cost.json  # also write the results

Every log-probability and KL of the policies comes from the distribution ``mame_tf.networks.gaussian``
builds from the network's mean and log-std: tfp's ``MultivariateNormalDiag(mean, exp(log_std))``
(``tfp``, the project's). ``mame_tf.networks.gaussian_family`` substitutes another for a measurement:
``closed_form``, the log-density and KL written out by hand (:class:`ClosedFormGaussian`, below: the
reference of the ratios), or tfp's ``Independent(Normal(mean, exp(log_std)), 1)``
(``independent_normal``). For each algorithm the script builds one instance per form (same seed, so the
same weights) and traces its compiled functions inside that form's block, on fake batches of the
right shapes (random observations, actions drawn from the policy, random rewards; no simulation).
It then times, after a warm-up call, two things per form:

* ``update``: ``algo.update(pre, post)`` as training calls it (numpy advantages and baselines
  included; the variables are restored before every call, so every repetition does the same work:
  the same TRPO line search, the same Adam step count);
* ``compiled``: only the algorithm's compiled ``tf.function``s on tensors prepared beforehand — MAME:
  the main step (inner step on z, outer gradient through it, per-sample inner gradients) and the
  exploration-policy step; MAML-TRPO: the surrogate's gradient through the inner step, ``cg_iters``
  Hessian-vector products of the KL through the inner step and one surrogate-and-KL evaluation (a
  TRPO step that accepts its first trial).

The forms are interleaved: every repetition times each form once, in an order that alternates from
one repetition to the next, and the ratio tfp / closed form is taken within each repetition; the
table gives the median time of each form and the median of the paired ratios (each form against
the first of ``--forms``). Algorithms: ``mame`` (its default regression inner step, in which log π is differentiated once and log μ not
through the inner step), ``mame_vpg_inner`` (MAME with ``--inner_objective=vpg``: log π differentiated
twice) and any registered algorithm name (``maml_trpo``, ``promp``, ``maml_vpg``, ``emaml``). The
machine's load average and the core count are printed with the table: on a loaded machine the ratio
is the figure to read, not the seconds. The JSON also holds every repetition's seconds, each form's
first update (tracing included) and that update's outer loss (the forms agree to float32 rounding).
"""
from __future__ import annotations

import json
import math
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402
from absl import app, flags  # noqa: E402

import mame_tf  # noqa: E402,F401
from mame_tf.batch import Batch  # noqa: E402
from mame_tf.config import TrainConfig  # noqa: E402
from mame_tf.envs.batched import make_batched_env, usable_cpus  # noqa: E402
from mame_tf.launch import build_algorithm  # noqa: E402
from mame_tf.mame import MAME  # noqa: E402
from mame_tf.networks import gaussian_family, mvn_diag  # noqa: E402
from mame_tf.optimizers import flatten  # noqa: E402
from mame_tf.processed import process_batch  # noqa: E402
from mame_tf.registry import FAMILIES, algorithm_class  # noqa: E402

tfd = tfp.distributions

flags.DEFINE_enum("env", "cheetah_dir", list(FAMILIES),
                  "Task family (sets the observation and action sizes and the presets; nothing is simulated).")
flags.DEFINE_list("algos", ["mame", "mame_vpg_inner", "maml_trpo"],
                  "Algorithms to time: mame, mame_vpg_inner or any registered algorithm name.")
flags.DEFINE_list("forms", ["closed_form", "tfp"],
                  "Gaussian forms to compare; the first is the reference of the ratios "
                  "(closed_form, tfp, independent_normal).")
flags.DEFINE_integer("meta_batch_size", 40, "Tasks per batch.")
flags.DEFINE_integer("episodes_per_task", 20, "Episodes per task.")
flags.DEFINE_integer("horizon", 200, "Steps per episode.")
flags.DEFINE_integer("reps", 7, "Timed repetitions of each form (after one warm-up call).")
flags.DEFINE_enum("measure", "both", ["both", "update", "compiled"], "What to time (see the module docstring).")
flags.DEFINE_string("json", "", "Also write the results to this JSON file.")
flags.DEFINE_integer("seed", 0, "Seed of the networks and of the fake batches.")
FLAGS = flags.FLAGS

# Benchmark names that are an algorithm with some of its settings changed.
VARIANTS = {"mame_vpg_inner": ("mame", {"inner_objective": "vpg"})}


class ClosedFormGaussian:
    """A diagonal Gaussian with its log-density and KL written out (the forms tfp is measured against)."""

    def __init__(self, mean, log_std):
        self.mean, self.log_std = mean, log_std

    def log_prob(self, x):
        z = (x - self.mean) * tf.exp(-self.log_std)
        dim = tf.cast(tf.shape(self.mean)[-1], self.mean.dtype)
        return tf.reduce_sum(-0.5 * tf.square(z) - self.log_std, axis=-1) - 0.5 * math.log(2.0 * math.pi) * dim

    def kl_divergence(self, other):
        var_p, var_q = tf.exp(2.0 * self.log_std), tf.exp(2.0 * other.log_std)
        return tf.reduce_sum(other.log_std - self.log_std
                             + (var_p + tf.square(self.mean - other.mean)) / (2.0 * var_q) - 0.5, axis=-1)


def independent_normal(mean, log_std):
    return tfd.Independent(tfd.Normal(loc=mean, scale=tf.exp(log_std)), reinterpreted_batch_ndims=1)


def gaussian_forms() -> dict:
    """``--forms`` name -> what ``mame_tf.networks.gaussian_family`` builds the distributions with."""
    return {"closed_form": ClosedFormGaussian, "tfp": mvn_diag, "independent_normal": independent_normal}


def fake_batch(policy_fn, T: int, E: int, H: int, obs_dim: int, rng):
    """A :class:`~mame_tf.batch.Batch` ``[T, E, H]`` with actions drawn from ``policy_fn`` on random observations."""
    obs = rng.normal(size=(T, E, H, obs_dim)).astype(np.float32)
    mean, log_std = policy_fn(obs)
    log_std = np.broadcast_to(log_std, mean.shape).astype(np.float32)
    eps = rng.normal(size=mean.shape).astype(np.float32)
    actions = mean + np.exp(log_std) * eps
    logp = -0.5 * (eps * eps).sum(-1) - log_std.sum(-1) - 0.5 * mean.shape[-1] * np.log(2 * np.pi)
    return Batch(obs=obs, actions=actions.astype(np.float32), rewards=rng.normal(size=(T, E, H)).astype(np.float32),
                 mask=np.ones((T, E, H), np.float32), logp=logp.astype(np.float32), mean=mean.astype(np.float32),
                 log_std=log_std, tasks=list(range(T)))


def state_variables(algo) -> list:
    """The variables an update changes: every Keras model's weights and every bare variable of ``algo``."""
    out = []
    for value in vars(algo).values():
        if isinstance(value, keras.Model):
            out += list(value.weights)
        elif isinstance(value, tf.Variable):
            out.append(value)
    return out


def compiled_step(algo, pre_batches, post_batch):
    """A function running only the algorithm's compiled update functions, on tensors made here."""
    if isinstance(algo, MAME):
        pre = algo.process_exploration(pre_batches[0])
        post = process_batch(post_batch, algo.settings.discount, algo.settings.gae_lambda)
        adv = tf.ones_like(pre.mask) / float(pre_batches[0].mask.size)

        def run():
            out = algo._main_step(pre, post, algo.settings.inner_steps)
            return out, algo._explore_step(pre, adv)[0]
        return run
    if hasattr(algo, "_hvp_fn"):  # MAML-TRPO
        pre, post = algo.process_update_data(pre_batches, post_batch)
        pre_sub = [data.first_episodes(algo.cfg.hvp_subsample) for data in pre]
        post_sub = post.first_episodes(algo.cfg.hvp_subsample)
        v = tf.ones_like(flatten(algo.policy.params)) * 1e-3

        def run():
            loss, g = algo._loss_and_grad_fn(pre, post)
            for _ in range(algo.cfg.cg_iters):
                g = algo._hvp_fn(pre_sub, post_sub, v)
            return loss, g, algo._loss_and_kl_fn(pre, post)
        return run
    return None  # the other algorithms: only the whole update is timed


def build(name: str, form: str, rng):
    """The algorithm ``name`` and its fake batches, its compiled functions traced with ``form``."""
    base, overrides = VARIANTS.get(name, (name, {}))
    env = make_batched_env(FLAGS.env, 1, nthread=1)
    obs_dim, act_dim = env.obs_dim, env.act_dim
    env.close()
    train = TrainConfig(env=FLAGS.env, seed=FLAGS.seed, meta_batch_size=FLAGS.meta_batch_size,
                        episodes_per_task=FLAGS.episodes_per_task, horizon=FLAGS.horizon)
    cls = algorithm_class(base)
    cfg = cls.config_class(**{**cls.env_presets(FLAGS.env), **overrides})
    T, E, H = FLAGS.meta_batch_size, FLAGS.episodes_per_task, FLAGS.horizon
    with gaussian_family(gaussian_forms()[form]):
        algo = build_algorithm(cls, train, cfg, obs_dim, act_dim)
        pre = [fake_batch(algo.exploration_policy(None), T, E, H, obs_dim, rng)
               for _ in range(algo.num_exploration_batches(train.inner_steps))]
        post = fake_batch(algo.exploitation_policy(None), T, E, H, obs_dim, rng)
        snapshot = [v.numpy() for v in state_variables(algo)]
        t = time.perf_counter()
        first = algo.update(pre, post)  # traces the update's functions with this form
        trace_s = time.perf_counter() - t
        compiled = compiled_step(algo, pre, post) if FLAGS.measure != "update" else None
        if compiled is not None:
            compiled()  # traces what the update did not (e.g. the first trial only)
    return {"algo": algo, "pre": pre, "post": post, "snapshot": snapshot, "first": first,
            "trace_s": trace_s, "compiled": compiled}


def restore(entry) -> None:
    for var, value in zip(state_variables(entry["algo"]), entry["snapshot"]):
        var.assign(value)


def timed(entry, form: str, what: str) -> float:
    restore(entry)
    with gaussian_family(gaussian_forms()[form]):  # a retrace, if any, keeps the form
        t = time.perf_counter()
        if what == "update":
            entry["algo"].update(entry["pre"], entry["post"])
        else:
            entry["compiled"]()
        return time.perf_counter() - t


def main(argv):
    del argv
    for form in FLAGS.forms:
        if form not in gaussian_forms():
            raise app.UsageError(f"--forms: {form!r} is not one of {', '.join(gaussian_forms())}")
    if len(FLAGS.forms) < 2:
        raise app.UsageError("--forms needs a reference and at least one form to compare with it")
    ref, others = FLAGS.forms[0], FLAGS.forms[1:]
    load_start = os.getloadavg()
    whats = ["update", "compiled"] if FLAGS.measure == "both" else [FLAGS.measure]
    results = {}
    print(f"{FLAGS.env}: {FLAGS.meta_batch_size} tasks x {FLAGS.episodes_per_task} episodes x {FLAGS.horizon} "
          f"steps; {FLAGS.reps} interleaved repetitions; os.cpu_count()={os.cpu_count()}, usable cores "
          f"{usable_cpus()}, nice {os.nice(0)}, load average at start {load_start[0]:.2f}", flush=True)
    for name in FLAGS.algos:
        entries = {form: build(name, form, np.random.default_rng(FLAGS.seed)) for form in FLAGS.forms}
        losses = {form: float(e["first"].get("loss/outer", float("nan"))) for form, e in entries.items()}
        for what in whats:
            if any(e["compiled"] is None for e in entries.values()) and what == "compiled":
                continue
            times = {form: [] for form in FLAGS.forms}
            for form in FLAGS.forms:  # one untimed call each (the warm-up after tracing)
                timed(entries[form], form, what)
            for rep in range(FLAGS.reps):
                order = FLAGS.forms if rep % 2 == 0 else FLAGS.forms[::-1]
                for form in order:
                    times[form].append(timed(entries[form], form, what))
            row = {"median_s": {f: statistics.median(ts) for f, ts in times.items()}, "times_s": times,
                   "ratio_median": {f: statistics.median([a / b for a, b in zip(times[f], times[ref])])
                                    for f in others},
                   "first_call_s": {f: entries[f]["trace_s"] for f in FLAGS.forms},
                   "first_loss_outer": losses}
            results.setdefault(name, {})[what] = row
            ratios = "  ".join(f"{f}/{ref} {row['ratio_median'][f]:.3f}" for f in others)
            secs = "  ".join(f"{f} {row['median_s'][f]:.2f}s" for f in FLAGS.forms)
            print(f"{name:15s} {what:9s} {secs}  median ratio {ratios}", flush=True)
        del entries
    load_end = os.getloadavg()
    print(f"load average at end {load_end[0]:.2f}")
    summary = {"env": FLAGS.env, "meta_batch_size": FLAGS.meta_batch_size,
               "episodes_per_task": FLAGS.episodes_per_task, "horizon": FLAGS.horizon, "reps": FLAGS.reps,
               "forms": FLAGS.forms, "cpu_count": os.cpu_count(), "usable_cores": usable_cpus(),
               "nice": os.nice(0), "loadavg_start": load_start, "loadavg_end": load_end, "results": results}
    if FLAGS.json:
        with open(FLAGS.json, "w") as f:
            json.dump(summary, f, indent=1)
        print(f"wrote {FLAGS.json}")


if __name__ == "__main__":
    app.run(main)
