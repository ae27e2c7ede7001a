"""Meta-test a trained agent on new tasks, through the same adaptation path as training.

    python launchers/evaluate.py --logdir=runs/mame-point_corner-seed0-... --inner_steps=3 --eval_tasks=40

Loads the run's ``config.json`` and its newest intact checkpoint (a damaged one is skipped with a
line saying why), draws ``--eval_tasks`` tasks with ``--seed`` (held out: a different generator from
training's), and for every k in 0..``--inner_steps`` reports the mean return of the post-update
episodes after k inner steps (k = 0: no adaptation), plus the exploration episodes' return. Writes
the results to ``--output`` (default ``<logdir>/eval.json``), atomically. It never writes to or
deletes from the run's checkpoints, so it is safe next to a live run. Exit codes: 0 done, 2 bad
input (the message says which), 3 non-finite actions.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

flags.DEFINE_string("logdir", None, "Run directory to evaluate (holds config.json and checkpoints/).")
flags.DEFINE_integer("inner_steps", 3, "Evaluate after 0..inner_steps adaptation steps.", lower_bound=0, upper_bound=10)
flags.DEFINE_integer("eval_tasks", 40, "Number of new tasks.", lower_bound=1)
flags.DEFINE_integer("episodes_per_task", 0, "Episodes per task (0: the run's setting).", lower_bound=0)
flags.DEFINE_integer("seed", 12345, "Seed of the evaluation tasks and sampling noise.", lower_bound=0)
flags.DEFINE_string("output", "", "Where to write the results (default: <logdir>/eval.json).")
flags.mark_flag_as_required("logdir")
FLAGS = flags.FLAGS


def _check_writable(path: str) -> None:
    """Fail before any work if ``path`` cannot be written."""
    probe = f"{path}.tmp"
    try:
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as err:
        raise ValueError(f"--output={path} cannot be written ({err.strerror or err}); give a writable --output") from None


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    output = FLAGS.output or os.path.join(FLAGS.logdir, "eval.json")
    try:
        from mame_tf.api import read_config

        read_config(FLAGS.logdir)
        _check_writable(output)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from mame_tf.api import load_run
    from mame_tf.checkpoint import atomic_write_text
    from mame_tf.sampler import MetaSampler
    from mame_tf.trainer import evaluate

    try:
        algo, train, state = load_run(FLAGS.logdir, inner_steps=max(FLAGS.inner_steps, 1))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    episodes = FLAGS.episodes_per_task or train.episodes_per_task
    sampler = MetaSampler(train.env, episodes, train.horizon, seed=FLAGS.seed)
    tasks = sampler.sample_tasks(FLAGS.eval_tasks)
    results = {"algorithm": algo.name, "env": train.env, "checkpoint_iteration": state["iteration"],
               "eval_tasks": FLAGS.eval_tasks, "episodes_per_task": episodes, "steps": {}}
    print(f"{algo.name} on {train.env}, checkpoint of iteration {state['iteration']}, "
          f"{FLAGS.eval_tasks} new tasks x {episodes} episodes")
    try:
        for k in range(FLAGS.inner_steps + 1):
            row = evaluate(algo, sampler, tasks, k)
            results["steps"][k] = row
            extra = "".join(f"  {key.split('/')[-1]} {value:.3f}" for key, value in row.items()
                            if "final_" in key)
            print(f"  inner steps {k}: exploration return {row['eval/pre_adapt/return']:9.3f}   "
                  f"post-update return {row['eval/post_adapt/return']:9.3f}{extra}", flush=True)
    except FloatingPointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    finally:
        sampler.close()
    try:
        atomic_write_text(output, json.dumps(results, indent=2))
    except OSError as err:
        print(f"error: --output={output} cannot be written ({err.strerror or err})", file=sys.stderr)
        return 2
    print(f"results written to {output}")
    return 0


if __name__ == "__main__":
    app.run(main)
