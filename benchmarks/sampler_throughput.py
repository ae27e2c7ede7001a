"""Sampler throughput against gymnasium's SyncVectorEnv and the physical limit, measured in one run.

    python benchmarks/sampler_throughput.py --env=cheetah_dir
    python benchmarks/sampler_throughput.py --env=ant_dir

Numbers of control steps per second (one control step = ``frame_skip`` physics substeps):

* ``steps_per_s``: ``MetaSampler.sample`` at the paper's scale (40 tasks × 20 episodes × 200 steps)
  with a (100, 100) Keras Gaussian policy computing the actions of all 800 simulations each step;
* ``sync_vector_env_steps_per_s``: gymnasium's ``SyncVectorEnv`` of the same registered envs, stepped
  with the same policy (the usual way to batch gymnasium envs in one process);
* ``raw_limit_steps_per_s``: a bare single-thread ``mj_step`` loop (same frame skip, no Python work
  besides setting the controls and the call) times the number of usable cores: what the cores can
  simulate at best. The loop replays the very action sequences the sampler has just drawn (from a
  reset state, up to each episode's termination), so that both simulate the same motions: the cost
  of a MuJoCo step depends on the state (contacts), and a cheetah driven by a fresh Gaussian policy
  flips and touches the ground far more than one driven by uniform random controls;
* ``raw_limit_random_controls_steps_per_s``: the same loop with uniform random controls in the
  control range, reported for comparison (a lighter, unrepresentative load).

Shared machines drift by 10-20 % within minutes, so the sampler and the replay loop are measured in
``--rounds`` interleaved rounds (one sampling call, then the replay of its actions) and each round
gives one ratio; the figures reported are the medians over rounds. The last line printed is one
JSON object with all of them, the ratios and the per-round measurements.
"""
from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from mame_tf.registry import FAMILIES  # noqa: E402

flags.DEFINE_enum("env", "cheetah_dir", list(FAMILIES), "Task family.")
flags.DEFINE_integer("meta_batch_size", 40, "Tasks per sampling call.")
flags.DEFINE_integer("episodes_per_task", 20, "Episodes per task.")
flags.DEFINE_integer("horizon", 200, "Steps per episode.")
flags.DEFINE_integer("rounds", 5, "Interleaved rounds of (one timed sampling call, raw replay of its actions), "
                     "after one warm-up call.")
flags.DEFINE_integer("sync_envs", 800, "Number of envs in the SyncVectorEnv comparison.")
flags.DEFINE_integer("sync_steps", 40, "Vector steps timed for SyncVectorEnv.")
flags.DEFINE_float("raw_seconds", 2.0, "Seconds of the raw mj_step loop in each round (and once with random controls).")
FLAGS = flags.FLAGS


def make_sampler_timer(policy):
    """A function that runs one sampling call at the configured scale and returns its steps/s."""
    from mame_tf.sampler import MetaSampler

    sampler = MetaSampler(FLAGS.env, FLAGS.episodes_per_task, FLAGS.horizon, seed=0)
    tasks = sampler.sample_tasks(FLAGS.meta_batch_size)

    def timed():
        """One sampling call: ``(steps per second, the batch)``."""
        fn = policy.sampling_fn()  # made per call, as the trainer does
        t = time.perf_counter()
        batch = sampler.sample(tasks, fn)
        return batch.env_steps / (time.perf_counter() - t), batch

    timed()  # warm-up: builds the simulations
    return timed


def sync_vector_rate(policy) -> float:
    import gymnasium as gym

    from mame_tf import envs

    n = FLAGS.sync_envs
    vec = gym.vector.SyncVectorEnv([lambda: envs.make(FLAGS.env) for _ in range(n)])
    obs, _ = vec.reset(seed=0)
    fn = policy.sampling_fn()
    rng = np.random.default_rng(0)
    for _ in range(3):
        mean, log_std = fn(obs.astype(np.float32).reshape(1, n, -1))
        obs, *_ = vec.step((mean + np.exp(log_std) * rng.standard_normal(mean.shape)).reshape(n, -1))
    t = time.perf_counter()
    for _ in range(FLAGS.sync_steps):
        mean, log_std = fn(obs.astype(np.float32).reshape(1, n, -1))
        obs, *_ = vec.step((mean + np.exp(log_std) * rng.standard_normal(mean.shape)).reshape(n, -1))
    rate = n * FLAGS.sync_steps / (time.perf_counter() - t)
    vec.close()
    return rate


def raw_rate(actions: np.ndarray | None, mask: np.ndarray | None) -> float | None:
    """Single-thread ``mj_step`` rate for ``--raw_seconds``, replaying ``actions [episodes, H, nu]``
    (each from a reset state, for the steps where ``mask`` is 1), or uniform random controls."""
    if FAMILIES[FLAGS.env].kind == "point":
        return None
    import mujoco

    from mame_tf.envs import mujoco_tasks

    model = mujoco.MjModel.from_xml_path(mujoco_tasks.model_path(FLAGS.env))
    data = mujoco.MjData(model)
    rng = np.random.default_rng(0)
    if actions is None:
        low, high = model.actuator_ctrlrange[:, 0], model.actuator_ctrlrange[:, 1]
        actions = rng.uniform(low, high, size=(50, FLAGS.horizon, model.nu))
        mask = np.ones(actions.shape[:2])
    episodes = [a[m > 0].astype(np.float64) for a, m in zip(actions, mask)]
    steps, i, t0 = 0, 0, time.perf_counter()
    while time.perf_counter() - t0 < FLAGS.raw_seconds:
        mujoco.mj_resetData(model, data)
        data.qpos[:], data.qvel[:] = mujoco_tasks.reset_noise(rng, model.qpos0, model.nv)
        for c in episodes[i % len(episodes)]:
            data.ctrl[:] = c
            mujoco.mj_step(model, data, mujoco_tasks.FRAME_SKIP)
        steps += len(episodes[i % len(episodes)])
        i += 1
    return steps / (time.perf_counter() - t0)


def main(argv):
    del argv
    import mame_tf  # noqa: F401
    from mame_tf.envs.batched import usable_cpus
    from mame_tf.networks import GaussianMLPPolicy
    from mame_tf.sampler import MetaSampler

    if FLAGS.rounds < 1:
        raise app.UsageError(f"--rounds={FLAGS.rounds} must be >= 1")
    probe = MetaSampler(FLAGS.env, 1, FLAGS.horizon)
    policy = GaussianMLPPolicy(probe.obs_dim, probe.act_dim, (100, 100), seed=0)
    cores = usable_cpus()
    timed_sample = make_sampler_timer(policy)
    rounds = []
    for r in range(FLAGS.rounds):
        ours_r, batch = timed_sample()
        acts = batch.actions.reshape((-1,) + batch.actions.shape[2:])
        raw_r = raw_rate(acts, batch.mask.reshape(-1, batch.mask.shape[-1]))
        rounds.append({"sampler": round(ours_r), "raw_single_thread": None if raw_r is None else round(raw_r),
                       "fraction": None if raw_r is None else round(ours_r / (raw_r * cores), 3)})
        print(f"round {r + 1}/{FLAGS.rounds}: {rounds[-1]}", flush=True)
    ours = float(np.median([r["sampler"] for r in rounds]))
    raw_single = None if rounds[0]["raw_single_thread"] is None else float(
        np.median([r["raw_single_thread"] for r in rounds]))
    fraction = None if raw_single is None else float(np.median([r["fraction"] for r in rounds]))
    raw_random = raw_rate(None, None)
    sync = sync_vector_rate(policy)
    limit = None if raw_single is None else raw_single * cores
    result = {
        "env": FLAGS.env,
        "cores": cores,
        "simulations": FLAGS.meta_batch_size * FLAGS.episodes_per_task,
        "steps_per_s": round(ours),
        "sync_vector_env_steps_per_s": round(sync),
        "raw_single_thread_steps_per_s": None if raw_single is None else round(raw_single),
        "raw_limit_steps_per_s": None if limit is None else round(limit),
        "fraction_of_raw_limit": None if fraction is None else round(fraction, 3),
        "raw_limit_random_controls_steps_per_s": None if raw_random is None else round(raw_random * cores),
        "speedup_vs_sync_vector_env": round(ours / sync, 2),
        "rounds": rounds,
    }
    print(f"{'':34s}control steps/s")
    print(f"{'MetaSampler (Keras policy)':34s}{ours:12,.0f}   (median of {FLAGS.rounds} rounds)")
    print(f"{'SyncVectorEnv':34s}{sync:12,.0f}")
    if limit is not None:
        print(f"{'raw mj_step, 1 thread':34s}{raw_single:12,.0f}   (replaying the sampler's actions)")
        print(f"{f'raw limit (x {cores} cores)':34s}{limit:12,.0f}")
        print(f"{'fraction of the raw limit':34s}{fraction:12.3f}   (median of the per-round ratios)")
        print(f"{'raw limit, uniform random controls':34s}{raw_random * cores:12,.0f}   "
              f"(fraction {ours / (raw_random * cores):.3f})")
    print(json.dumps(result))


if __name__ == "__main__":
    app.run(main)
