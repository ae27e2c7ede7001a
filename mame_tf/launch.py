"""The launcher behind every ``launchers/run_*.py``: flags, validation, run directory, training.

``run_main(AlgoClass)`` defines the shared flags (``TrainConfig``) and the algorithm's own flags
(``AlgoClass.config_class``), applies the per-family presets to every flag not given explicitly,
validates everything before any work, then builds the sampler and the algorithm and trains, writing
``config.json``, ``progress.csv``, checkpoints and (by default offline) wandb files into the run
directory. ``--resume --logdir=DIR`` reloads ``DIR/config.json`` and continues from the last complete
checkpoint.
"""
from __future__ import annotations

import dataclasses
import os
import random
import sys

from absl import app, flags
from absl import logging as absl_logging

from mame_tf.quiet import import_tensorflow

import_tensorflow()  # before any module of ours imports it, so its start-up lines stay off the console

from mame_tf import config as cfgmod  # noqa: E402
from mame_tf.config import TrainConfig  # noqa: E402
from mame_tf.registry import ALGORITHMS, FAMILIES, algorithm_class  # noqa: E402,F401  (re-exported)

# Flags that may differ from the saved configuration when resuming.
RESUME_OVERRIDABLE = ("resume", "iterations", "logdir", "wandb_mode", "quiet", "eager", "nthread", "eval_every",
                      "tensorboard")


def build_configs(algo_cls, flag_values=flags.FLAGS) -> tuple[TrainConfig, object]:
    """Validated (TrainConfig, algorithm config) from the flags, presets applied to unset flags."""
    given = cfgmod.from_flags(TrainConfig, flag_values, only_present=True)
    env = given.get("env", TrainConfig.env)
    if env not in FAMILIES:
        raise ValueError(f"--env={env!r} is invalid; valid choices: {', '.join(sorted(FAMILIES))}")
    train_values = {**cfgmod.from_flags(TrainConfig, flag_values), **FAMILIES[env].presets, **given}
    train = TrainConfig(**train_values)
    algo_cfg_cls = algo_cls.config_class
    algo_given = cfgmod.from_flags(algo_cfg_cls, flag_values, only_present=True)
    algo_values = {**cfgmod.from_flags(algo_cfg_cls, flag_values), **algo_cls.env_presets(env), **algo_given}
    algo_cfg = algo_cfg_cls(**algo_values)
    if train.resume:
        train, algo_cfg = _resume_configs(algo_cls, train, algo_cfg, given, algo_given)
    cfgmod.validate(train)
    algo_cls.check_config(algo_cfg)
    return train, algo_cfg


def _resume_configs(algo_cls, train, algo_cfg, given, algo_given):
    if not train.logdir or not os.path.exists(os.path.join(train.logdir, "config.json")):
        raise ValueError(f"--resume needs --logdir pointing at an existing run directory; "
                         f"{train.logdir!r} has no config.json")
    from mame_tf.api import read_config

    saved_cls, saved_train, saved_algo = read_config(train.logdir)
    if saved_cls.name != algo_cls.name:
        raise ValueError(f"--logdir={train.logdir!r} holds a {saved_cls.name!r} run, not {algo_cls.name!r}")
    for name, value in given.items():
        if name not in RESUME_OVERRIDABLE and getattr(saved_train, name) != value:
            raise ValueError(f"--{name}={cfgmod.show(value)} differs from the resumed run's "
                             f"{cfgmod.show(getattr(saved_train, name))}; "
                             f"only {', '.join(RESUME_OVERRIDABLE)} may change on --resume")
    for name, value in algo_given.items():
        if getattr(saved_algo, name) != value:
            raise ValueError(f"--{name}={cfgmod.show(value)} differs from the resumed run's "
                             f"{cfgmod.show(getattr(saved_algo, name))}")
    overrides = {k: v for k, v in given.items() if k in RESUME_OVERRIDABLE}
    overrides.update(resume=True, logdir=train.logdir)
    return dataclasses.replace(saved_train, **overrides), saved_algo


def seed_everything(seed: int) -> None:
    import numpy as np
    import tensorflow as tf

    random.seed(seed)
    np.random.seed(seed)
    tf.random.set_seed(seed)


def algorithm_settings(train: TrainConfig):
    """What an algorithm reads of the shared settings (the one place they are handed over)."""
    from mame_tf.algorithm import AlgorithmSettings

    return AlgorithmSettings(seed=int(train.seed), discount=float(train.discount), gae_lambda=float(train.gae_lambda),
                             hidden_sizes=tuple(train.hidden_sizes), inner_steps=int(train.inner_steps),
                             eager=bool(train.eager))


def build_algorithm(algo_cls, train: TrainConfig, algo_cfg, obs_dim: int, act_dim: int):
    """The algorithm of a validated configuration, for an environment of these dimensions."""
    return algo_cls(algorithm_settings(train), algo_cfg, obs_dim, act_dim)


def build_sampler_and_algorithm(algo_cls, train: TrainConfig, algo_cfg):
    """Sampler, held-out sampler and algorithm for a validated configuration."""
    from mame_tf.sampler import MetaSampler

    seed_everything(train.seed)
    nthread = train.nthread or None
    sampler = MetaSampler(train.env, train.episodes_per_task, train.horizon, seed=train.seed, nthread=nthread)
    eval_sampler = None
    if train.eval_every:
        eval_sampler = MetaSampler(train.env, train.episodes_per_task, train.horizon, seed=train.seed + 10_000,
                                   nthread=nthread)
    algo = build_algorithm(algo_cls, train, algo_cfg, sampler.obs_dim, sampler.act_dim)
    return sampler, eval_sampler, algo


def train_from_configs(algo_cls, train: TrainConfig, algo_cfg, stream=None) -> dict:
    """Run (or resume) a training job; returns the last logged row.

    Raises :class:`mame_tf.run.RunError` when the run cannot start as asked,
    :class:`mame_tf.run.NonFiniteError`, :class:`mame_tf.run.StorageError` and
    :class:`mame_tf.run.Interrupted` (see ``mame_tf.run``).
    """
    from mame_tf.results import progress_rows
    from mame_tf.run import Run
    from mame_tf.runinfo import summary_line, write_provenance
    from mame_tf.trainer import train as train_loop

    with Run(train, algo_cls.name, algo_cfg, stream=stream) as run:
        sampler, eval_sampler, algo = build_sampler_and_algorithm(algo_cls, run.config, algo_cfg)
        try:
            run.start(algo, sampler, eval_sampler)
            if run.iteration < run.config.iterations:  # a run that trains: record who started it, how
                write_provenance(run.logdir)
            last = train_loop(algo, sampler, run, eval_sampler)
        finally:
            sampler.close()
            if eval_sampler is not None:
                eval_sampler.close()
        run.say(summary_line(algo_cls.name, run.config.env, run.logdir,
                             progress_rows(run.logdir)))
        return last


def run_main(algo_cls) -> None:
    """Entry point of a launcher script for ``algo_cls``."""
    # defined as the launcher's own: --help lists only them, --helpfull lists them first (then absl's
    # and TensorFlow's); the usage text ends with the per-family presets
    cfgmod.define_flags(TrainConfig, module_name=sys.argv[0])
    cfgmod.define_flags(algo_cls.config_class, module_name=sys.argv[0])
    from mame_tf.runinfo import preset_help

    main_module = sys.modules.get("__main__")
    if main_module is not None and "Per-family presets" not in (main_module.__doc__ or ""):
        main_module.__doc__ = (main_module.__doc__ or "").rstrip() + "\n\n" + preset_help(algo_cls) + "\n"

    def main(argv):
        absl_logging.set_verbosity(absl_logging.WARNING)
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
        try:
            train, algo_cfg = build_configs(algo_cls)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        from mame_tf.run import Interrupted, NonFiniteError, RunError

        try:
            train_from_configs(algo_cls, train, algo_cfg)
        except Interrupted as err:
            return err.exit_code
        except KeyboardInterrupt:
            return 130
        except (RunError, NonFiniteError) as err:
            print(f"error: {err}", file=sys.stderr)
            return err.exit_code
        return 0

    app.run(main)
