"""Train ProMP on one of the task families (same flags, run directory and tracking as run_mame.py).

    python launchers/run_promp.py --env=point_corner
    python launchers/run_promp.py --helpfull            # every flag, documented
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mame_tf.launch import run_main  # noqa: E402
from baselines.promp import ProMP  # noqa: E402

if __name__ == "__main__":
    run_main(ProMP)
