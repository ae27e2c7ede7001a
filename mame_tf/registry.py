"""The one list of what the project can run: its algorithms (and, with their presets, its task families).

Nothing here imports TensorFlow or MuJoCo, so launchers, the comparison driver and the plotting code can
read the lists cheaply. An algorithm is named ``module:Class`` and imported only when it is built.
"""
from __future__ import annotations

import importlib

# Short name (the launcher's and the results' name) -> "module:Class". The order is the order of every
# table and legend: MAME first, then the baselines as in the paper's Fig. 2.
ALGORITHMS: dict[str, str] = {
    "mame": "mame_tf.mame:MAME",
    "maml_vpg": "baselines.maml_vpg:MAMLVPG",
    "maml_trpo": "baselines.maml_trpo:MAMLTRPO",
    "promp": "baselines.promp:ProMP",
    "emaml": "baselines.emaml:EMAML",
}
ALGO_ORDER: tuple[str, ...] = tuple(ALGORITHMS)


def algorithm_class(name: str):
    """The algorithm class registered as ``name``."""
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; valid names: {', '.join(ALGO_ORDER)}")
    module, cls = ALGORITHMS[name].split(":")
    return getattr(importlib.import_module(module), cls)
