"""The meta-training loop shared by every algorithm, and meta-testing through the same calls.

Each iteration (see ``mame_tf.algorithm`` for the interface)::

    tasks   = sampler.sample_tasks(meta_batch_size)
    adapted = None; pre = []
    for k in range(algo.num_exploration_batches(inner_steps)):
        pre.append(sampler.sample(tasks, algo.exploration_policy(adapted)))
        adapted = algo.adapt(pre[-1], adapted, inner_steps)
    post    = sampler.sample(tasks, algo.exploitation_policy(adapted))
    metrics = algo.update(pre, post)

Counters, logging and checkpoints stay eager and outside the compiled update. A non-finite metric
stops the run without writing a checkpoint of the bad state; Ctrl-C writes a checkpoint of the last
completed iteration and exits cleanly.
"""
from __future__ import annotations

import math
import time

import numpy as np

from mame_tf.algorithm import MetaAlgorithm
from mame_tf.batch import Batch
from mame_tf.sampler import MetaSampler


class NonFiniteError(RuntimeError):
    """A loss or metric became NaN or Inf."""


def adapt_and_sample(algo: MetaAlgorithm, sampler: MetaSampler, tasks, inner_steps: int):
    """The adaptation path used by training and meta-testing: returns ``(pre_batches, post_batch, times)``."""
    t0 = time.perf_counter()
    t_sample = t_adapt = 0.0
    adapted = None
    pre: list[Batch] = []
    for _ in range(algo.num_exploration_batches(inner_steps)):
        t = time.perf_counter()
        pre.append(sampler.sample(tasks, algo.exploration_policy(adapted)))
        t_sample += time.perf_counter() - t
        t = time.perf_counter()
        adapted = algo.adapt(pre[-1], adapted, inner_steps)
        t_adapt += time.perf_counter() - t
    t = time.perf_counter()
    post = sampler.sample(tasks, algo.exploitation_policy(adapted))
    t_sample += time.perf_counter() - t
    return pre, post, {"time/sampling": t_sample, "time/adapt": t_adapt, "time/rollout_total": time.perf_counter() - t0}


def evaluate(algo: MetaAlgorithm, sampler: MetaSampler, tasks, inner_steps: int) -> dict[str, float]:
    """Meta-test on ``tasks``: mean returns of each exploration batch and after adaptation."""
    pre, post, _ = adapt_and_sample(algo, sampler, tasks, inner_steps)
    out = {f"eval/return_batch_{k}": b.mean_return() for k, b in enumerate(pre)}
    out["eval/pre_adapt/return"] = pre[0].mean_return() if pre else post.mean_return()
    out["eval/post_adapt/return"] = post.mean_return()
    for key in sorted(post.infos):
        if key != "position":
            out[f"eval/post_adapt/final_{key}"] = post.final_info(key)
    return out


class Trainer:
    def __init__(self, algo: MetaAlgorithm, sampler: MetaSampler, config, logger, checkpointer,
                 eval_sampler: MetaSampler | None = None):
        self.algo = algo
        self.sampler = sampler
        self.config = config
        self.logger = logger
        self.checkpointer = checkpointer
        self.eval_sampler = eval_sampler
        self.iteration = 0
        self.env_steps = 0
        self.elapsed = 0.0

    # -- state -------------------------------------------------------------------------------------
    def state(self, sampler_state: dict | None = None) -> dict:
        return {"env_steps": self.env_steps, "elapsed": self.elapsed,
                "sampler": sampler_state or self.sampler.get_state(),
                "eval_sampler": self.eval_sampler.get_state() if self.eval_sampler else None}

    def restore(self) -> bool:
        state = self.checkpointer.restore_latest()
        if state is None:
            return False
        self.iteration = int(state["iteration"])
        self.env_steps = int(state["env_steps"])
        self.elapsed = float(state.get("elapsed", 0.0))
        self.sampler.set_state(state["sampler"])
        if self.eval_sampler is not None and state.get("eval_sampler"):
            self.eval_sampler.set_state(state["eval_sampler"])
        return True

    def save(self, sampler_state: dict | None = None) -> None:
        self.checkpointer.save(self.iteration, self.state(sampler_state))

    # -- loop --------------------------------------------------------------------------------------
    def train(self) -> dict:
        cfg = self.config
        last: dict = {}
        start_state = None
        try:
            while self.iteration < cfg.iterations:
                start_state = self.sampler.get_state()
                t0 = time.perf_counter()
                tasks = self.sampler.sample_tasks(cfg.meta_batch_size)
                pre, post, times = adapt_and_sample(self.algo, self.sampler, tasks, cfg.inner_steps)
                t = time.perf_counter()
                metrics = self.algo.update(pre, post)
                t_update = time.perf_counter() - t
                self.iteration += 1
                start_state = None  # the update is applied: this iteration's state is the current one
                self.env_steps += sum(b.env_steps for b in pre) + post.env_steps
                self.elapsed += time.perf_counter() - t0
                row = {
                    "iteration": self.iteration,
                    "env_steps": self.env_steps,
                    "pre_adapt/return": pre[0].mean_return() if pre else post.mean_return(),
                    "post_adapt/return": post.mean_return(),
                    **{f"pre_adapt/return_step_{k}": b.mean_return() for k, b in enumerate(pre) if k > 0},
                    **{f"{name}/final_{key}": b.final_info(key) for name, b in (("pre_adapt", pre[0] if pre else post),
                                                                                  ("post_adapt", post))
                       for key in sorted(b.infos) if key != "position"},
                    "time/sampling": times["time/sampling"],
                    "time/adapt": times["time/adapt"],
                    "time/update": t_update,
                    "time/iteration": time.perf_counter() - t0,
                    "time/total": self.elapsed,
                    **metrics,
                }
                if cfg.eval_every and self.iteration % cfg.eval_every == 0 and self.eval_sampler is not None:
                    eval_tasks = self.eval_sampler.sample_tasks(cfg.eval_tasks)
                    row.update(evaluate(self.algo, self.eval_sampler, eval_tasks, cfg.test_inner_steps))
                bad = [k for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)]
                if bad:
                    raise NonFiniteError(
                        f"{', '.join(bad)} became {row[bad[0]]} at iteration {self.iteration}; stopping. "
                        f"The last good checkpoint is kept in {self.checkpointer.directory}.")
                self.logger.log(row)
                last = row
                if self.iteration % cfg.checkpoint_every == 0 or self.iteration == cfg.iterations:
                    self.save()
        except KeyboardInterrupt:
            if start_state is not None:  # interrupted mid-iteration: rewind the sampler to its start
                self.sampler.set_state(start_state)
            self.save()
            self.logger.message(f"Interrupted: saved a checkpoint at iteration {self.iteration} in "
                                f"{self.checkpointer.directory}; continue with --resume --logdir=...")
            raise
        except FloatingPointError as err:
            raise NonFiniteError(f"{err} at iteration {self.iteration + 1}; stopping. The last good checkpoint "
                                 f"is kept in {self.checkpointer.directory}.") from err
        return last
