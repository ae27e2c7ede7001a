"""Send MuJoCo's warnings to Python ``logging`` instead of stderr and ``MUJOCO_LOG.TXT``.

Without a user warning callback, MuJoCo prints every warning and appends it to ``MUJOCO_LOG.TXT`` in
the working directory (mujoco 4 warns about the deprecated ``settotalmass`` on every HalfCheetah
load, and about unstable simulations). :func:`install` (called when ``mame_tf`` is imported) routes
them to the ``mame_tf.mujoco`` logger at DEBUG level. The callback is safe to call from the worker
threads of ``mujoco.batch`` and of the Ant's simulation pool (``mame_tf.envs.batched``).
"""
from __future__ import annotations

import logging

import mujoco

logger = logging.getLogger("mame_tf.mujoco")


def _on_warning(message: str) -> None:
    logger.debug("MuJoCo warning: %s", message.strip())


def install() -> None:
    """Install the callback (idempotent: it replaces any previous MuJoCo user warning handler)."""
    mujoco.set_mju_user_warning(_on_warning)
