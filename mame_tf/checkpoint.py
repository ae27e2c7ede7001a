"""Atomic, self-validating checkpoints of the whole training state.

What is saved is not listed by hand: :func:`state_variables` walks an algorithm's attributes and
collects every variable it reaches (network weights, z, optimizer slots and step counters), named by
where it was found (``pi/kernel_0``, ``optimizer.optimizers.networks/pi_kernel_0_momentum``). An
algorithm therefore cannot leave a variable out of its checkpoint.

A checkpoint is a directory ``ckpt-<iteration>/`` holding ``variables.npz`` (one array per variable)
and ``state.json`` (iteration, env steps, elapsed time, sampler random states; the wandb run id lives
in ``<logdir>/wandb_run_id``). It is written as ``ckpt-<iteration>.tmp/`` (every file flushed to
disk) and renamed into place only when complete, then the ``latest`` pointer is replaced
atomically. Saving an iteration that already has a checkpoint moves the old one aside
(``ckpt-<iteration>.old/``) only once the new one is complete, and deletes it once the new one is in
place; in between, the ``.old`` copy counts as its iteration's checkpoint. A crash at any moment
therefore leaves a complete checkpoint. A failed save (a full disk) removes its partial copy before
anything is moved, so an older checkpoint of the iteration stays where it was. What crashes leave
(unfinished ``.tmp`` directories, ``.old`` copies beside their checkpoint) is never read and is
deleted by the next save.

Reading validates before it assigns anything: the JSON state must parse and name the iteration, the
arrays must load and match the variables one for one in name and shape. :meth:`Checkpointer.restore`
tries the checkpoint ``latest`` names, then the other complete ones newest first, reports every one it
skips and why, and assigns nothing from a checkpoint that fails. Readers that must not change a run
(evaluation, :func:`mame_tf.load`) pass ``write=False``: nothing is created, moved or deleted.
"""
from __future__ import annotations

import json
import os
import shutil
import zipfile
from typing import Any, Callable

import numpy as np

LATEST = "latest"
VARIABLES = "variables.npz"
STATE = "state.json"
OWN_PACKAGES = ("mame_tf", "baselines")  # objects of these packages are searched for variables


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message says why."""


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a flushed temporary file and an atomic rename: a reader sees the
    old file or the new one, never a part (the temporary name carries the process id, so two processes
    writing one file do not share it). Line ends are written as given."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise


def _stem(name: str) -> str:
    """``ckpt-<iteration>`` of a checkpoint directory name (without ``.old`` / ``.tmp``)."""
    return name.split(".")[0]


def _is_variable(value) -> bool:
    import keras
    import tensorflow as tf

    return isinstance(value, (tf.Variable, keras.Variable))


def state_variables(root) -> dict[str, Any]:
    """Every variable reachable from ``root``'s attributes, by a stable name (first path found wins).

    Follows Keras models and layers (their ``weights``), Keras optimizers (their ``variables``:
    slots and step counter), lists, tuples, dicts, and the attributes of ``root`` and of this
    project's own objects.
    """
    import keras

    found: dict[str, Any] = {}
    seen_vars: set[int] = set()
    seen_objs: set[int] = set()

    def add(name: str, var) -> None:
        if id(var) in seen_vars:
            return
        if name in found:
            raise RuntimeError(f"two variables of the training state are both named {name!r}")
        seen_vars.add(id(var))
        found[name] = var

    def visit(path: str, value) -> None:
        if _is_variable(value):
            add(path, value)
            return
        if id(value) in seen_objs:
            return
        seen_objs.add(id(value))
        if isinstance(value, keras.optimizers.Optimizer):
            for var in value.variables:
                add(f"{path}/{var.name}", var)
        elif isinstance(value, keras.layers.Layer):
            for var in value.weights:
                add(f"{path}/{var.name}", var)
        elif isinstance(value, dict):
            for key, item in value.items():
                visit(f"{path}.{key}", item)
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                visit(f"{path}.{i}", item)
        elif hasattr(value, "__dict__") and (value is root or type(value).__module__.split(".")[0] in OWN_PACKAGES):
            for key, item in vars(value).items():
                visit(f"{path}.{key}" if path else key, item)

    visit("", root)
    return found


def check_run_state(state: dict) -> None:
    """Raise :class:`CheckpointError` unless ``state`` holds what a resume reads (env steps, sampler)."""
    try:
        int(state["env_steps"])
        float(state.get("elapsed", 0.0))
        if not isinstance(state["sampler"], dict):
            raise TypeError(f"the sampler state is a {type(state['sampler']).__name__}, not an object")
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"state.json lacks what a resume needs ({type(err).__name__}: {err})") from None


def read_checkpoint(path: str, variables: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict]:
    """The validated arrays and state of the checkpoint directory ``path`` (nothing is assigned).

    Raises :class:`CheckpointError` saying what is wrong.
    """
    try:
        with open(os.path.join(path, STATE)) as fh:
            state = json.load(fh)
        iteration = int(state["iteration"])
    except FileNotFoundError:
        raise CheckpointError(f"{STATE} is missing") from None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"{STATE} is unreadable ({type(err).__name__}: {err})") from None
    if _stem(os.path.basename(path)) != f"ckpt-{iteration:06d}":
        raise CheckpointError(f"{STATE} names iteration {iteration}")
    try:
        with np.load(os.path.join(path, VARIABLES), allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except FileNotFoundError:
        raise CheckpointError(f"{VARIABLES} is missing") from None
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
        raise CheckpointError(f"{VARIABLES} is unreadable ({type(err).__name__}: {err})") from None
    missing = sorted(set(variables) - set(arrays))
    extra = sorted(set(arrays) - set(variables))
    if missing or extra:
        raise CheckpointError(f"{VARIABLES} does not match this algorithm's variables "
                              f"(missing: {', '.join(missing) or 'none'}; unexpected: {', '.join(extra) or 'none'})")
    for name, var in variables.items():
        if tuple(arrays[name].shape) != tuple(var.shape):
            raise CheckpointError(f"{VARIABLES} holds {name} with shape {tuple(arrays[name].shape)}, "
                                  f"expected {tuple(var.shape)}")
    return arrays, state


class Checkpointer:
    """Saves and restores ``variables`` (name -> variable) plus a JSON state in ``directory``.

    ``write=False`` makes a reader that never creates, moves or deletes anything.
    """

    def __init__(self, directory: str, variables: dict[str, Any], keep: int = 3, write: bool = True,
                 check_state: Callable[[dict], None] | None = None):
        """``check_state`` may raise :class:`CheckpointError` for a state its owner cannot use (see
        :func:`check_run_state`); such a checkpoint counts as damaged."""
        self.directory = directory
        self.keep = keep
        self.write = write
        self.check_state = check_state
        self.variables = dict(variables)
        if not self.variables:
            raise ValueError("a checkpoint needs at least one variable; none were given")

    def _path(self, iteration: int) -> str:
        return os.path.join(self.directory, f"ckpt-{iteration:06d}")

    def _names(self) -> list[str]:
        try:
            return os.listdir(self.directory)
        except (FileNotFoundError, NotADirectoryError):
            return []

    def save(self, iteration: int, state: dict) -> str:
        if not self.write:
            raise RuntimeError("this Checkpointer is read-only")
        os.makedirs(self.directory, exist_ok=True)
        final = self._path(iteration)
        tmp = final + ".tmp"
        aside = final + ".old"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            os.makedirs(tmp)
            arrays = {name: np.asarray(var.numpy() if hasattr(var, "numpy") else var)
                      for name, var in self.variables.items()}
            with open(os.path.join(tmp, VARIABLES), "wb") as fh:
                np.savez(fh, **arrays)
                fh.flush()
                os.fsync(fh.fileno())
            atomic_write_text(os.path.join(tmp, STATE), json.dumps({**state, "iteration": iteration}))
            _fsync_dir(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if os.path.exists(final):
            shutil.rmtree(aside, ignore_errors=True)
            os.replace(final, aside)
        os.replace(tmp, final)
        _fsync_dir(self.directory)
        atomic_write_text(os.path.join(self.directory, LATEST), os.path.basename(final))
        shutil.rmtree(aside, ignore_errors=True)
        self._prune()
        return final

    def _named(self) -> list[str]:
        """Names of the checkpoint directories that were renamed into place, oldest first.

        ``ckpt-N.old`` counts when ``ckpt-N`` is missing: a crash during a re-save of iteration N left
        the old copy aside and the new one unfinished. ``.tmp`` directories (unfinished writes) and
        ``.damaged`` ones never count.
        """
        names = self._names()
        return sorted((d for d in names if d.startswith("ckpt-")
                       and ("." not in d or (d.endswith(".old") and _stem(d) not in names))), key=_stem)

    def _complete(self) -> list[str]:
        """Names of the complete checkpoint directories (those with a state file), oldest first."""
        return [d for d in self._named() if os.path.exists(os.path.join(self.directory, d, STATE))]

    def _prune(self) -> None:
        """Keep the newest ``keep`` complete checkpoints; drop what earlier crashes left behind.

        Called right after a save by the run that holds the directory's lock, so no write is under
        way: every ``.tmp`` directory is an unfinished write of a crashed process, and an ``.old``
        one whose ``ckpt-N`` is in place is a copy set aside that a crash kept from being deleted.
        """
        for old in self._complete()[:-self.keep]:
            shutil.rmtree(os.path.join(self.directory, old), ignore_errors=True)
        names = self._names()
        for name in names:
            if name.startswith("ckpt-") and (name.endswith(".tmp") or (name.endswith(".old") and _stem(name) in names)):
                shutil.rmtree(os.path.join(self.directory, name), ignore_errors=True)

    def _pointed(self) -> str | None:
        """The checkpoint directory ``latest`` names, if it was renamed into place."""
        try:
            with open(os.path.join(self.directory, LATEST)) as fh:
                name = fh.read().strip()
        except (OSError, UnicodeDecodeError):
            return None
        if name.startswith("ckpt-") and "/" not in name and name in self._named():
            return name
        return None

    def candidates(self) -> list[str]:
        """Checkpoint paths in the order they are tried: the one ``latest`` names, then newest first.

        Directories that lost files are included, so that skipping them is reported.
        """
        done = self._named()
        pointed = self._pointed()
        order = ([pointed] if pointed else []) + [d for d in reversed(done) if d != pointed]
        return [os.path.join(self.directory, d) for d in order]

    def latest(self) -> str | None:
        """The checkpoint ``latest`` names if it is complete, else the newest complete one (None if none)."""
        pointed = self._pointed()
        done = self._complete()
        name = pointed if pointed in done else (done[-1] if done else None)
        return os.path.join(self.directory, name) if name else None

    def restore(self, report: Callable[[str], None] | None = None) -> tuple[dict | None, list[str]]:
        """Restore the first intact checkpoint into the variables (nothing is assigned from a damaged one).

        Returns ``(state, skipped)``: ``state`` is None when no checkpoint is intact; ``skipped`` holds
        one line per checkpoint passed over, which is also given to ``report``.
        """
        skipped = []
        for path in self.candidates():
            try:
                arrays, state = self._read(path)
            except CheckpointError as err:
                line = f"skipped checkpoint {path}: {err}"
                skipped.append(line)
                if report is not None:
                    report(line)
                continue
            for name, var in self.variables.items():
                var.assign(arrays[name])
            return state, skipped
        return None, skipped

    def discard_after(self, iteration: int) -> None:
        """Remove every checkpoint newer than ``iteration`` (the run continues from there).

        Complete ones are stale (a crash before ``latest`` was updated); damaged ones are kept as
        ``ckpt-N.damaged`` for inspection. Pruning by name must not keep either over new checkpoints.
        """
        if not self.write:
            raise RuntimeError("this Checkpointer is read-only")
        complete = set(self._named())
        for name in self._names():
            if not name.startswith("ckpt-") or name.endswith((".tmp", ".damaged")):
                continue
            try:
                number = int(_stem(name)[len("ckpt-"):])
            except ValueError:
                continue
            if number <= iteration:
                continue
            path = os.path.join(self.directory, name)
            if name in complete and self._intact(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                target = os.path.join(self.directory, _stem(name) + ".damaged")
                shutil.rmtree(target, ignore_errors=True)
                os.replace(path, target)

    def _read(self, path: str) -> tuple[dict[str, np.ndarray], dict]:
        arrays, state = read_checkpoint(path, self.variables)
        if self.check_state is not None:
            self.check_state(state)
        return arrays, state

    def _intact(self, path: str) -> bool:
        try:
            self._read(path)
        except CheckpointError:
            return False
        return True

    def restore_latest(self) -> dict | None:
        """Restore the first intact checkpoint and drop the newer ones; returns its state (None if none)."""
        state, _ = self.restore()
        if state is not None and self.write:
            self.discard_after(int(state["iteration"]))
        return state
