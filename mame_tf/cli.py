"""Console entry points: each runs a launcher of ``launchers/`` exactly as ``python launchers/<name>.py``.

    mame-tf-mame, mame-tf-maml-vpg, mame-tf-maml-trpo, mame-tf-promp, mame-tf-emaml   (training)
    mame-tf-compare, mame-tf-evaluate, mame-tf-visualize                             (the rest)
"""
from __future__ import annotations

import runpy


def _run(module: str) -> None:
    runpy.run_module(f"launchers.{module}", run_name="__main__", alter_sys=True)


def mame() -> None:
    _run("run_mame")


def maml_vpg() -> None:
    _run("run_maml_vpg")


def maml_trpo() -> None:
    _run("run_maml_trpo")


def promp() -> None:
    _run("run_promp")


def emaml() -> None:
    _run("run_emaml")


def compare() -> None:
    _run("compare")


def evaluate() -> None:
    _run("evaluate")


def visualize() -> None:
    _run("visualize")
