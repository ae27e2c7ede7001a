"""Seconds per meta-iteration, split into sampling and update, for every algorithm in one run.

    python benchmarks/update_timing.py --env=cheetah_dir            # paper scale: 40 tasks x 20 episodes x 200 steps

For each algorithm, after a warm-up iteration (sampling and an update, which traces the
``tf.function``s): one more iteration's sampling (pre- and post-update batches, adaptation included)
and its update, timed: the steady state of training. All algorithms are timed in the same run, so
their ratios are comparable on a shared machine. The last line is one JSON object.
"""
from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from mame_tf.registry import ALGO_ORDER, FAMILIES, algorithm_class  # noqa: E402

flags.DEFINE_enum("env", "cheetah_dir", list(FAMILIES), "Task family.")
flags.DEFINE_list("algos", list(ALGO_ORDER), "Algorithms to time.")
flags.DEFINE_integer("meta_batch_size", 40, "Tasks per iteration.")
flags.DEFINE_integer("episodes_per_task", 20, "Episodes per task.")
flags.DEFINE_integer("horizon", 200, "Steps per episode.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    import mame_tf  # noqa: F401
    from mame_tf.config import TrainConfig
    from mame_tf.envs.batched import usable_cpus
    from mame_tf.launch import build_algorithm
    from mame_tf.sampler import MetaSampler
    from mame_tf.trainer import adapt_and_sample

    train = TrainConfig(env=FLAGS.env, meta_batch_size=FLAGS.meta_batch_size,
                        episodes_per_task=FLAGS.episodes_per_task, horizon=FLAGS.horizon)
    sampler = MetaSampler(FLAGS.env, FLAGS.episodes_per_task, FLAGS.horizon, seed=0)
    rows = {}
    for name in FLAGS.algos:
        cls = algorithm_class(name)
        algo = build_algorithm(cls, train, cls.config_class(), sampler.obs_dim, sampler.act_dim)
        tasks = sampler.sample_tasks(FLAGS.meta_batch_size)
        pre, post, _ = adapt_and_sample(algo, sampler, tasks, train.inner_steps)  # warm-up: traces
        t = time.perf_counter()
        algo.update(pre, post)
        first = time.perf_counter() - t
        tasks = sampler.sample_tasks(FLAGS.meta_batch_size)
        t = time.perf_counter()
        pre, post, times = adapt_and_sample(algo, sampler, tasks, train.inner_steps)
        sampling = time.perf_counter() - t
        t = time.perf_counter()
        metrics = algo.update(pre, post)
        steady = time.perf_counter() - t
        rows[name] = {"sampling_s": round(sampling, 2), "adapt_s": round(times["time/adapt"], 2),
                      "update_first_s": round(first, 2), "update_s": round(steady, 2),
                      "update_over_sampling": round(steady / sampling, 2)}
        extra = ""
        if "kl/post" in metrics:
            rows[name].update(kl_after_step=round(metrics["kl/post"], 5), trpo_accepted=metrics["trpo/accepted"],
                              trpo_backtracks=metrics["trpo/backtracks"])
            extra = (f"  KL after step {metrics['kl/post']:.4f} (bound {algo.cfg.max_kl}), "
                     f"{int(metrics['trpo/backtracks'])} backtracks")
        print(f"{name:10s} sampling {sampling:6.2f}s (adapt {times['time/adapt']:.2f}s)  "
              f"update {steady:6.2f}s (first call {first:.2f}s){extra}", flush=True)
    print(json.dumps({"env": FLAGS.env, "cores": usable_cpus(), "meta_batch_size": FLAGS.meta_batch_size,
                      "episodes_per_task": FLAGS.episodes_per_task, "horizon": FLAGS.horizon, "algorithms": rows}))


if __name__ == "__main__":
    app.run(main)
