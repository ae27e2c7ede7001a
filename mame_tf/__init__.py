"""mame-tf: Model-Agnostic Meta-Exploration and its meta-RL baselines in TensorFlow 2.

Importing the package registers every task family of ``mame_tf.registry.FAMILIES`` as a gymnasium
environment (``mame_tf/PointCorner-v0``, ``mame_tf/AntDir-v0``, ...: the registry lists all their ids)
and routes MuJoCo warnings to Python logging.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out of the console

from mame_tf import envs  # noqa: F401  (registers the environments)

__version__ = "0.2.0"

from mame_tf.api import load, train  # noqa: E402,F401
