"""Atomic checkpoints of the whole training state, and resume.

A checkpoint is a directory ``ckpt-<iteration>/`` holding a ``tf.train.Checkpoint`` of the
algorithm's trackables (networks, z, optimizer slots) and ``state.json`` (iteration, env steps,
elapsed time, sampler random states; the wandb run id lives in ``<logdir>/wandb_run_id``). It is
written as ``ckpt-<iteration>.tmp/`` and renamed into place only when complete, then the ``latest``
pointer is replaced atomically. Saving an iteration that already has a checkpoint moves the old one
aside first (``.old``) and deletes it only after the new one is in place. A crash at any moment
therefore leaves a complete checkpoint: if ``latest`` names a directory that is not there,
:meth:`Checkpointer.latest` falls back to the newest complete ``ckpt-*``; leftover ``.tmp`` and
``.old`` directories are ignored.
"""
from __future__ import annotations

import json
import os
import shutil

import tensorflow as tf

LATEST = "latest"


def _atomic_write_text(path: str, text: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _stem(name: str) -> str:
    """``ckpt-<iteration>`` of a checkpoint directory name (without ``.old`` / ``.tmp``)."""
    return name.split(".")[0]


class Checkpointer:
    """Saves and restores ``items`` (trackables) plus a JSON state in ``directory``."""

    def __init__(self, directory: str, items: dict, keep: int = 3):
        self.directory = directory
        self.keep = keep
        self._checkpoint = tf.train.Checkpoint(**items)
        os.makedirs(directory, exist_ok=True)

    def _path(self, iteration: int) -> str:
        return os.path.join(self.directory, f"ckpt-{iteration:06d}")

    def save(self, iteration: int, state: dict) -> str:
        final = self._path(iteration)
        tmp = final + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        self._checkpoint.write(os.path.join(tmp, "model"))
        _atomic_write_text(os.path.join(tmp, "state.json"), json.dumps({**state, "iteration": iteration}))
        aside = final + ".old"
        if os.path.exists(final):
            shutil.rmtree(aside, ignore_errors=True)
            os.replace(final, aside)
        os.replace(tmp, final)
        _atomic_write_text(os.path.join(self.directory, LATEST), os.path.basename(final))
        shutil.rmtree(aside, ignore_errors=True)
        self._prune()
        return final

    def _complete(self) -> list[str]:
        """Names of the complete checkpoint directories, oldest first.

        ``ckpt-N.old`` counts when ``ckpt-N`` is missing: a crash during a re-save of iteration N left
        the old copy aside and the new one unfinished.
        """
        names = os.listdir(self.directory)
        done = [d for d in names if d.startswith("ckpt-")
                and ("." not in d or (d.endswith(".old") and _stem(d) not in names))]
        return sorted((d for d in done if os.path.exists(os.path.join(self.directory, d, "state.json"))), key=_stem)

    def _prune(self) -> None:
        for old in self._complete()[:-self.keep]:
            shutil.rmtree(os.path.join(self.directory, old), ignore_errors=True)

    def latest(self) -> str | None:
        """The checkpoint ``latest`` names if it is complete, else the newest complete one (None if none)."""
        pointer = os.path.join(self.directory, LATEST)
        if os.path.exists(pointer):
            with open(pointer) as fh:
                path = os.path.join(self.directory, fh.read().strip())
            if os.path.exists(os.path.join(path, "state.json")):
                return path
        done = self._complete()
        return os.path.join(self.directory, done[-1]) if done else None

    def restore_latest(self) -> dict | None:
        """Restore the last complete checkpoint into the items; returns its state (None if there is none)."""
        path = self.latest()
        if path is None:
            return None
        self._checkpoint.read(os.path.join(path, "model")).assert_existing_objects_matched()
        with open(os.path.join(path, "state.json")) as fh:
            state = json.load(fh)
        # complete checkpoints newer than the one restored (a crash before ``latest`` was updated) are
        # stale: the run continues from here, and pruning by name must not keep them over new ones
        for name in self._complete():
            if _stem(name) > _stem(os.path.basename(path)):
                shutil.rmtree(os.path.join(self.directory, name), ignore_errors=True)
        return state
