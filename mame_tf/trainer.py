"""The meta-training loop shared by every algorithm, and meta-testing through the same calls.

Each iteration (see ``mame_tf.algorithm`` for the interface)::

    tasks       = sampler.sample_tasks(meta_batch_size)
    adapted     = None; pre_batches = []
    for k in range(algo.num_exploration_batches(inner_steps)):
        pre_batches.append(sampler.sample(tasks, algo.exploration_policy(adapted)))
        adapted = algo.adapt(pre_batches[-1], adapted, inner_steps)
    post_batch  = sampler.sample(tasks, algo.exploitation_policy(adapted))
    metrics     = algo.update(pre_batches, post_batch)

Everything around these lines (run directory, counters, logging, checkpoints, signals, the
non-finite policy) belongs to :class:`mame_tf.run.Run`; :func:`train` is the loop and nothing else.
"""
from __future__ import annotations

import time

from mame_tf.algorithm import MetaAlgorithm
from mame_tf.batch import Batch
from mame_tf.run import NonFiniteError, Run  # noqa: F401  (NonFiniteError: raised through the run)
from mame_tf.sampler import MetaSampler


def adapt_and_sample(algo: MetaAlgorithm, sampler: MetaSampler, tasks, inner_steps: int):
    """The adaptation path used by training and meta-testing: returns ``(pre_batches, post_batch, times)``."""
    t_sample = t_adapt = 0.0
    adapted = None
    pre_batches: list[Batch] = []
    for _ in range(algo.num_exploration_batches(inner_steps)):
        t = time.perf_counter()
        pre_batches.append(sampler.sample(tasks, algo.exploration_policy(adapted)))
        t_sample += time.perf_counter() - t
        t = time.perf_counter()
        adapted = algo.adapt(pre_batches[-1], adapted, inner_steps)
        t_adapt += time.perf_counter() - t
    t = time.perf_counter()
    post_batch = sampler.sample(tasks, algo.exploitation_policy(adapted))
    t_sample += time.perf_counter() - t
    return pre_batches, post_batch, {"time/sampling": t_sample, "time/adapt": t_adapt}


def evaluate(algo: MetaAlgorithm, sampler: MetaSampler, tasks, inner_steps: int) -> dict[str, float]:
    """Meta-test on ``tasks``: mean returns of each exploration batch and after adaptation."""
    pre_batches, post_batch, _ = adapt_and_sample(algo, sampler, tasks, inner_steps)
    out = {f"eval/return_batch_{k}": b.mean_return() for k, b in enumerate(pre_batches)}
    return {**out, **evaluation_metrics(pre_batches, post_batch)}


def evaluation_metrics(pre_batches: list[Batch], post_batch: Batch) -> dict[str, float]:
    """``eval/pre_adapt/return``, ``eval/post_adapt/return`` and the post-update episodes' final infos."""
    out = {"eval/pre_adapt/return": (pre_batches[0] if pre_batches else post_batch).mean_return(),
           "eval/post_adapt/return": post_batch.mean_return()}
    for key in sorted(post_batch.infos):
        if key != "position":
            out[f"eval/post_adapt/final_{key}"] = post_batch.final_info(key)
    return out


def progress_row(iteration: int, env_steps: int, pre_batches: list[Batch], post_batch: Batch, times: dict,
                 metrics: dict, sampler: MetaSampler) -> dict:
    """The ``progress.csv`` row of one iteration (the run adds the update and total times)."""
    first = pre_batches[0] if pre_batches else post_batch
    low, high = sampler.action_low, sampler.action_high
    return {
        "iteration": iteration,
        "env_steps": env_steps + sum(b.env_steps for b in pre_batches) + post_batch.env_steps,
        "pre_adapt/return": first.mean_return(),
        "post_adapt/return": post_batch.mean_return(),
        **{f"pre_adapt/return_step_{k}": b.mean_return() for k, b in enumerate(pre_batches) if k > 0},
        **{f"{name}/final_{key}": b.final_info(key) for name, b in (("pre_adapt", first), ("post_adapt", post_batch))
           for key in sorted(b.infos) if key != "position"},
        "diag/post_action_out_of_bounds": post_batch.fraction_outside(low, high),
        "diag/post_mean_out_of_bounds": post_batch.fraction_outside(low, high, key="mean"),
        "time/sampling": times["time/sampling"],
        "time/adapt": times["time/adapt"],
        **metrics,
    }


def train(algo: MetaAlgorithm, sampler: MetaSampler, run: Run, eval_sampler: MetaSampler | None = None) -> dict:
    """Run the remaining iterations of ``run`` (started with this algorithm and sampler); returns the last row."""
    cfg = run.config
    for iteration in run.iterations():
        tasks = sampler.sample_tasks(cfg.meta_batch_size)
        pre_batches, post_batch, times = adapt_and_sample(algo, sampler, tasks, cfg.inner_steps)
        with run.updating():
            metrics = algo.update(pre_batches, post_batch)
        row = progress_row(iteration, run.env_steps, pre_batches, post_batch, times, metrics, sampler)
        if run.evaluation_due(iteration):
            row.update(evaluate(algo, eval_sampler, eval_sampler.sample_tasks(cfg.eval_tasks), cfg.test_inner_steps))
        run.commit(row)
    return run.last_row
