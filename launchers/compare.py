"""Comparisons and sweeps: algorithms (or MAME's ablations) × grid combinations × seeds, run on Ray.

    python launchers/compare.py --env=point_corner_strict                 # paper Fig. 2: 5 algorithms x 3 seeds
    python launchers/compare.py --env=point_corner_strict --ablations     # paper Fig. 3: MAME and its 4 ablations
    python launchers/compare.py --env=point_corner_strict --algos=mame --grid=inner_lr=1,5,30 --grid=latent_dim=4,8
    python launchers/compare.py --env=cheetah_dir --address=auto --cpus_per_run=4   # on an existing Ray cluster

Without ``--address`` an embedded Ray instance is started on this machine (nothing to set up) and
stopped at the end. Each run is an ordinary ``launchers/run_<algo>.py`` process writing into
``<outdir>/<name>_s<seed>/`` (console output in ``<name>_s<seed>.log`` beside it); see
``mame_tf.experiment`` for the plan, the grid and when an existing run is reused, and
``mame_tf.executor`` for the execution: retries that resume, Ctrl-C/SIGTERM, durable results.
Repeating the same command after a Ctrl-C, a crash or a killed driver keeps the finished runs and
resumes the others. At the end the runs are aggregated (``mame_tf.results``) into
``<outdir>/summary_curves.csv``, ``summary_final.csv``, ``summary_table.csv`` and ``summary.png``,
and the table (mean over seeds with a 95 % confidence interval) is printed.
"""
from __future__ import annotations

import os
import shlex
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from absl import app, flags  # noqa: E402

from mame_tf.experiment import ABLATIONS, ALGO_ORDER, launcher_argv, plan, run_state  # noqa: E402
from mame_tf.registry import FAMILIES, find_family  # noqa: E402

flags.DEFINE_string("env", "point_corner_strict", f"Task family: one of {', '.join(sorted(FAMILIES))}.")
flags.DEFINE_list("algos", list(ALGO_ORDER), f"Algorithms to compare: any of {', '.join(ALGO_ORDER)}.")
flags.DEFINE_bool("ablations", False, "Run MAME and its four Fig. 3 ablations instead of --algos: "
                  + ", ".join(ABLATIONS) + ".")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds (non-negative integers).")
flags.DEFINE_multi_string("grid", [], "A setting to sweep: NAME=V1,V2,... (every selected algorithm) or "
                          "ALGO.NAME=V1,V2,... (that algorithm only; the others run once per seed). Repeat for "
                          "more settings: every combination is run. List values take ':' (hidden_sizes=32:32).")
flags.DEFINE_integer("iterations", 0, "Iterations of every run (0: the task family's preset).", lower_bound=0)
flags.DEFINE_string("run_flags", "", "Further flags passed verbatim to every run, e.g. "
                    "'--meta_batch_size=20 --episodes_per_task=10'.")
flags.DEFINE_string("outdir", "", "Directory of the runs and the summary (default: runs/compare-<env> or "
                    "runs/ablations-<env>). On a cluster it must be on a filesystem every node mounts at the "
                    "same path.")
flags.DEFINE_string("address", "", "Ray cluster to run on: 'auto' (this node belongs to a cluster) or "
                    "'ray://host:10001'. Empty: an embedded Ray instance on this machine.")
flags.DEFINE_integer("num_cpus", 0, "CPUs of the embedded Ray instance (0: all of this machine's).", lower_bound=0)
flags.DEFINE_float("cpus_per_run", 0, "CPUs each run asks Ray for, and the simulation threads it uses "
                   "(0: 1 for the point tasks, 2 for MuJoCo).", lower_bound=0)
flags.DEFINE_integer("workers", 0, "At most this many runs at a time (0: as many as the CPUs allow).", lower_bound=0)
flags.DEFINE_integer("max_retries", 3, "Retries of a run whose process, worker or node died; each retry "
                     "resumes from the run's last checkpoint.", lower_bound=0)
flags.DEFINE_string("ray_temp_dir", "", "Temporary directory of the embedded Ray instance (default: Ray's, /tmp/ray).")
flags.DEFINE_enum("wandb_mode", "disabled", ["offline", "online", "disabled"], "Weights & Biases mode of every run.")
flags.DEFINE_integer("final_window", 10, "Iterations averaged for the final numbers.", lower_bound=1)
flags.DEFINE_float("status_every", 60, "Seconds between progress blocks when the output is not a terminal "
                   "(on a terminal the block is redrawn every second).", lower_bound=1)
flags.DEFINE_bool("dry_run", False, "Validate, print each run's state and command, and exit.")
FLAGS = flags.FLAGS

MUJOCO_CPUS = 2
DRIVER_LOCK = "driver.lock"  # in <outdir>/.experiment: held by the driver while it runs the experiment


def _settings_note(specs) -> list[str]:
    """For each swept setting, what it means to each algorithm (help texts differ where meanings do)."""
    from mame_tf.experiment import setting_names

    lines = []
    for item in FLAGS.grid:
        key = item.split("=", 1)[0]
        scope, _, name = key.rpartition(".")
        algos = sorted({s.algo for s in specs if not scope or s.algo == scope}, key=ALGO_ORDER.index)
        texts = {a: setting_names(a)[name].split(". ")[0].rstrip(".") for a in algos}
        if len(set(texts.values())) > 1:
            lines.append(f"note: {name} means something different to each algorithm: "
                         + "; ".join(f"{a}: {t}" for a, t in texts.items()))
    return lines


def _check_flag_combinations() -> None:
    if FLAGS.ablations and FLAGS["algos"].present:
        raise ValueError("--ablations runs MAME's variants; do not combine it with --algos")
    if FLAGS.address and FLAGS.num_cpus:
        raise ValueError("--num_cpus sizes the embedded Ray instance; with --address the cluster has its own")


def _cpus_per_run() -> float:
    """The CPUs each run asks for (and its simulation threads): the flag, or the family's default."""
    family = find_family(FLAGS.env)
    cpus = FLAGS.cpus_per_run or (1 if family is not None and family.kind == "point" else MUJOCO_CPUS)
    local_cpus = FLAGS.num_cpus or os.cpu_count() or 1
    if not FLAGS.address and cpus > local_cpus:
        raise ValueError(f"--cpus_per_run={cpus:g} is more than the {local_cpus} CPUs of the local Ray instance; "
                         f"lower it, raise --num_cpus, or run on a cluster with --address")
    return cpus


def _plan(cpus: float):
    """Every run of the experiment, validated (ValueError otherwise)."""
    outdir = FLAGS.outdir or os.path.join("runs", f"{'ablations' if FLAGS.ablations else 'compare'}-{FLAGS.env}")
    run_flags = FLAGS.run_flags
    if "--nthread" not in run_flags:  # the run's simulation threads match the CPUs it was given
        run_flags = f"{run_flags} --nthread={max(1, int(cpus))}".strip()
    return plan(FLAGS.env, FLAGS.algos, FLAGS.seeds, FLAGS.ablations, outdir, FLAGS.iterations, run_flags,
                FLAGS.wandb_mode, FLAGS.grid)


def _lock_outdir(outdir: str) -> int:
    """Hold the experiment's lock in ``outdir`` (two drivers on one directory would run its runs twice);
    returns the descriptor that keeps it. ValueError naming the holder if another driver has it."""
    from mame_tf.experiment import BOOKKEEPING
    from mame_tf.run import LockHeld, acquire_lock

    book = os.path.join(outdir, BOOKKEEPING)
    try:
        os.makedirs(book, exist_ok=True)
        return acquire_lock(os.path.join(book, DRIVER_LOCK))
    except LockHeld as held:
        raise ValueError(f"--outdir={outdir} is in use by {held.holder} (another compare.py); wait for it to "
                         f"stop (or stop it), or give another --outdir") from None
    except OSError as err:
        raise ValueError(f"--outdir={outdir} cannot be locked: {err.strerror or err}") from None


def _run_states(specs) -> dict[str, str]:
    """``{run name: "new" | "resume" | "done"}``; ValueError listing every directory that holds another run."""
    states, conflicts = {}, []
    for spec in specs:
        try:
            states[spec.name] = run_state(spec)
        except ValueError as err:
            conflicts.append(str(err))
    if conflicts:
        raise ValueError("\n  ".join(conflicts))
    return states


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        _check_flag_combinations()
        cpus = _cpus_per_run()
        specs = _plan(cpus)
        outdir = os.path.dirname(specs[0].run_dir)
        lock = None if FLAGS.dry_run else _lock_outdir(outdir)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        return _run(specs, outdir, cpus)
    finally:
        if lock is not None:
            os.close(lock)


def _run(specs, outdir: str, cpus: float) -> int:
    try:
        states = _run_states(specs)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    todo = [s for s in specs if states[s.name] != "done"]
    counts = {k: sum(1 for v in states.values() if v == k) for k in ("done", "resume", "new")}
    print(f"{len(specs)} runs in {outdir}/: {counts['done']} finished with these settings (kept), "
          f"{counts['resume']} to resume, {counts['new']} new; {cpus:g} CPU(s) per run", flush=True)
    for line in _settings_note(specs):
        print(line, flush=True)
    for spec in specs:
        if states[spec.name] == "done":
            print(f"  {spec.label} seed {spec.seed}: complete ({spec.iterations} iterations), kept")
    if FLAGS.dry_run:
        for spec in todo:
            print(" ".join(shlex.quote(c) for c in launcher_argv(spec, ROOT)))
        return 0

    outcomes, stopped_by = {}, None
    if todo:
        from mame_tf.executor import Board, execute

        board = Board(specs, states, session="", stream=sys.stdout, status_every=FLAGS.status_every)
        try:
            outcomes, stopped_by = execute(todo, board, outdir, address=FLAGS.address, num_cpus=FLAGS.num_cpus,
                                           cpus_per_run=cpus, max_retries=FLAGS.max_retries, workers=FLAGS.workers,
                                           temp_dir=FLAGS.ray_temp_dir, repo_root=ROOT)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    if stopped_by is not None:
        return _report_stop(specs, outcomes, stopped_by)
    return _summarize(specs, states, outcomes, outdir)


def _report_stop(specs, outcomes, signum) -> int:
    import signal

    from mame_tf.experiment import saved_checkpoint_iteration
    from mame_tf.results import progress_rows

    print(f"stopped by {signal.Signals(signum).name}; state of the runs that were not finished:", file=sys.stderr)
    for spec in specs:
        outcome = outcomes.get(spec.name)
        if outcome in (None, "done"):
            continue
        logged, saved = len(progress_rows(spec.run_dir)), saved_checkpoint_iteration(spec.run_dir)
        note = "nothing lost" if logged == saved else f"{logged - saved} logged iterations after it will be redone"
        print(f"  {spec.label} seed {spec.seed}: {outcome}; checkpoint at iteration {saved} of "
              f"{spec.iterations} ({note})", file=sys.stderr)
    print("repeat the same command to continue", file=sys.stderr)
    return 128 + signum


def _summarize(specs, states, outcomes, outdir) -> int:
    from mame_tf.results import aggregate, progress_rows, summary_table

    failed = [s for s in specs if outcomes.get(s.name, "").startswith("failed")]
    groups: dict[str, list[str]] = {}
    for spec in specs:
        if (states[spec.name] == "done" or outcomes.get(spec.name) == "done") and progress_rows(spec.run_dir):
            groups.setdefault(spec.label, []).append(spec.run_dir)
    if groups:
        out = os.path.join(outdir, "summary")
        finals = aggregate(groups, out, final_window=FLAGS.final_window,
                           title=f"{FLAGS.env}{' ablations' if FLAGS.ablations else ''}")
        rows = summary_table(finals, out)
        metrics = list(rows[0][2])
        width = max(len(label) for label, *_ in rows)
        print(f"wrote {out}_curves.csv, {out}_final.csv, {out}_table.csv, {out}.png")
        print(f"last {FLAGS.final_window} iterations, mean over seeds ± 95% CI:")
        print(f"  {'':{width}s}  seeds  " + "  ".join(f"{m:>30s}" for m in metrics))
        for label, n, stats in rows:
            cells = "  ".join(f"{stats[m][0]:>14.3f} ± {stats[m][1]:<13.3f}" if n > 1 else f"{stats[m][0]:>14.3f}"
                              f"{'':16s}" for m in metrics)
            print(f"  {label:{width}s}  {n:5d}  {cells}")
    for spec in failed:
        print(f"error: {spec.label} seed {spec.seed} {outcomes[spec.name]}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    app.run(main)
