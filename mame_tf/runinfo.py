"""What a launcher records and prints about a run besides its metrics.

* ``write_provenance(logdir)``: appends this start of the run (git commit and whether the tree had
  uncommitted changes, the command line, the Python version, the platform and the versions of the
  main packages) to ``<logdir>/provenance.json``; a resumed run adds one entry per start.
* ``summary_line(...)``: the one line printed when a run finishes.
* ``preset_help(algo_cls)``: the per-family presets, for ``--help``/``--helpfull``.
* ``TensorBoardWriter``: ``tf.summary`` scalars in ``<logdir>/tensorboard`` (``--tensorboard``).
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from importlib import metadata

PACKAGES = ("mame-tf", "tensorflow", "keras", "tensorflow-probability", "numpy", "gymnasium", "mujoco",
            "absl-py", "wandb", "matplotlib")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def provenance() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": [sys.executable, *sys.argv],
        "cwd": os.getcwd(),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_uncommitted_changes": None if status is None else bool(status),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "niceness": os.nice(0),  # the scheduling priority the run's timings were measured at
        "packages": versions,
    }


def write_provenance(logdir: str) -> str:
    """Append this start's provenance to ``logdir/provenance.json`` (atomically); returns the path."""
    path = os.path.join(logdir, "provenance.json")
    starts = []
    if os.path.exists(path):
        try:
            with open(path) as fh:
                starts = json.load(fh).get("starts", [])
        except (OSError, ValueError):
            starts = []
    starts.append(provenance())
    from mame_tf.checkpoint import atomic_write_text
    from mame_tf.run import StorageError

    try:
        atomic_write_text(path, json.dumps({"starts": starts}, indent=2))
    except OSError as err:
        raise StorageError(f"could not write {path}: {err}") from err
    return path


def summary_line(algo_name: str, env: str, logdir: str, rows: list[dict], window: int = 10) -> str:
    """``finished mame on point_corner_strict: 300 iterations, 48,000,000 steps, 0:04:12; last 10: ...``."""
    if not rows:
        return f"finished {algo_name} on {env}: no iterations run; run directory {logdir}"
    last = rows[-window:]

    def mean(key):
        vals = [float(r[key]) for r in last if r.get(key) not in (None, "")]
        return sum(vals) / len(vals) if vals else float("nan")

    total = float(rows[-1].get("time/total") or 0.0)
    text = (f"finished {algo_name} on {env}: {int(float(rows[-1]['iteration']))} iterations, "
            f"{int(float(rows[-1]['env_steps'])):,} env steps, {_hms(total)}; mean of the last {len(last)}: "
            f"post-update return {mean('post_adapt/return'):.3f}, pre-update {mean('pre_adapt/return'):.3f}")
    if "post_adapt/final_goal_distance" in rows[-1]:
        text += f", final goal distance {mean('post_adapt/final_goal_distance'):.2f}"
    return text + f"; run directory {logdir}"


def _hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def preset_help(algo_cls) -> str:
    """The per-family presets (horizon, iterations and the algorithm's own) as help text."""
    from mame_tf.registry import FAMILIES

    lines = ["Per-family presets (used for every flag not given on the command line):"]
    for env, family in FAMILIES.items():
        cells = ", ".join(f"--{k}={v}" for k, v in {**family.presets, **algo_cls.env_presets(env)}.items())
        lines.append(f"  {env:20s} {cells}")
    return "\n".join(lines)


class TensorBoardWriter:
    """Every numeric metric of a row as a ``tf.summary`` scalar at step = iteration."""

    def __init__(self, directory: str):
        import tensorflow as tf

        self.directory = directory
        self._tf = tf
        self._writer = tf.summary.create_file_writer(directory)

    def write(self, row: dict) -> None:
        """Raises ``OSError`` when the event file cannot be written (TensorFlow's own errors are not)."""
        step = int(row["iteration"])
        try:
            with self._writer.as_default():
                for key, value in row.items():
                    if key != "iteration" and isinstance(value, (int, float)) and not isinstance(value, bool):
                        self._tf.summary.scalar(key, float(value), step=step)
            self._writer.flush()
        except self._tf.errors.OpError as err:
            raise OSError(f"could not write the TensorBoard events in {self.directory}: {err.message}") from err

    def close(self) -> None:
        try:
            self._writer.close()
        except self._tf.errors.OpError as err:
            raise OSError(f"could not close the TensorBoard events in {self.directory}: {err.message}") from err
