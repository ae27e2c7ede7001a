"""The Python API: train a run or load a trained one, with the launchers' presets and validation.

    import mame_tf
    last = mame_tf.train("mame", env="point_corner", logdir="runs/demo", iterations=50, wandb_mode="disabled")
    algo = mame_tf.load("runs/demo")            # the trained algorithm, configuration as the run used it

``train`` runs exactly what ``launchers/run_<algo>.py`` runs: the same settings (one keyword per flag,
e.g. ``meta_batch_size=20``, ``hidden_sizes=(64, 64)``), the same per-family presets for those not
given, the same validation before any work (``ValueError`` naming the setting) and the same run
directory, lock, checkpoints and resume (``resume=True``). It returns the last ``progress.csv`` row.
"""
from __future__ import annotations

import json
import os
import sys

from mame_tf import config as cfgmod


def configs(algo: str = "mame", **settings):
    """The validated ``(TrainConfig, algorithm config)`` the launcher would use for these settings."""
    from absl import flags

    from mame_tf.launch import algorithm_class, build_configs

    cls = algorithm_class(algo)
    fv = flags.FlagValues()
    cfgmod.define_flags(cfgmod.TrainConfig, fv)
    cfgmod.define_flags(cls.config_class, fv)
    fv([f"mame_tf.{algo}"])
    for name, value in settings.items():
        if name not in fv:
            raise ValueError(f"unknown setting {name!r} for {algo}; valid settings: {', '.join(sorted(fv))}")
        text = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
        try:
            fv[name].parse(text)
        except (flags.Error, ValueError) as err:
            raise ValueError(f"{name}={value!r} is invalid: {err}") from None
    return build_configs(cls, fv)


def train(algo: str = "mame", env: str | None = None, logdir: str = "", stream=None, **settings) -> dict:
    """Train (or with ``resume=True`` continue) one run; returns its last metrics row.

    ``env`` defaults to ``point_corner`` for a new run and to the run's own family on resume.

    Raises ``ValueError`` for a bad setting, :class:`mame_tf.run.RunError` (a ``ValueError`` too)
    when the run directory cannot be used as asked, :class:`mame_tf.run.NonFiniteError`,
    :class:`mame_tf.run.StorageError` and :class:`mame_tf.run.Interrupted` (SIGINT / SIGTERM, after
    a checkpoint was kept).
    """
    from mame_tf.launch import algorithm_class, train_from_configs

    if env is not None:
        settings["env"] = env
    train_cfg, algo_cfg = configs(algo, logdir=logdir, **settings)
    return train_from_configs(algorithm_class(algo), train_cfg, algo_cfg, stream=stream)


def read_config(logdir: str):
    """``(algorithm class, TrainConfig, algorithm config)`` of the run in ``logdir``, validated: the one
    reader of a run's ``config.json`` (``mame_tf.config.dumps`` writes it). ValueError says what is wrong."""
    from mame_tf.launch import algorithm_class

    path = os.path.join(logdir, "config.json")
    try:
        with open(path) as fh:
            saved = json.load(fh)
    except FileNotFoundError:
        raise ValueError(f"{logdir} holds no run: {path} does not exist") from None
    except (OSError, ValueError) as err:
        raise ValueError(f"{path} is unreadable: {err}") from None
    try:
        cls = algorithm_class(saved["algorithm"])
        train = cfgmod.from_dict(cfgmod.TrainConfig, saved["train"])
        algo_cfg = cfgmod.from_dict(cls.config_class, saved["algo"])
        cfgmod.validate(algo_cfg)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ValueError(f"{path} is not a valid run configuration: {err}") from None
    return cls, train, algo_cfg


def load_run(logdir: str, inner_steps: int | None = None, stream=None):
    """``(algorithm, TrainConfig, checkpoint state)`` of the run in ``logdir``; never writes to it.

    The newest intact checkpoint is restored; each damaged one passed over is reported on ``stream``
    (default stderr). ``inner_steps`` overrides the adaptation steps the algorithm is built for.
    """
    import dataclasses

    from mame_tf.checkpoint import Checkpointer, check_run_state
    from mame_tf.launch import build_algorithm
    from mame_tf.sampler import MetaSampler

    cls, train, algo_cfg = read_config(logdir)
    if inner_steps is not None:
        train = dataclasses.replace(train, inner_steps=inner_steps)
    probe = MetaSampler(train.env, 1, train.horizon, seed=0)
    try:
        obs_dim, act_dim = probe.obs_dim, probe.act_dim
    finally:
        probe.close()
    algo = build_algorithm(cls, train, algo_cfg, obs_dim, act_dim)
    algo.train_config = train  # for the caller (e.g. a sampler of the run's horizon); the algorithm never reads it
    out = stream if stream is not None else sys.stderr
    checkpointer = Checkpointer(os.path.join(logdir, "checkpoints"), algo.checkpoint_items(), write=False,
                                check_state=check_run_state)
    state, skipped = checkpointer.restore(report=lambda line: print(line, file=out, flush=True))
    if state is None:
        reason = "every checkpoint is damaged" if skipped else "it has no complete checkpoint"
        raise ValueError(f"{logdir} cannot be loaded: {reason}")
    return algo, train, state


def load(logdir: str, stream=None):
    """The trained algorithm of the run in ``logdir`` (its settings in ``algo.settings`` and
    ``algo.cfg``), restored from the newest intact checkpoint; ready for ``mame_tf.trainer.evaluate``."""
    return load_run(logdir, stream=stream)[0]
