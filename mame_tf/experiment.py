"""Comparison and sweep experiments: the plan of runs, its validation, and the runs' state on disk.

An experiment is a set of ordinary training runs (``launchers/run_<algo>.py``), one per
(variant, grid combination, seed), all under one output directory::

    <outdir>/<name>_s<seed>/         the run directory (config.json, progress.csv, checkpoints/)
    <outdir>/<name>_s<seed>.log      the run's console output (every attempt appended)
    <outdir>/.experiment/            the driver's bookkeeping (see ``mame_tf.executor``)

``<name>`` is the variant's label (an algorithm, or one of MAME's ablations) followed by the grid
combination, e.g. ``mame-inner_lr=10-latent_dim=4``.

Grids: ``--grid=NAME=V1,V2`` sweeps a setting of every selected algorithm; ``--grid=ALGO.NAME=V1,V2``
sweeps it for one algorithm only, the others run once per seed at their defaults. An unscoped
setting that one of the selected algorithms does not have is refused, naming the algorithms that
lack it and the scoped form. List-valued settings take ``:`` inside a value
(``--grid=hidden_sizes=32:32,64:64``).

Identity: a run directory that already holds a run is reused only if its ``config.json`` has the
settings requested, apart from settings that do not change what a run computes
(:data:`EXECUTION_ONLY`). A run with fewer iterations than requested and otherwise equal settings is
continued to the requested number (resume is exact, so it equals a run started with that budget).
Anything else is a conflict, and the whole experiment is refused before it starts.

This module imports no TensorFlow and no Ray at import time: it is also what every Ray worker
imports to run a task.
"""
from __future__ import annotations

import dataclasses
import itertools
import os
import re
import shlex
import sys
from typing import Sequence

from mame_tf.registry import ALGO_ORDER, ALGORITHMS, FAMILIES

# Paper Fig. 3: label -> MAME flags.
ABLATIONS: dict[str, list[str]] = {
    "mame": [],
    "vpg_inner_loop": ["--inner_objective=vpg"],
    "reward_self_supervision": ["--inner_target=reward"],
    "vanilla_dice": ["--explore_estimator=dice"],
    "emaml_based": ["--explore_estimator=emaml"],
}
# Set per run by the experiment itself, so neither --run_flags nor --grid may set them.
MANAGED = {"env": "--env", "seed": "--seeds", "logdir": "--outdir", "resume": "(set per run)",
           "wandb_mode": "--wandb_mode", "iterations": "--iterations"}
# Settings that do not change what a run computes; they may differ from a reused run's.
EXECUTION_ONLY = ("logdir", "resume", "wandb_mode", "quiet", "eager", "nthread")
BOOKKEEPING = ".experiment"
_VALUE = re.compile(r"^[A-Za-z0-9_.+:-]+$")


@dataclasses.dataclass(frozen=True)
class GridAxis:
    """One ``--grid``: a setting, its values (as typed), and the algorithm it is limited to (if any)."""

    name: str
    values: tuple[str, ...]
    algo: str | None = None


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One run of the experiment."""

    label: str            # the row of the results: variant and grid combination, e.g. "mame inner_lr=10"
    name: str             # <outdir>/<name>: the run directory's name, e.g. "mame-inner_lr=10_s0"
    algo: str             # the launcher: launchers/run_<algo>.py
    seed: int
    run_dir: str          # absolute path
    args: tuple[str, ...]  # the launcher's flags (without --resume)
    iterations: int       # the budget in force (the flag or the family's preset)
    settings: tuple       # ((section, name, value), ...): the resolved settings that identify the run

    @property
    def log_path(self) -> str:
        return self.run_dir + ".log"


def parse_grid(items: Sequence[str], algos: Sequence[str]) -> list[GridAxis]:
    """``--grid`` values -> axes (format checks only; settings are checked by :func:`plan`)."""
    axes: list[GridAxis] = []
    seen = set()
    for item in items:
        key, sep, rest = item.partition("=")
        key = key.strip()
        if not sep or not key or not rest:
            raise ValueError(f"--grid={item!r} is not NAME=V1,V2,... (or ALGO.NAME=V1,V2,...)")
        algo, dot, name = key.rpartition(".")
        if dot and algo not in algos:
            raise ValueError(f"--grid={item!r}: {algo!r} is not one of the selected algorithms "
                             f"({', '.join(algos)})")
        values = tuple(v.strip() for v in rest.split(","))
        for v in values:
            if not _VALUE.match(v):
                raise ValueError(f"--grid={item!r}: value {v!r} is empty or has characters other than "
                                 f"letters, digits and _ . + : -")
        if len(set(values)) != len(values):
            raise ValueError(f"--grid={item!r} repeats a value")
        if name in MANAGED:
            raise ValueError(f"--grid={item!r}: {name} is set by the experiment itself; use {MANAGED[name]}")
        if any(n == name and (a is None or not algo or a == algo) for a, n in seen):
            raise ValueError(f"--grid: {name} is given more than once for the same algorithm")
        seen.add((algo or None, name))
        axes.append(GridAxis(name, values, algo or None))
    return axes


def setting_names(algo: str) -> dict[str, str]:
    """``{setting: help text}`` of a launcher: the shared settings and the algorithm's own."""
    from mame_tf.config import TrainConfig
    from mame_tf.launch import algorithm_class

    out = {}
    for cls in (TrainConfig, algorithm_class(algo).config_class):
        for f in dataclasses.fields(cls):
            out[f.name] = f.metadata.get("help", f.name)
    return out


def check_outdir(outdir: str) -> None:
    """Refuse an output directory that is a file, lies below a file, or cannot be written."""
    path = os.path.abspath(outdir)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"--outdir={outdir!r} is a file, not a directory")
    parent = path
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ValueError(f"--outdir={outdir!r} cannot be created: {parent!r} is a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"--outdir={outdir!r} cannot be written ({parent!r} is not writable)")


def check_run_flags(algo: str, argv: list[str]):
    """Parse and validate ``argv`` exactly as ``launchers/run_<algo>.py`` would.

    Returns the resolved (TrainConfig, algorithm config); raises ValueError if the launcher would refuse.
    """
    from absl import flags

    from mame_tf import config as cfgmod
    from mame_tf.config import TrainConfig
    from mame_tf.launch import algorithm_class, build_configs

    cls = algorithm_class(algo)
    values = flags.FlagValues()
    cfgmod.define_flags(TrainConfig, values)
    cfgmod.define_flags(cls.config_class, values)
    try:
        values(["run_" + algo, *argv])
    except flags.Error as err:
        raise ValueError(f"run_{algo}.py rejects {' '.join(argv)}: {err}") from None
    return build_configs(cls, values)


def _identity(train, algo_cfg) -> tuple:
    from mame_tf import config as cfgmod

    items = [("train", k, v) for k, v in cfgmod.to_dict(train).items()]
    items += [("algo", k, v) for k, v in cfgmod.to_dict(algo_cfg).items()]
    return tuple((s, k, tuple(v) if isinstance(v, list) else v) for s, k, v in items if k not in EXECUTION_ONLY)


def _check_env_and_algos(env: str, algos: Sequence[str]) -> None:
    if env not in FAMILIES:
        raise ValueError(f"--env={env!r} is invalid; valid choices: {', '.join(sorted(FAMILIES))}")
    if not algos:
        raise ValueError("--algos is empty; give at least one of " + ", ".join(ALGO_ORDER))
    for name in algos:
        if name not in ALGORITHMS:
            raise ValueError(f"--algos: {name!r} is not an algorithm; valid choices: {', '.join(ALGO_ORDER)}")
    if len(set(algos)) != len(algos):
        raise ValueError(f"--algos={','.join(algos)} names an algorithm twice")


def _parse_seeds(seeds: Sequence[str]) -> list[int]:
    parsed = []
    for s in seeds:
        seed = int(s) if str(s).isdigit() else -1
        if seed < 0:
            raise ValueError(f"--seeds: {s!r} is not a non-negative integer")
        parsed.append(seed)
    if not parsed:
        raise ValueError("--seeds is empty")
    if len(set(parsed)) != len(parsed):
        raise ValueError(f"--seeds={','.join(map(str, seeds))} names a seed twice")
    return parsed


def _parse_run_flags(run_flags: str) -> tuple[list[str], set[str]]:
    """``--run_flags`` as launcher arguments, and the names of the settings they set."""
    try:
        extra = shlex.split(run_flags)
    except ValueError as err:
        raise ValueError(f"--run_flags={run_flags!r} cannot be parsed: {err}") from None
    extra_names = set()
    for item in extra:
        if not item.startswith("--"):
            raise ValueError(f"--run_flags: {item!r} is not a --flag=value")
        name = item[2:].split("=", 1)[0]
        if name in MANAGED:
            raise ValueError(f"--run_flags must not set --{name} (the experiment sets it per run; use "
                             f"{MANAGED[name]})")
        extra_names.add(name[2:] if name.startswith("no") and "=" not in item else name)
    return extra, extra_names


def _check_axes(axes: list[GridAxis], selected: list[str], variants: list, extra_names: set[str]) -> None:
    """Every grid axis names a setting of the algorithms it sweeps, and no other flag sets it too."""
    names = {algo: setting_names(algo) for algo in selected}
    for ax in axes:
        given = f"--grid={ax.algo + '.' if ax.algo else ''}{ax.name}={','.join(ax.values)}"
        lacking = [a for a in selected if ax.name not in names[a] and (ax.algo in (None, a))]
        if lacking and ax.algo:
            raise ValueError(f"{given}: {ax.algo} has no setting {ax.name!r}; "
                             f"its settings: {', '.join(sorted(set(names[ax.algo]) - set(MANAGED)))}")
        if lacking:
            having = [a for a in selected if ax.name in names[a]]
            if not having:
                raise ValueError(f"{given}: {ax.name!r} is not a setting of "
                                 f"{', '.join(selected)}; valid settings: "
                                 f"{', '.join(sorted(set.union(*map(set, names.values())) - set(MANAGED)))}")
            raise ValueError(f"{given}: {', '.join(lacking)} has no setting {ax.name!r} "
                             f"(only {', '.join(having)} has); to sweep it for {having[0]} and run "
                             f"{', '.join(lacking)} once per seed, write --grid={having[0]}.{ax.name}="
                             f"{','.join(ax.values)}")
        if ax.name in extra_names:
            raise ValueError(f"{given} and --run_flags both set {ax.name}; give it in one place")
        for algo, label, args in variants:
            if ax.algo in (None, algo) and any(a.startswith(f"--{ax.name}=") for a in args):
                raise ValueError(f"{given}: the variant {label!r} sets {ax.name} itself "
                                 f"({' '.join(args)})")


def plan(env: str, algos: Sequence[str], seeds: Sequence[str], ablations: bool, outdir: str, iterations: int,
         run_flags: str, wandb_mode: str, grid: Sequence[str] = ()) -> list[RunSpec]:
    """Every run of the experiment, each validated as its launcher would, before anything starts."""
    _check_env_and_algos(env, algos)
    parsed = _parse_seeds(seeds)
    extra, extra_names = _parse_run_flags(run_flags)
    check_outdir(outdir)
    outdir = os.path.abspath(outdir)

    variants = [("mame", label, list(args)) for label, args in ABLATIONS.items()] if ablations else \
        [(name, name, []) for name in algos]
    selected = sorted({algo for algo, _, _ in variants}, key=ALGO_ORDER.index)
    axes = parse_grid(grid, selected)
    _check_axes(axes, selected, variants, extra_names)

    runs: list[RunSpec] = []
    seen_settings: dict[tuple, str] = {}
    for algo, label, args in variants:
        mine = [ax for ax in axes if ax.algo in (None, algo)]
        for combo in itertools.product(*[ax.values for ax in mine]):
            pairs = [(ax.name, value) for ax, value in zip(mine, combo)]
            flags_ = [*args, *extra, *[f"--{n}={v.replace(':', ',')}" for n, v in pairs]]
            try:
                train, algo_cfg = check_run_flags(
                    algo, [f"--env={env}", *flags_] + ([f"--iterations={iterations}"] if iterations else []))
            except ValueError as err:
                where = f" (grid {' '.join(f'{n}={v}' for n, v in pairs)})" if pairs else ""
                raise ValueError(f"{err}{where}") from None
            row = label + "".join(f" {n}={v}" for n, v in pairs)
            stem = label + "".join(f"-{n}={v}" for n, v in pairs)
            for seed in parsed:
                name = f"{stem}_s{seed}"
                run_dir = os.path.join(outdir, name)
                identity = _identity(dataclasses.replace(train, seed=seed), algo_cfg)
                if (algo, identity) in seen_settings:
                    raise ValueError(f"{name} and {seen_settings[(algo, identity)]} would be the same run "
                                     f"(a grid value equals a default or another value)")
                seen_settings[(algo, identity)] = name
                # the resolved budget is explicit, so that a resumed run keeps (or extends to) it
                argv = [f"--env={env}", f"--seed={seed}", f"--logdir={run_dir}", f"--wandb_mode={wandb_mode}",
                        *flags_, f"--iterations={train.iterations}"]
                runs.append(RunSpec(row, name, algo, seed, run_dir, tuple(argv), train.iterations, identity))
    return runs


# -- the runs' state on disk ----------------------------------------------------------------------

def checkpointed(run_dir: str, iteration: int) -> bool:
    """Whether the run has a complete checkpoint of ``iteration`` (the trainer saves the last one at exit)."""
    return os.path.exists(os.path.join(run_dir, "checkpoints", f"ckpt-{iteration:06d}", "state.json"))


def saved_checkpoint_iteration(run_dir: str) -> int:
    """The iteration of the checkpoint the run would resume from (0 if none): the one ``latest`` names."""
    directory = os.path.join(run_dir, "checkpoints")
    try:
        with open(os.path.join(directory, "latest")) as fh:
            name = fh.read().strip()
    except FileNotFoundError:
        return 0
    if not os.path.exists(os.path.join(directory, name, "state.json")):
        return 0
    return int(name.split("-")[1])


def run_state(spec: RunSpec) -> str:
    """``"new"``, ``"done"`` or ``"resume"``; raises ValueError if the directory holds a different run."""
    if not os.path.exists(os.path.join(spec.run_dir, "config.json")):
        return "new"
    from mame_tf.api import read_config

    try:
        cls, train, algo_cfg = read_config(spec.run_dir)
        if cls.name != spec.algo:
            raise ValueError(f"it is a {cls.name} run")
        there = _identity(train, algo_cfg)
    except ValueError as err:
        raise ValueError(f"{spec.run_dir} holds a run that is not the one requested ({err}); it is not "
                         f"reused: use another --outdir, or move that directory away") from None
    want, have = dict(((s, k), v) for s, k, v in spec.settings), dict(((s, k), v) for s, k, v in there)
    diffs = [k for k in sorted(set(want) | set(have)) if want.get(k) != have.get(k)]
    budget = ("train", "iterations")
    if budget in diffs and have.get(budget, 0) < want[budget]:
        diffs.remove(budget)  # a shorter run with the same settings is continued to the requested budget
    if diffs:
        shown = "; ".join(f"{k}: {have.get((s, k))!r} there, {want.get((s, k))!r} requested" for s, k in diffs[:4])
        raise ValueError(f"{spec.run_dir} holds a run with other settings ({shown}"
                         f"{'; ...' if len(diffs) > 4 else ''}); it is not reused: use another --outdir, "
                         f"or move that directory away")
    from mame_tf.results import progress_rows

    rows = progress_rows(spec.run_dir)
    if have[budget] == want[budget] and len(rows) >= spec.iterations and checkpointed(spec.run_dir, spec.iterations):
        return "done"
    return "resume"


def launcher_argv(spec: RunSpec, repo_root: str, python: str = sys.executable) -> list[str]:
    """The command that runs (or resumes) ``spec`` now."""
    argv = [python, os.path.join(repo_root, "launchers", f"run_{spec.algo}.py"), *spec.args]
    if os.path.exists(os.path.join(spec.run_dir, "config.json")):
        argv.append("--resume")
    return argv
