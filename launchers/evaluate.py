"""Meta-test a trained agent on new tasks, through the same adaptation path as training.

    python launchers/evaluate.py --logdir=runs/mame-point_corner-seed0-... --inner_steps=3 --eval_tasks=40

Loads the run's ``config.json`` and its last complete checkpoint, draws ``--eval_tasks`` tasks with
``--seed`` (held out: a different generator from training's), and for every k in 0..``--inner_steps``
reports the mean return of the post-update episodes after k inner steps (k = 0: no adaptation), plus
the exploration episodes' return. Writes ``eval.json`` into the run directory.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

flags.DEFINE_string("logdir", None, "Run directory to evaluate (holds config.json and checkpoints/).")
flags.DEFINE_integer("inner_steps", 3, "Evaluate after 0..inner_steps adaptation steps.", lower_bound=0)
flags.DEFINE_integer("eval_tasks", 40, "Number of new tasks.", lower_bound=1)
flags.DEFINE_integer("episodes_per_task", 0, "Episodes per task (0: the run's setting).", lower_bound=0)
flags.DEFINE_integer("seed", 12345, "Seed of the evaluation tasks and sampling noise.")
flags.mark_flag_as_required("logdir")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    path = os.path.join(FLAGS.logdir, "config.json")
    if not os.path.exists(path):
        print(f"error: --logdir={FLAGS.logdir!r} has no config.json", file=sys.stderr)
        return 2
    import dataclasses

    from mame_tf import config as cfgmod
    from mame_tf.checkpoint import Checkpointer
    from mame_tf.launch import algorithm_class
    from mame_tf.sampler import MetaSampler
    from mame_tf.trainer import evaluate

    with open(path) as fh:
        saved = json.load(fh)
    cls = algorithm_class(saved["algorithm"])
    train = cfgmod.from_dict(cfgmod.TrainConfig, saved["train"])
    algo_cfg = cfgmod.from_dict(cls.config_class, saved["algo"])
    episodes = FLAGS.episodes_per_task or train.episodes_per_task
    sampler = MetaSampler(train.env, episodes, train.horizon, seed=FLAGS.seed)
    algo = cls(dataclasses.replace(train, inner_steps=max(FLAGS.inner_steps, 1)), algo_cfg,
               sampler.obs_dim, sampler.act_dim)
    state = Checkpointer(os.path.join(FLAGS.logdir, "checkpoints"), algo.checkpoint_items()).restore_latest()
    if state is None:
        print(f"error: no complete checkpoint in {FLAGS.logdir}/checkpoints", file=sys.stderr)
        return 2
    tasks = sampler.sample_tasks(FLAGS.eval_tasks)
    results = {"algorithm": saved["algorithm"], "env": train.env, "checkpoint_iteration": state["iteration"],
               "eval_tasks": FLAGS.eval_tasks, "episodes_per_task": episodes, "steps": {}}
    print(f"{saved['algorithm']} on {train.env}, checkpoint of iteration {state['iteration']}, "
          f"{FLAGS.eval_tasks} new tasks x {episodes} episodes")
    for k in range(FLAGS.inner_steps + 1):
        row = evaluate(algo, sampler, tasks, k)
        results["steps"][k] = row
        extra = "".join(f"  {key.split('/')[-1]} {value:.3f}" for key, value in row.items()
                        if "final_" in key)
        print(f"  inner steps {k}: exploration return {row['eval/pre_adapt/return']:9.3f}   "
              f"post-update return {row['eval/post_adapt/return']:9.3f}{extra}", flush=True)
    with open(os.path.join(FLAGS.logdir, "eval.json"), "w") as fh:
        json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    app.run(main)
