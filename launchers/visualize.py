"""See what a trained agent does: trajectory pictures (point tasks) or videos (MuJoCo families).

    python launchers/visualize.py --logdir=runs/mame-point_corner_strict-seed0-...
    python launchers/visualize.py --logdir=RUN --checkpoints=10,150,300 --episodes=8
    python launchers/visualize.py --logdir=runs/mame-cheetah_dir-seed0-... --tasks=1,-1

Writes into ``RUN/visualize/`` (see ``mame_tf.visualize``):

* point tasks: ``trajectories_iter<N>.png`` per checkpoint — for each goal corner the exploration
  episodes (MAME's μ_φ, the baselines' pre-update π_θ) and the episodes after adaptation, start, goal
  and rewarded region marked — and ``sequence.png``, one row per checkpoint;
* MuJoCo: ``adapted_iter<N>.gif`` (the adapted policy on each task in turn, target and return written
  on the frames, rendered offscreen) and ``adapted_iter<N>_strip.png`` (four frames per task).

``--checkpoints``: ``last``, ``all``, a count spread evenly over the run's checkpoints (default: 5 on
the point tasks, ``last`` on MuJoCo; a single number that names one of the run's checkpoints means
that checkpoint), or iterations such as ``10,150,300``. ``--tasks``: corner indices
0-3 (point), directions 1,-1 (cheetah_dir, ant_dir) or target speeds (cheetah_vel). The adaptation
uses the run's inner steps and episodes per task. When the run logs to wandb, the pictures and
videos are logged to the same wandb run (``--wandb=false`` to skip). Checkpoints are only read.
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

flags.DEFINE_string("logdir", None, "Run directory (holds config.json and checkpoints/).")
flags.DEFINE_string("checkpoints", "", "last, all, a count spread evenly, or iterations such as 10,150,300 "
                    "(default: 5 on the point tasks, last on MuJoCo).")
flags.DEFINE_string("tasks", "", "Point: corner indices 0-3 (default 0,1,2,3); cheetah_dir/ant_dir: "
                    "directions (default 1,-1); cheetah_vel: target speeds (default 0.5,1.5).")
flags.DEFINE_integer("episodes", 5, "Point: episodes drawn per panel.", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Seed of the sampled episodes.")
flags.DEFINE_integer("width", 320, "MuJoCo frame width (pixels).", lower_bound=16)
flags.DEFINE_integer("height", 240, "MuJoCo frame height (pixels).", lower_bound=16)
flags.DEFINE_bool("wandb", True, "Log the pictures and videos to the run's wandb run when it has one.")
flags.mark_flag_as_required("logdir")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from mame_tf import visualize as vis

    try:
        run = vis.load_run(FLAGS.logdir)
        iterations = vis.select_checkpoints(run, FLAGS.checkpoints or (5 if run.is_point else "last"))
        tasks = vis.make_tasks(run.family, FLAGS.tasks or run.default_tasks)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    outdir = os.path.join(run.logdir, "visualize")
    os.makedirs(outdir, exist_ok=True)
    print(f"{run.algorithm} on {run.train.env}: checkpoints of iterations {', '.join(map(str, iterations))}; "
          f"tasks: {', '.join(vis.task_label(t) for t in tasks)}", flush=True)
    try:
        if run.is_point:
            written = vis.point_pictures(run, iterations, tasks, FLAGS.episodes, FLAGS.seed, outdir)
        else:
            written = vis.mujoco_videos(run, iterations, tasks, FLAGS.seed, outdir, FLAGS.width, FLAGS.height)
    except ValueError as err:  # e.g. a damaged checkpoint
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    if FLAGS.wandb and vis.log_to_wandb(run, written):
        print("logged them to the run's wandb run")
    return 0


if __name__ == "__main__":
    app.run(main)
