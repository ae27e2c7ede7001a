"""One training run's lifecycle: everything around the meta-iteration, in one object.

:class:`Run` owns the run directory and its lock, ``config.json``, the checkpoints (save, validate,
fall back to the newest intact one), the logger, the SIGINT/SIGTERM guard, the non-finite policy and
the bookkeeping that decides which states are consistent enough to save. The loop itself
(``mame_tf.trainer.train``) is left with the algorithm::

    with Run(train_config, algo_name, algo_config) as run:
        run.start(algo, sampler)
        for iteration in run.iterations():
            tasks = sampler.sample_tasks(meta_batch_size)
            pre, post, times = adapt_and_sample(algo, sampler, tasks, inner_steps)
            with run.updating():
                metrics = algo.update(pre, post)
            run.commit(row(iteration, pre, post, times, metrics))

Faults and what they leave (the launcher's exit code in brackets):

* a new run in a directory that already holds one is refused, naming ``--resume`` [2];
* a second process on a live run directory is refused, naming the live process; the lock is an
  ``flock`` on ``run.lock``, so a killed process never leaves it held [2];
* a damaged checkpoint is skipped with one line saying which and why, and the newest intact one is
  used; ``config.json`` is rewritten only after a checkpoint has been restored [2 if none is intact];
* SIGINT or SIGTERM finishes the iteration under way, logs it, saves a checkpoint and stops
  [130 / 143]; a second signal stops at once, keeping the last consistent checkpoint;
* a NaN or Inf in a loss, a metric or the policy's actions stops the run before the update reaches
  the weights; the last good checkpoint is kept [3];
* a failed write (a full disk, a read-only directory) stops the run with the file and the reason;
  a ``progress.csv`` row is written whole or not at all, and the last complete checkpoint is kept [4].
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import math
import os
import signal
import sys
import threading
import time

LOCK = "run.lock"
# Files and directories that mean "this directory already holds a run".
RUN_FILES = ("config.json", "progress.csv", "checkpoints", "wandb_run_id")
SIGNAL_NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}



class RunError(ValueError):
    """The run cannot start or continue as asked; the message says why and what to do instead."""

    exit_code = 2


class StorageError(RunError):
    """A write to the run directory failed (a full disk, a read-only directory)."""

    exit_code = 4


class NonFiniteError(RuntimeError):
    """A loss, metric or action became NaN or Inf."""

    exit_code = 3


class Interrupted(KeyboardInterrupt):
    """The run stopped on SIGINT or SIGTERM after keeping a consistent checkpoint."""

    def __init__(self, signum: int):
        super().__init__(SIGNAL_NAMES.get(signum, str(signum)))
        self.signum = int(signum)
        self.exit_code = 128 + self.signum


def _reason(err: OSError) -> str:
    return err.strerror or str(err)


def default_logdir(algo_name: str, train) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return os.path.join("runs", f"{algo_name}-{train.env}-seed{train.seed}-{stamp}")


def _lock_holder(path: str) -> str:
    try:
        with open(path) as fh:
            pid = fh.read().strip()
    except OSError:
        pid = ""
    return f"process {pid}" if pid.isdigit() else "another process"


class LockHeld(RuntimeError):
    """Another live process holds the lock; ``holder`` names it (``process 1234``)."""

    def __init__(self, holder: str):
        super().__init__(holder)
        self.holder = holder


class LockFailed(OSError):
    """The file system refused the lock itself (not because another process holds it)."""


def acquire_lock(lock_path: str) -> int:
    """An exclusive ``flock`` on ``lock_path`` (created if needed), which then holds this process's id.

    Returns the file descriptor: closing it, or the end of the process however it ends, releases the
    lock, so a killed process never leaves it held. Raises :class:`LockHeld` when another process holds
    it, :class:`LockFailed` when the lock cannot be taken, and OSError when the file cannot be opened or
    written.
    """
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        os.close(fd)
        if err.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise LockHeld(_lock_holder(lock_path)) from None
        raise LockFailed(err.errno, err.strerror) from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    except OSError:
        os.close(fd)
        raise
    return fd


class Run:
    """The lifecycle of one training run in ``train.logdir`` (see the module docstring)."""

    def __init__(self, train, algo_name: str, algo_config, stream=None):
        if not train.logdir:
            train = dataclasses.replace(train, logdir=default_logdir(algo_name, train))
        self.config = train
        self.algo_name = algo_name
        self.algo_config = algo_config
        self.logdir = train.logdir
        self.stream = stream if stream is not None else sys.stdout
        self.iteration = 0
        self.env_steps = 0
        self.elapsed = 0.0
        self.last_row: dict = {}
        self.checkpointer = None
        self.logger = None
        self._lock_fd: int | None = None
        self._sampler = None
        self._eval_sampler = None
        self._previous_handlers: dict | None = None
        self._stop_signal: int | None = None
        self._rewind = None  # the sampler state to save with, while the weights match the counters
        self._saved_at: int | None = None
        self._complete = False
        self._t0 = 0.0
        self._t_update = 0.0

    # -- opening -----------------------------------------------------------------------------------
    def __enter__(self) -> Run:
        try:
            self._open_directory()
            self._install_guard()
        except BaseException:
            self._release_lock()
            raise
        return self

    def _open_directory(self) -> None:
        path = self.logdir
        if os.path.exists(path) and not os.path.isdir(path):
            raise RunError(f"--logdir={path} is not a directory")
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as err:
            raise RunError(f"--logdir={path} cannot be created: {_reason(err)}") from None
        try:
            self._lock_fd = acquire_lock(os.path.join(path, LOCK))
        except LockHeld as held:
            raise RunError(f"--logdir={path} is in use by {held.holder}; wait for it to stop "
                           f"(or stop it), or give another --logdir") from None
        except LockFailed as err:
            raise RunError(f"--logdir={path} cannot be locked: {_reason(err)}") from None
        except OSError as err:
            raise RunError(f"--logdir={path} is not writable: {_reason(err)}") from None
        if not self.config.resume:
            present = [name for name in RUN_FILES if os.path.exists(os.path.join(path, name))]
            if present:
                raise RunError(f"--logdir={path} already holds a run ({', '.join(present)}); continue it with "
                               f"--resume --logdir={path}, or give a fresh --logdir")

    def start(self, algo, sampler, eval_sampler=None) -> None:
        """Restore the last intact checkpoint (on resume), then write ``config.json`` and open the logger."""
        from mame_tf import config as cfgmod
        from mame_tf.checkpoint import Checkpointer, atomic_write_text, check_run_state
        from mame_tf.logger import Logger

        cfg = self.config
        self._sampler, self._eval_sampler = sampler, eval_sampler
        self.checkpointer = Checkpointer(os.path.join(self.logdir, "checkpoints"), algo.checkpoint_items(),
                                         keep=cfg.keep_checkpoints, check_state=check_run_state)
        resumed = False
        if cfg.resume:
            state, skipped = self.checkpointer.restore(report=self.say)
            if state is None and skipped:
                raise RunError(f"no intact checkpoint in {self.checkpointer.directory}: every one is damaged (see "
                               f"above); move the checkpoints/ directory away to start the run again")
            if state is None:
                self.say(f"No complete checkpoint in {self.logdir}; starting from iteration 0.")
            else:
                iteration = int(state["iteration"])
                if iteration > cfg.iterations:
                    raise RunError(f"--iterations={cfg.iterations} is below the iteration of the run's checkpoint "
                                   f"({iteration}); give --iterations={iteration} or more")
                self.iteration = iteration
                self.env_steps = int(state["env_steps"])
                self.elapsed = float(state.get("elapsed", 0.0))
                sampler.set_state(state["sampler"])
                if eval_sampler is not None and state.get("eval_sampler"):
                    eval_sampler.set_state(state["eval_sampler"])
                resumed = True
                self._saved_at = iteration
                if iteration == cfg.iterations:
                    self._complete = True
                    self.last_row = self._last_logged_row()
                    self.say(f"{self.logdir} is already complete ({iteration} iterations); nothing to do.")
                    return
                try:
                    self.checkpointer.discard_after(iteration)
                except OSError as err:
                    raise StorageError(f"could not tidy {self.checkpointer.directory}: {_reason(err)}") from None
        config_text = cfgmod.dumps(cfg, self.algo_name, self.algo_config)
        try:
            atomic_write_text(os.path.join(self.logdir, "config.json"), config_text)
            self.logger = Logger(self.logdir, cfg.iterations, json.loads(config_text), cfg.wandb_mode,
                                 cfg.wandb_project, run_name=os.path.basename(os.path.normpath(self.logdir)),
                                 resume_iteration=self.iteration if cfg.resume else None, quiet=cfg.quiet,
                                 stream=self.stream, tensorboard_dir=os.path.join(self.logdir, "tensorboard")
                                 if cfg.tensorboard else None)
        except OSError as err:
            raise StorageError(f"could not write to {self.logdir}: {_reason(err)}") from None
        self._rewind = sampler.get_state()
        self.say(f"{self.algo_name} on {cfg.env}: {cfg.iterations} iterations of {cfg.meta_batch_size} tasks "
                 f"x {cfg.episodes_per_task} episodes x {cfg.horizon} steps; run directory {self.logdir}"
                 + (f" (resumed at iteration {self.iteration})" if resumed else ""))

    def _last_logged_row(self) -> dict:
        from mame_tf.results import progress_rows

        try:
            rows = progress_rows(self.logdir)
        except OSError:
            return {}
        row = rows[-1] if rows else {}
        out = {}
        for key, value in row.items():
            try:
                out[key] = float(value)
            except (TypeError, ValueError):
                continue
        if "iteration" in out:
            out["iteration"] = int(out["iteration"])
        return out

    # -- the loop's three calls --------------------------------------------------------------------
    def iterations(self):
        """The numbers of the iterations still to run (none if the run is complete)."""
        while not self._complete and self.iteration < self.config.iterations:
            if self._stop_signal is not None:
                raise KeyboardInterrupt
            self._rewind = self._sampler.get_state()
            self._t0 = time.perf_counter()
            self._t_update = 0.0
            yield self.iteration + 1

    @contextlib.contextmanager
    def updating(self):
        """The algorithm's update: from here on this iteration's state can no longer be rewound."""
        self._rewind = None
        t = time.perf_counter()
        yield
        self._t_update = time.perf_counter() - t

    def evaluation_due(self, iteration: int) -> bool:
        every = self.config.eval_every
        return bool(every) and iteration % every == 0 and self._eval_sampler is not None

    def commit(self, row: dict) -> None:
        """Log the finished iteration's row, advance the counters, save when due, stop if asked."""
        cfg = self.config
        iteration = int(row["iteration"])
        bad = [k for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            raise NonFiniteError(f"{', '.join(bad)} became {row[bad[0]]} at iteration {iteration}; stopping. "
                                 f"{self.kept()}")
        now = time.perf_counter()
        row = {**row, "time/update": self._t_update, "time/iteration": now - self._t0,
               "time/total": self.elapsed + now - self._t0}
        try:
            self.logger.log(row)
        except OSError as err:
            raise StorageError(f"could not write {self.logger.csv_path}: {_reason(err)}; stopping at iteration "
                               f"{iteration}. {self.kept()}") from None
        # the row is on disk: the counters now describe the state after this iteration
        self.iteration, self.env_steps, self.elapsed = iteration, int(row["env_steps"]), row["time/total"]
        self._rewind = self._sampler.get_state()
        self.last_row = row
        if self.iteration % cfg.checkpoint_every == 0 or self.iteration == cfg.iterations:
            self._save()
        if self._stop_signal is not None and self.iteration < cfg.iterations:
            self.say(f"{SIGNAL_NAMES.get(self._stop_signal, 'signal')}: stopping after iteration {self.iteration}.")
            raise KeyboardInterrupt

    # -- checkpoints -------------------------------------------------------------------------------
    def _save(self) -> None:
        state = {"env_steps": self.env_steps, "elapsed": self.elapsed, "sampler": self._rewind,
                 "eval_sampler": self._eval_sampler.get_state() if self._eval_sampler is not None else None}
        try:
            self.checkpointer.save(self.iteration, state)
        except OSError as err:
            raise StorageError(f"could not write the checkpoint of iteration {self.iteration} in "
                               f"{self.checkpointer.directory}: {_reason(err)}. {self.kept()}") from None
        self._saved_at = self.iteration

    def kept(self) -> str:
        """What survives a stop now: the last complete checkpoint, named, or that there is none."""
        latest = self.checkpointer.latest() if self.checkpointer is not None else None
        if latest is None:
            return f"No checkpoint has been written yet in {self.logdir}."
        return f"The last good checkpoint ({os.path.basename(latest)}) is kept in {os.path.dirname(latest)}."

    def say(self, text: str) -> None:
        try:
            print(text, file=self.stream, flush=True)
        except OSError:
            pass

    # -- closing -----------------------------------------------------------------------------------
    def __exit__(self, exc_type, exc, tb) -> bool:
        exit_code = 0 if exc_type is None else 1  # recorded in wandb: 130 Ctrl-C, 143 SIGTERM
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            exit_code = 128 + int(self._stop_signal or signal.SIGINT)
        try:
            if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
                self._finish_interrupted()
            if exc_type is not None and issubclass(exc_type, FloatingPointError):
                raise NonFiniteError(f"{exc} at iteration {self.iteration + 1}; stopping. {self.kept()}") from exc
            return False
        finally:
            self._restore_guard()
            try:
                if self.logger is not None:
                    logger, self.logger = self.logger, None
                    logger.close(exit_code)
            finally:  # a failing close (wandb, a full disk) must not keep the directory locked
                self._release_lock()

    def _finish_interrupted(self) -> None:
        self._ignore_signals()  # more signals must not interrupt the checkpoint written here
        signum = self._stop_signal or signal.SIGINT
        how = f"Interrupted ({SIGNAL_NAMES.get(signum, signum)})"
        if self._rewind is not None and self.checkpointer is not None:
            if self._saved_at != self.iteration:
                self._sampler.set_state(self._rewind)
                try:
                    self._save()
                except StorageError as err:
                    self.say(f"{how}: {err}")
                    raise Interrupted(signum) from None
            self.say(f"{how}: saved a checkpoint at iteration {self.iteration} in {self.checkpointer.directory}; "
                     f"continue with --resume --logdir={self.logdir}")
        elif self.checkpointer is not None:
            self.say(f"{how} during an update; the last periodic checkpoint is kept. {self.kept()} "
                     f"Continue with --resume --logdir={self.logdir}")
        raise Interrupted(signum) from None

    # -- signals -----------------------------------------------------------------------------------
    def _install_guard(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum, frame):
            if self._stop_signal is not None:
                raise KeyboardInterrupt
            self._stop_signal = signum
            name = SIGNAL_NAMES.get(signum, str(signum))
            again = "press Ctrl-C again" if signum == signal.SIGINT else "a second SIGTERM"
            try:  # a raw write: the handler may run in the middle of a print to the same stream
                os.write(2, f"\n{name}: finishing this iteration, then saving and stopping "
                            f"({again} to stop at once).\n".encode())
            except OSError:
                pass

        previous = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                previous[signum] = signal.signal(signum, handler)
            except ValueError:  # not allowed here (e.g. an embedded interpreter)
                pass
        self._previous_handlers = previous

    def _ignore_signals(self) -> None:
        if self._previous_handlers:
            for signum in self._previous_handlers:
                signal.signal(signum, signal.SIG_IGN)

    def _restore_guard(self) -> None:
        if self._previous_handlers:
            for signum, handler in self._previous_handlers.items():
                signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
            self._previous_handlers = None

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None
