"""Console entry points: each runs a launcher of ``launchers/`` exactly as ``python launchers/<name>.py``.

    mame-tf-mame, mame-tf-maml-vpg, mame-tf-maml-trpo, mame-tf-promp, mame-tf-emaml   (training)
    mame-tf-compare, mame-tf-evaluate, mame-tf-visualize                             (the rest)
"""
from __future__ import annotations

import functools
import runpy

# What setup.py's console_scripts name (mame_tf.cli:<name>).
__all__ = ["mame", "maml_vpg", "maml_trpo", "promp", "emaml", "compare", "evaluate", "visualize"]


def _run(module: str) -> None:
    runpy.run_module(f"launchers.{module}", run_name="__main__", alter_sys=True)


mame = functools.partial(_run, "run_mame")
maml_vpg = functools.partial(_run, "run_maml_vpg")
maml_trpo = functools.partial(_run, "run_maml_trpo")
promp = functools.partial(_run, "run_promp")
emaml = functools.partial(_run, "run_emaml")
compare = functools.partial(_run, "compare")
evaluate = functools.partial(_run, "evaluate")
visualize = functools.partial(_run, "visualize")
