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
stops the run without writing a checkpoint of the bad state; Ctrl-C finishes the iteration under
way, writes a checkpoint and exits cleanly (see :meth:`Trainer.train`).
"""
from __future__ import annotations

import math
import os
import signal
import threading
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
        """Run the remaining iterations.

        Ctrl-C (SIGINT, in the main thread) is deferred: the iteration under way is finished and
        logged, a checkpoint is written and ``KeyboardInterrupt`` is raised, so the run resumes
        exactly where it stopped. A second Ctrl-C stops at once; then a checkpoint is written only if
        the state is consistent (before the update of the iteration under way, with the sampler
        rewound); otherwise the last periodic checkpoint is kept.
        """
        cfg = self.config
        last: dict = {}
        self._stop_requested = False
        previous = self._install_sigint()
        start_state = None  # the sampler state at the start of the iteration, while it can be rewound
        saved_at = self.iteration if self.iteration else None  # a resumed run starts at its checkpoint
        try:
            while self.iteration < cfg.iterations:
                start_state = self.sampler.get_state()
                t0 = time.perf_counter()
                tasks = self.sampler.sample_tasks(cfg.meta_batch_size)
                pre, post, times = adapt_and_sample(self.algo, self.sampler, tasks, cfg.inner_steps)
                t = time.perf_counter()
                start_state = None  # from here on the weights may change: no rewinding past this point
                metrics = self.algo.update(pre, post)
                t_update = time.perf_counter() - t
                iteration = self.iteration + 1
                env_steps = self.env_steps + sum(b.env_steps for b in pre) + post.env_steps
                row = {
                    "iteration": iteration,
                    "env_steps": env_steps,
                    "pre_adapt/return": pre[0].mean_return() if pre else post.mean_return(),
                    "post_adapt/return": post.mean_return(),
                    **{f"pre_adapt/return_step_{k}": b.mean_return() for k, b in enumerate(pre) if k > 0},
                    **{f"{name}/final_{key}": b.final_info(key) for name, b in (("pre_adapt", pre[0] if pre else post),
                                                                                  ("post_adapt", post))
                       for key in sorted(b.infos) if key != "position"},
                    "diag/post_action_out_of_bounds": post.fraction_outside(
                        self.sampler.action_low, self.sampler.action_high),
                    "diag/post_mean_out_of_bounds": post.fraction_outside(
                        self.sampler.action_low, self.sampler.action_high, key="mean"),
                    "time/sampling": times["time/sampling"],
                    "time/adapt": times["time/adapt"],
                    "time/update": t_update,
                    **metrics,
                }
                if cfg.eval_every and iteration % cfg.eval_every == 0 and self.eval_sampler is not None:
                    eval_tasks = self.eval_sampler.sample_tasks(cfg.eval_tasks)
                    row.update(evaluate(self.algo, self.eval_sampler, eval_tasks, cfg.test_inner_steps))
                bad = [k for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)]
                if bad:
                    raise NonFiniteError(
                        f"{', '.join(bad)} became {row[bad[0]]} at iteration {iteration}; stopping. "
                        f"The last good checkpoint is kept in {self.checkpointer.directory}.")
                elapsed = self.elapsed + time.perf_counter() - t0
                row["time/iteration"] = time.perf_counter() - t0
                row["time/total"] = elapsed
                self.logger.log(row)
                # the row is on disk: the counters now describe the state after this iteration
                self.iteration, self.env_steps, self.elapsed = iteration, env_steps, elapsed
                start_state = self.sampler.get_state()
                last = row
                if self.iteration % cfg.checkpoint_every == 0 or self.iteration == cfg.iterations:
                    self.save()
                    saved_at = self.iteration
                if self._stop_requested and self.iteration < cfg.iterations:
                    self.logger.message(f"Ctrl-C: stopping after iteration {self.iteration}.")
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            if previous is not None:  # more Ctrl-Cs must not interrupt the checkpoint written below
                signal.signal(signal.SIGINT, signal.SIG_IGN)
            if start_state is not None:  # a consistent state: save it (rewinding the sampler if needed)
                if saved_at != self.iteration:
                    self.sampler.set_state(start_state)
                    self.save()
                self.logger.message(f"Interrupted: saved a checkpoint at iteration {self.iteration} in "
                                    f"{self.checkpointer.directory}; continue with --resume --logdir=...")
            else:
                self.logger.message(f"Interrupted during an update; the last periodic checkpoint in "
                                    f"{self.checkpointer.directory} is kept; continue with --resume --logdir=...")
            raise
        except FloatingPointError as err:
            raise NonFiniteError(f"{err} at iteration {self.iteration + 1}; stopping. The last good checkpoint "
                                 f"is kept in {self.checkpointer.directory}.") from err
        finally:
            self._restore_sigint(previous)
        return last

    def _install_sigint(self):
        if threading.current_thread() is not threading.main_thread():
            return None

        def handler(signum, frame):
            if self._stop_requested:
                raise KeyboardInterrupt
            self._stop_requested = True
            try:  # a raw write: the handler may run in the middle of a print to the same stream
                os.write(2, b"\nCtrl-C: finishing this iteration, then saving and stopping "
                            b"(press Ctrl-C again to stop at once).\n")
            except OSError:
                pass

        try:
            return (signal.signal(signal.SIGINT, handler),)
        except ValueError:  # not allowed here (e.g. an embedded interpreter)
            return None

    @staticmethod
    def _restore_sigint(previous) -> None:
        if previous is not None:  # a 1-tuple: the handler itself may be None (installed outside Python)
            signal.signal(signal.SIGINT, previous[0] if previous[0] is not None else signal.SIG_DFL)
