"""Comparison runs: several algorithms (or MAME's ablations) × seeds on one task family, then the plot.

    python launchers/compare.py --env=point_corner_strict                 # paper Fig. 2: 5 algorithms x 3 seeds
    python launchers/compare.py --env=point_corner_strict --ablations     # paper Fig. 3: MAME and its 4 ablations
    python launchers/compare.py --env=cheetah_dir --algos=mame,maml_trpo --seeds=0 --workers=1 \
        --iterations=200 --run_flags="--meta_batch_size=20 --episodes_per_task=10"

Each run is an ordinary ``launchers/run_<algo>.py`` process writing into ``<outdir>/<label>_s<seed>``
(its console output goes to ``<label>_s<seed>.log`` beside it). Runs already complete are skipped and
interrupted ones are resumed, so the same command can simply be repeated after a Ctrl-C or a crash.
At the end the runs are aggregated (``mame_tf.results``) into ``<outdir>/summary_curves.csv``,
``summary_final.csv`` and ``summary.png``, and the final numbers are printed.
"""
from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from mame_tf.config import ENV_PRESETS  # noqa: E402
from mame_tf.launch import ALGORITHMS  # noqa: E402

# Paper Fig. 3: label -> MAME flags.
ABLATIONS: dict[str, list[str]] = {
    "mame": [],
    "vpg_inner_loop": ["--inner_objective=vpg"],
    "reward_self_supervision": ["--inner_target=reward"],
    "vanilla_dice": ["--explore_estimator=dice"],
    "emaml_based": ["--explore_estimator=emaml"],
}
ALGO_ORDER = ("mame", "maml_vpg", "maml_trpo", "promp", "emaml")

flags.DEFINE_string("env", "point_corner_strict", f"Task family: one of {', '.join(sorted(ENV_PRESETS))}.")
flags.DEFINE_list("algos", list(ALGO_ORDER), f"Algorithms to compare: any of {', '.join(ALGO_ORDER)}.")
flags.DEFINE_bool("ablations", False, "Run MAME and its four Fig. 3 ablations instead of --algos: "
                  + ", ".join(ABLATIONS) + ".")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds (non-negative integers).")
flags.DEFINE_integer("workers", 1, "Runs at a time. The MuJoCo samplers use every core, so 1 is right for "
                     "them; 2 suits the point tasks on 2 cores.", lower_bound=1)
flags.DEFINE_integer("iterations", 0, "Iterations of every run (0: the task family's preset).", lower_bound=0)
flags.DEFINE_string("run_flags", "", "Further flags passed verbatim to every run, e.g. "
                    "'--meta_batch_size=20 --episodes_per_task=10'.")
flags.DEFINE_string("outdir", "", "Directory of the runs and the summary (default: runs/compare-<env> or "
                    "runs/ablations-<env>).")
flags.DEFINE_enum("wandb_mode", "disabled", ["offline", "online", "disabled"], "Weights & Biases mode of every run.")
flags.DEFINE_integer("final_window", 10, "Iterations averaged for the final numbers.", lower_bound=1)
flags.DEFINE_bool("dry_run", False, "Print the commands and exit.")
FLAGS = flags.FLAGS

LAUNCHERS = os.path.dirname(os.path.abspath(__file__))


def plan(env: str, algos, seeds, ablations: bool, outdir: str, iterations: int, run_flags, wandb_mode):
    """``[(label, seed, run_dir, argv)]`` for every run, validated before anything starts."""
    if env not in ENV_PRESETS:
        raise ValueError(f"--env={env!r} is invalid; valid choices: {', '.join(sorted(ENV_PRESETS))}")
    for name in algos:
        if name not in ALGORITHMS:
            raise ValueError(f"--algos: {name!r} is not an algorithm; valid choices: {', '.join(ALGO_ORDER)}")
    if not algos:
        raise ValueError("--algos is empty; give at least one of " + ", ".join(ALGO_ORDER))
    parsed = []
    for s in seeds:
        try:
            seed = int(s)
        except ValueError:
            seed = -1
        if seed < 0:
            raise ValueError(f"--seeds: {s!r} is not a non-negative integer")
        parsed.append(seed)
    if not parsed:
        raise ValueError("--seeds is empty")
    try:
        extra = shlex.split(run_flags)
    except ValueError as err:
        raise ValueError(f"--run_flags={run_flags!r} cannot be parsed: {err}") from None
    for item in extra:
        if not item.startswith("--"):
            raise ValueError(f"--run_flags: {item!r} is not a --flag=value")
        if item.split("=", 1)[0] in ("--env", "--seed", "--logdir", "--resume", "--wandb_mode"):
            raise ValueError(f"--run_flags must not set {item.split('=', 1)[0]} (compare.py sets it per run)")
    variants = [("mame", label, list(args)) for label, args in ABLATIONS.items()] if ablations else \
        [(name, name, []) for name in algos]
    runs = []
    for algo, label, args in variants:
        for seed in parsed:
            run_dir = os.path.join(outdir, f"{label}_s{seed}")
            argv = [sys.executable, os.path.join(LAUNCHERS, f"run_{algo}.py"), f"--env={env}", f"--seed={seed}",
                    f"--logdir={run_dir}", f"--wandb_mode={wandb_mode}", *args, *extra]
            if iterations:
                argv.append(f"--iterations={iterations}")
            runs.append((label, seed, run_dir, argv))
    for algo, _, args in variants:  # the launchers' own validation, before any run starts
        check_run_flags(algo, [f"--env={env}", *args, *extra] + ([f"--iterations={iterations}"] if iterations else []))
    return runs


def check_run_flags(algo: str, argv: list[str]) -> None:
    """Parse and validate ``argv`` exactly as ``launchers/run_<algo>.py`` would (ValueError if invalid)."""
    from mame_tf import config as cfgmod
    from mame_tf.config import TrainConfig
    from mame_tf.launch import algorithm_class, build_configs

    cls = algorithm_class(algo)
    values = flags.FlagValues()
    cfgmod.define_flags(TrainConfig, values)
    cfgmod.define_flags(cls.config_class, values)
    try:
        values(["run_" + algo, *argv])
    except flags.Error as err:
        raise ValueError(f"run_{algo}.py rejects {' '.join(argv)}: {err}") from None
    build_configs(cls, values)


def progress_rows(run_dir: str) -> int:
    path = os.path.join(run_dir, "progress.csv")
    if not os.path.exists(path):
        return 0
    with open(path) as fh:
        return max(sum(1 for _ in fh) - 1, 0)


def target_iterations(run_dir: str, iterations: int) -> int | None:
    """Iterations the run must reach: the flag, else its saved configuration (None if never started)."""
    if iterations:
        return iterations
    path = os.path.join(run_dir, "config.json")
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        return int(json.load(fh)["train"]["iterations"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if FLAGS.ablations and FLAGS["algos"].present:
        print("error: --ablations runs MAME's variants; do not combine it with --algos", file=sys.stderr)
        return 2
    outdir = FLAGS.outdir or os.path.join("runs", f"{'ablations' if FLAGS.ablations else 'compare'}-{FLAGS.env}")
    try:
        runs = plan(FLAGS.env, FLAGS.algos, FLAGS.seeds, FLAGS.ablations, outdir, FLAGS.iterations,
                    FLAGS.run_flags, FLAGS.wandb_mode)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    todo = []
    for label, seed, run_dir, cmd in runs:
        target = target_iterations(run_dir, FLAGS.iterations)
        done = progress_rows(run_dir)
        if target is not None and done >= target:
            print(f"  {label} seed {seed}: complete ({done} iterations), skipped")
            continue
        if os.path.exists(os.path.join(run_dir, "config.json")):
            cmd = cmd + ["--resume"]
        todo.append((label, seed, run_dir, cmd))
    if FLAGS.dry_run:
        for _, _, _, cmd in todo:
            print(" ".join(shlex.quote(c) for c in cmd))
        return 0

    os.makedirs(outdir, exist_ok=True)
    print(f"{len(todo)} of {len(runs)} runs to do, {FLAGS.workers} at a time; output in {outdir}/", flush=True)
    failed = []
    running: list[tuple[subprocess.Popen, str, int, str, float]] = []
    queue = list(todo)
    start = time.perf_counter()
    try:
        while queue or running:
            while queue and len(running) < FLAGS.workers:
                label, seed, run_dir, cmd = queue.pop(0)
                os.makedirs(run_dir, exist_ok=True)
                log = open(run_dir.rstrip("/") + ".log", "a")
                env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
                proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
                log.close()
                running.append((proc, label, seed, run_dir, time.perf_counter()))
                print(f"  started {label} seed {seed}{' (resuming)' if '--resume' in cmd else ''}", flush=True)
            time.sleep(1.0)
            for item in list(running):
                proc, label, seed, run_dir, t0 = item
                if proc.poll() is None:
                    continue
                running.remove(item)
                minutes = (time.perf_counter() - t0) / 60
                if proc.returncode == 0:
                    print(f"  finished {label} seed {seed} in {minutes:.1f} min "
                          f"({len(todo) - len(queue) - len(running)}/{len(todo)} done, "
                          f"{(time.perf_counter() - start) / 60:.1f} min elapsed)", flush=True)
                else:
                    failed.append((label, seed))
                    print(f"  FAILED {label} seed {seed} (exit {proc.returncode}); see {run_dir.rstrip('/')}.log",
                          flush=True)
    except KeyboardInterrupt:
        for proc, *_ in running:
            proc.send_signal(signal.SIGINT)  # each run checkpoints and exits
        for proc, *_ in running:
            proc.wait()
        print("interrupted: the runs saved their checkpoints; repeat the same command to resume", file=sys.stderr)
        return 130

    from mame_tf.results import aggregate

    groups: dict[str, list[str]] = {}
    for label, seed, run_dir, _ in runs:
        if (label, seed) not in failed and progress_rows(run_dir) > 0:
            groups.setdefault(label, []).append(run_dir)
    if groups:
        out = os.path.join(outdir, "summary")
        finals = aggregate(groups, out, final_window=FLAGS.final_window,
                           title=f"{FLAGS.env}{' ablations' if FLAGS.ablations else ''}")
        print(f"wrote {out}_curves.csv, {out}_final.csv, {out}.png; last {FLAGS.final_window} iterations:")
        for label, items in finals.items():
            cells = "   ".join(f"{name}: " + " / ".join(f"{v:.2f}" for v in values.values()) for name, values in items)
            print(f"  {label:24s} {cells}")
        print("  (columns: " + ", ".join(next(iter(finals.values()))[0][1]) + ")")
    if failed:
        print(f"error: {len(failed)} run(s) failed: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    app.run(main)
