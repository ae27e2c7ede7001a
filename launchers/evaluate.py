"""Meta-test a trained agent on new tasks, through the same adaptation path as training.

    python launchers/evaluate.py --logdir=runs/mame-point_corner_strict-seed0-...
    python launchers/evaluate.py --logdir=RUN --inner_steps=3 --eval_tasks=100

Loads the run's ``config.json`` and its newest intact checkpoint (a damaged one is skipped with a
line saying why), draws ``--eval_tasks`` tasks with ``--seed`` (held out: a different generator from
training's), and for every k in 0..``--inner_steps`` (default: the run's own training setting,
usually 1) reports the post-update return after k inner steps, as the mean over tasks with its 95%
bootstrap CI over tasks, and the exploration episodes' return. k = 0 is the policy without
adaptation: MAME's π_θ,z with the learned z, the baselines' pre-update π_θ. Writes the results to
``--output`` (default ``<logdir>/eval/iter<N>-k<K>-tasks<T>-eps<E>-seed<S>.json``, so evaluations
with other settings never overwrite each other), atomically. It never writes to or deletes from the
run's checkpoints, so it is safe next to a live run. Exit codes: 0 done, 2 bad input (the message
says which), 3 non-finite actions.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

flags.DEFINE_string("logdir", None, "Run directory to evaluate (holds config.json and checkpoints/).")
flags.DEFINE_integer("inner_steps", -1, "Evaluate after 0..inner_steps adaptation steps (-1: the run's "
                     "training setting).", lower_bound=-1, upper_bound=10)
flags.DEFINE_integer("eval_tasks", 40, "Number of new tasks.", lower_bound=1)
flags.DEFINE_integer("episodes_per_task", 0, "Episodes per task (0: the run's setting).", lower_bound=0)
flags.DEFINE_integer("seed", 12345, "Seed of the evaluation tasks and sampling noise.", lower_bound=0)
flags.DEFINE_string("output", "", "Where to write the results (default: "
                    "<logdir>/eval/iter<N>-k<K>-tasks<T>-eps<E>-seed<S>.json).")
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


def row_label(algorithm: str, k: int, trained_with: int) -> str:
    """What the k-th row measures, in the algorithm's own terms."""
    if k == 0:
        return "k=0, no adaptation (π_θ,z, learned z)" if algorithm == "mame" else "k=0, pre-update policy π_θ"
    what = "inner steps on z" if algorithm == "mame" else "inner steps"
    return f"k={k} {what}" + (" (as trained)" if k == trained_with else "")


def evaluate_per_task(algo, sampler, tasks, k: int) -> tuple[dict, list[float]]:
    """``mame_tf.trainer.evaluate``'s numbers plus the post-update return's 95% bootstrap CI over tasks,
    and the post-update return of every task."""
    from mame_tf.plotting import bootstrap_ci
    from mame_tf.trainer import adapt_and_sample, evaluation_metrics

    pre_batches, post_batch, _ = adapt_and_sample(algo, sampler, tasks, k)
    per_task = post_batch.episode_returns().mean(axis=1)
    lo, hi = bootstrap_ci(per_task, n_boot=10_000, seed=0)
    row = {**evaluation_metrics(pre_batches, post_batch),
           "eval/post_adapt/return_ci95_low": float(lo), "eval/post_adapt/return_ci95_high": float(hi)}
    return row, [float(v) for v in per_task]


def _inner_steps() -> int:
    """The most inner steps to evaluate; ValueError if the run's configuration cannot be read or the
    results could not be written."""
    from mame_tf.api import read_config

    _, saved_train, _ = read_config(FLAGS.logdir)
    inner_steps = saved_train.inner_steps if FLAGS.inner_steps < 0 else FLAGS.inner_steps
    if FLAGS.output:
        _check_writable(FLAGS.output)
    else:
        try:
            os.makedirs(os.path.join(FLAGS.logdir, "eval"), exist_ok=True)
        except OSError as err:
            raise ValueError(f"{FLAGS.logdir}/eval cannot be created ({err.strerror or err}); give --output")
        _check_writable(os.path.join(FLAGS.logdir, "eval", "probe"))
    return inner_steps


def _evaluate_each_step_count(algo, train, sampler, tasks, inner_steps: int, results: dict) -> None:
    """Meta-test with 0..``inner_steps`` inner steps, printing one line each and filling ``results``."""
    for k in range(inner_steps + 1):
        row, per_task = evaluate_per_task(algo, sampler, tasks, k)
        results["steps"][k] = row
        results["post_adapt_return_per_task"][k] = per_task
        extra = "".join(f"  {key.split('/')[-1]} {value:.3f}" for key, value in row.items()
                        if "final_" in key)
        ci = row["eval/post_adapt/return_ci95_low"], row["eval/post_adapt/return_ci95_high"]
        explore = f"exploration {row['eval/pre_adapt/return']:8.3f}" if k else f"{'':20s}"
        print(f"  {row_label(algo.name, k, train.inner_steps):40s} {explore}  post-update "
              f"{row['eval/post_adapt/return']:8.3f} [{ci[0]:.3f}, {ci[1]:.3f}]{extra}", flush=True)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        inner_steps = _inner_steps()
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from mame_tf.api import load_run
    from mame_tf.checkpoint import atomic_write_text
    from mame_tf.sampler import MetaSampler

    try:
        algo, train, state = load_run(FLAGS.logdir, inner_steps=max(inner_steps, 1))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    episodes = FLAGS.episodes_per_task or train.episodes_per_task
    sampler = MetaSampler(train.env, episodes, train.horizon, seed=FLAGS.seed)
    tasks = sampler.sample_tasks(FLAGS.eval_tasks)
    results = {"algorithm": algo.name, "env": train.env, "checkpoint_iteration": state["iteration"],
               "eval_tasks": FLAGS.eval_tasks, "episodes_per_task": episodes, "seed": FLAGS.seed,
               "training_inner_steps": train.inner_steps, "steps": {}, "post_adapt_return_per_task": {}}
    print(f"{algo.name} on {train.env}, checkpoint of iteration {state['iteration']}, "
          f"{FLAGS.eval_tasks} new tasks x {episodes} episodes; trained with {train.inner_steps} inner "
          f"step{'s' if train.inner_steps != 1 else ''}; mean over tasks [95% bootstrap CI over tasks]")
    try:
        _evaluate_each_step_count(algo, train, sampler, tasks, inner_steps, results)
    except FloatingPointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    finally:
        sampler.close()
    output = FLAGS.output or os.path.join(
        FLAGS.logdir, "eval", f"iter{state['iteration']:06d}-k{inner_steps}-tasks{FLAGS.eval_tasks}-"
                              f"eps{episodes}-seed{FLAGS.seed}.json")
    try:
        atomic_write_text(output, json.dumps(results, indent=2))
    except OSError as err:
        print(f"error: --output={output} cannot be written ({err.strerror or err})", file=sys.stderr)
        return 2
    print(f"results written to {output}")
    return 0


if __name__ == "__main__":
    app.run(main)
