"""Train MAME (Model-Agnostic Meta-Exploration).

    python launchers/run_mame.py                       # the paper's configuration on point_corner
    python launchers/run_mame.py --env=cheetah_dir     # or point_corner[_strict], cheetah_vel, ant_dir
    python launchers/run_mame.py --helpfull            # every flag, documented

Every hyperparameter is an absl flag (``--flagfile`` works); see README.md for the run directory.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mame_tf.launch import run_main  # noqa: E402
from mame_tf.mame import MAME  # noqa: E402

if __name__ == "__main__":
    run_main(MAME)
