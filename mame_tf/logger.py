"""Progress output: the console, ``progress.csv`` and Weights & Biases, with one metric namespace.

Every algorithm reports ``iteration``, ``env_steps``, ``pre_adapt/return``, ``post_adapt/return``,
``time/...`` and its own ``loss/...`` metrics; the same names go to all three sinks so curves of
different algorithms overlay. ``progress.csv`` gets one row per iteration and is flushed at once; on
resume the rows after the checkpoint's iteration are dropped, so the file matches an uninterrupted
run.
"""
from __future__ import annotations

import collections
import csv
import errno
import io
import math
import os
import statistics
import sys
import uuid

from mame_tf.checkpoint import atomic_write_text
from mame_tf.results import progress_rows


class Logger:
    def __init__(self, logdir: str, total_iterations: int, config: dict, wandb_mode: str = "offline",
                 wandb_project: str = "mame-tf", run_name: str | None = None, resume_iteration: int | None = None,
                 quiet: bool = False, stream=None, tensorboard_dir: str | None = None):
        self.logdir = logdir
        self.total = total_iterations
        self.quiet = quiet
        self.stream = stream if stream is not None else sys.stdout
        self.csv_path = os.path.join(logdir, "progress.csv")
        self._columns: list[str] | None = None
        self._first_iteration: int | None = None
        self._recent = collections.deque(maxlen=10)  # seconds of the last iterations, for the ETA
        if resume_iteration is not None and os.path.exists(self.csv_path):
            self._truncate(resume_iteration)
        elif os.path.exists(self.csv_path):
            os.remove(self.csv_path)
        self._wandb = None
        if wandb_mode != "disabled":
            self._wandb = self._init_wandb(wandb_mode, wandb_project, run_name, config, resume_iteration is not None)
        self._tb = None
        if tensorboard_dir:
            from mame_tf.runinfo import TensorBoardWriter

            self._tb = TensorBoardWriter(tensorboard_dir)

    def _truncate(self, iteration: int) -> None:
        rows = progress_rows(self.logdir)
        if not rows:
            return
        self._columns = list(rows[0].keys())
        self._rewrite([r for r in rows if int(float(r["iteration"])) <= iteration])

    def _add_columns(self, extra: list[str]) -> None:
        rows = progress_rows(self.logdir)
        self._columns = self._columns + extra
        self._rewrite(rows)

    def _rewrite(self, rows: list[dict]) -> None:
        """Replace progress.csv by ``rows`` under ``self._columns`` atomically."""
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=self._columns)
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.csv_path, text.getvalue())

    def _init_wandb(self, mode, project, run_name, config, resume):
        os.environ.setdefault("WANDB_SILENT", "true")
        import wandb

        id_path = os.path.join(self.logdir, "wandb_run_id")
        if resume and os.path.exists(id_path):
            with open(id_path) as fh:
                run_id = fh.read().strip()
        else:
            run_id = uuid.uuid4().hex[:8]
            with open(id_path, "w") as fh:
                fh.write(run_id)
        return wandb.init(project=project, name=run_name, id=run_id, resume="allow", mode=mode,
                          dir=self.logdir, config=config, settings=wandb.Settings(console="off"))

    def log(self, metrics: dict) -> None:
        """Append one row; it reaches ``progress.csv`` whole or not at all (a failed write is undone)."""
        row = dict(metrics)
        if self._columns is None:
            self._columns = list(row.keys())
            if not os.path.exists(self.csv_path):
                self._rewrite([])
        extra = [k for k in row if k not in self._columns]
        if extra:  # e.g. the first held-out evaluation: widen the file, earlier rows get empty cells
            self._add_columns(extra)
        line = io.StringIO()
        csv.DictWriter(line, fieldnames=self._columns).writerow(row)
        data = line.getvalue().encode()
        fd = os.open(self.csv_path, os.O_WRONLY | os.O_APPEND)
        try:
            size = os.fstat(fd).st_size
            try:
                if os.write(fd, data) != len(data):
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            except OSError:
                try:
                    os.ftruncate(fd, size)
                except OSError:
                    pass
                raise
        finally:
            os.close(fd)
        if self._wandb is not None:
            self._wandb.log({k: v for k, v in row.items() if k != "iteration"}, step=int(row["iteration"]))
        if self._tb is not None:
            self._tb.write(row)
        if not self.quiet:
            self._console(row)

    def _console(self, row: dict) -> None:
        it = int(row["iteration"])
        seconds = float(row.get("time/iteration", math.nan))
        if self._first_iteration is None:  # the first iteration of a process also compiles: it counts
            self._first_iteration, self._first_seconds = it, seconds  # only until there are others
        else:
            self._recent.append(seconds)
        per_iteration = statistics.median(self._recent) if self._recent else self._first_seconds
        eta = per_iteration * (self.total - it)
        print(progress_line(row, self.total, eta), file=self.stream, flush=True)

    def message(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def close(self, exit_code: int = 0) -> None:
        """Close the sinks; a non-zero ``exit_code`` (130: Ctrl-C, 143: SIGTERM) is recorded in wandb."""
        if self._wandb is not None:
            if exit_code:
                self._wandb.summary["exit_code"] = exit_code
                self._wandb.summary["status"] = "interrupted" if exit_code in (130, 143) else "failed"
            self._wandb.finish(exit_code=exit_code)
            self._wandb = None
        if self._tb is not None:
            tb, self._tb = self._tb, None
            try:
                tb.close()
            except OSError as err:  # closing must not hide why the run ended; the CSV rows are on disk
                self.message(f"warning: {err}")


def progress_line(row: dict, total: int, eta: float) -> str:
    """One iteration on one line: at most 100 columns up to 9,999 iterations, returns of ±99,999,
    a billion steps, phases under 999 s and an ETA under 100 hours."""
    width = len(str(total))
    return (f"[{int(row['iteration']):>{width}}/{total}] pre {_num(row['pre_adapt/return'])} "
            f"post {_num(row['post_adapt/return'])} steps {int(row['env_steps']):>11,} "
            f"sample {_sec(row['time/sampling'])}s update {_sec(row['time/update'])}s ETA {_hms(eta)}")


def _sec(t: float) -> str:
    return f"{t:5.2f}" if t < 10 else f"{t:5.1f}"


def _num(x: float) -> str:
    return f"{x:9.3f}" if abs(x) < 1e5 else f"{x:9.0f}"


def _hms(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "-:--:--"
    s = int(seconds)
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"
