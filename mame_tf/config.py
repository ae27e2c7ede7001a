"""Typed, validated settings, and their absl flags.

Every setting is a dataclass field whose metadata carries its help text and its constraints
(``choices``, ``min``, ``max``, ``positive``). :func:`define_flags` turns a dataclass into absl flags
(so every flag is documented in ``--helpfull`` and ``--flagfile`` works), :func:`from_flags` reads it
back, and :func:`validate` checks every field before any work starts, failing with a message that
names the flag, the value and what is allowed.
"""
from __future__ import annotations

import dataclasses
import json
import math
import typing

from absl import flags

from mame_tf.registry import FAMILIES

WANDB_MODES = ("offline", "online", "disabled")


def setting(default, doc: str, **meta):
    """A settings-dataclass field: its default, its flag help text ``doc`` and its constraints."""
    return dataclasses.field(default=default, metadata={"help": doc, **meta})


@dataclasses.dataclass
class TrainConfig:
    """Settings shared by every algorithm: the task family, the budget, the run directory."""

    env: str = setting("point_corner", "Task family.", choices=tuple(sorted(FAMILIES)))
    seed: int = setting(0, "Random seed (networks, tasks, sampling noise).", min=0)
    iterations: int = setting(None, "Number of meta-iterations (preset per task family: 300 point, 800 MuJoCo).",
                            positive=True)
    meta_batch_size: int = setting(40, "Tasks per meta-iteration.", positive=True)
    episodes_per_task: int = setting(20, "Episodes per task, for each of the pre- and post-update batches.",
                                   positive=True)
    horizon: int = setting(None, "Steps per episode (preset per task family: 100 point, 200 MuJoCo).", positive=True)
    inner_steps: int = setting(1, "Inner adaptation steps during meta-training.", min=0, max=10)
    test_inner_steps: int = setting(1, "Inner adaptation steps for meta-testing (evaluation).", min=0, max=10)
    discount: float = setting(0.99, "Discount factor γ.", min=0.0, max=1.0)
    gae_lambda: float = setting(1.0, "GAE λ for the policy-gradient advantages.", min=0.0, max=1.0)
    hidden_sizes: tuple = setting((100, 100), "Hidden layer sizes of every network (comma-separated); ProMP "
                                  "uses --promp_hidden_sizes instead.")
    logdir: str = setting("", "Run directory (default: runs/<algo>-<env>-seed<seed>-<time>).")
    resume: bool = setting(False, "Continue the run in --logdir from its last complete checkpoint.")
    checkpoint_every: int = setting(10, "Write a checkpoint every N iterations (and always at exit).", positive=True)
    keep_checkpoints: int = setting(3, "Number of checkpoints kept in the run directory.", positive=True)
    eval_every: int = setting(0, "Meta-test on held-out tasks every N iterations (0: never).", min=0)
    eval_tasks: int = setting(40, "Number of held-out tasks for meta-testing.", positive=True)
    wandb_mode: str = setting("offline", "Weights & Biases mode (offline needs no network).", choices=WANDB_MODES)
    wandb_project: str = setting("mame-tf", "Weights & Biases project name.")
    eager: bool = setting(False, "Run the update steps eagerly instead of compiling them (debugging).")
    nthread: int = setting(0, "Simulation threads (0: all cores).", min=0)
    quiet: bool = setting(False, "Print no per-iteration progress lines.")
    tensorboard: bool = setting(False, "Also write TensorBoard event files (tf.summary) into <logdir>/tensorboard.")

    def __post_init__(self) -> None:
        """Settings left unset (None) take the task family's preset (``mame_tf.registry``); then every field
        is validated."""
        family = FAMILIES.get(self.env)
        for name, value in (family.presets if family else {}).items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        check_fields(self)


def _flag_name(prefix: str, name: str) -> str:
    return f"{prefix}{name}"


def _base_type(tp):
    origin = typing.get_origin(tp)
    if origin is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0]
    return tp


def define_flags(cls, flag_values=flags.FLAGS, prefix: str = "", defaults: dict | None = None,
                 module_name: str | None = None) -> None:
    """Define one absl flag per field of the dataclass ``cls`` (listed under ``module_name`` in --help)."""
    hints = typing.get_type_hints(cls)
    where = {"module_name": module_name} if module_name else {}
    for f in dataclasses.fields(cls):
        name = _flag_name(prefix, f.name)
        if name in flag_values:
            continue
        default = (defaults or {}).get(f.name, f.default)
        help_text = f.metadata.get("help", f.name)
        tp = _base_type(hints[f.name])
        choices = f.metadata.get("choices")
        if choices:
            flags.DEFINE_enum(name, default, list(choices), help_text, flag_values=flag_values, **where)
        elif tp is bool:
            flags.DEFINE_bool(name, default, help_text, flag_values=flag_values, **where)
        elif tp is int:
            flags.DEFINE_integer(name, default, help_text, flag_values=flag_values, **where)
        elif tp is float:
            flags.DEFINE_float(name, default, help_text, flag_values=flag_values, **where)
        elif tp in (tuple, list) or typing.get_origin(tp) in (tuple, list):
            flags.DEFINE_list(name, [str(v) for v in default], help_text, flag_values=flag_values, **where)
        else:
            flags.DEFINE_string(name, default, help_text, flag_values=flag_values, **where)


def _coerce(cls, name: str, value):
    hints = typing.get_type_hints(cls)
    tp = _base_type(hints[name])
    if tp in (tuple, list) or typing.get_origin(tp) in (tuple, list):
        try:
            return tuple(int(v) for v in value)
        except (TypeError, ValueError):
            raise ValueError(f"--{name}={','.join(map(str, value))} is invalid: must be comma-separated integers")
    return value


def from_flags(cls, flag_values=flags.FLAGS, prefix: str = "", only_present: bool = False) -> dict:
    """Field values of ``cls`` read from the flags (only the ones given on the command line if asked)."""
    out = {}
    for f in dataclasses.fields(cls):
        flag = flag_values[_flag_name(prefix, f.name)]
        if only_present and not flag.present:
            continue
        out[f.name] = _coerce(cls, f.name, flag.value)
    return out


def show(value) -> str:
    """A setting's value as it is written on the command line (``8,8`` for a tuple, ``'x'`` for text)."""
    return ",".join(map(str, value)) if isinstance(value, (tuple, list)) else repr(value)


def check_fields(obj) -> None:
    """Check every field of a settings dataclass against its metadata (choices, min, max, positive).

    Also, for every field: a number must be finite, and a tuple (layer sizes) must hold one or more
    positive integers.
    """
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        meta = f.metadata
        shown = show(value)
        if value is None:
            raise ValueError(f"--{f.name} is not set and has no preset")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"--{f.name}={shown} is invalid: must be a finite number")
        if isinstance(value, (tuple, list)) and (not value or any(isinstance(v, bool) or not isinstance(v, int)
                                                                  or v < 1 for v in value)):
            raise ValueError(f"--{f.name}={shown or '(empty)'} is invalid: must be one or more positive integers")
        if "choices" in meta and value not in meta["choices"]:
            raise ValueError(f"--{f.name}={shown} is invalid; valid choices: {', '.join(map(str, meta['choices']))}")
        if meta.get("positive") and not value > 0:
            raise ValueError(f"--{f.name}={shown} is invalid: must be a positive number")
        if "min" in meta and not value >= meta["min"]:
            raise ValueError(f"--{f.name}={shown} is invalid: must be >= {meta['min']}")
        if "max" in meta and not value <= meta["max"]:
            raise ValueError(f"--{f.name}={shown} is invalid: must be <= {meta['max']}")


def validate(obj) -> None:
    """Validate a settings dataclass: its field metadata, then its own ``validate()`` rules if any.

    Raises ValueError naming the flag, the value and what is allowed.
    """
    check_fields(obj)
    extra = getattr(obj, "validate", None)
    if callable(extra):
        extra()


def to_dict(obj) -> dict:
    d = dataclasses.asdict(obj)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def from_dict(cls, data: dict):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)} for {cls.__name__}; valid: {sorted(names)}")
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items()}
    return cls(**kwargs)


def dumps(train: TrainConfig, algo_name: str, algo) -> str:
    """The text of a run's ``config.json``: the settings, and (``networks``) the network shape they resolve to."""
    from mame_tf.registry import algorithm_class

    networks = algorithm_class(algo_name).network_shapes(tuple(train.hidden_sizes), algo)
    return json.dumps({"algorithm": algo_name, "train": to_dict(train), "algo": to_dict(algo),
                       "networks": networks}, indent=2)
