"""What running a run through ``launchers/compare.py`` (Ray) costs over calling its launcher directly.

    python benchmarks/ray_overhead.py [--repeats=3] [--iterations=5]

For a tiny run (point_corner, 2 tasks x 2 episodes) it measures, ``--repeats`` times each, interleaved:

* the wall-clock seconds of ``launchers/run_mame.py`` and of ``launchers/compare.py`` doing the same
  run on its embedded Ray instance (the difference is Ray's start-up, scheduling and shutdown, plus the
  driver's own validation, which imports TensorFlow);
* the peak resident memory of each command's whole process tree (sampled every 0.1 s);
* Ray alone: seconds of ``ray.init`` as compare.py calls it, of the first trivial task, and the
  resident memory of Ray's processes once idle.

Prints medians. The numbers depend on the machine's load: say so when quoting them.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
RUN = ["--env=point_corner", "--meta_batch_size=2", "--episodes_per_task=2"]


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(ppid, []).append(int(pid))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _rss_mb(pids) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as fh:
                total += int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            pass
    return total / 2**20


def _measure(cmd: list[str], env: dict) -> tuple[float, float]:
    """Wall seconds and peak process-tree memory (MB) of ``cmd``; the run must succeed."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True,
                            start_new_session=True)
    peak = 0.0
    while proc.poll() is None:
        peak = max(peak, _rss_mb(_tree(proc.pid)))
        time.sleep(0.1)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed (exit {proc.returncode}): {proc.stderr.read()[-2000:]}")
    return seconds, peak


def _ray_alone(temp_dir: str) -> tuple[float, float, float]:
    from mame_tf.executor import _init_ray

    t0 = time.perf_counter()
    ray = _init_ray("", 2, temp_dir, ROOT)
    t_init = time.perf_counter() - t0
    t0 = time.perf_counter()
    ray.get(ray.remote(lambda: 1).remote())
    t_task = time.perf_counter() - t0
    time.sleep(2)
    memory = _rss_mb([p for p in _tree(os.getpid()) if p != os.getpid()])
    ray.shutdown()
    return t_init, t_task, memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=5)
    args = parser.parse_args()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    work = tempfile.mkdtemp(prefix="rayoh", dir="/tmp")
    direct, ray_run, alone = [], [], []
    try:
        for k in range(args.repeats):
            direct.append(_measure([sys.executable, os.path.join(ROOT, "launchers", "run_mame.py"), *RUN,
                                    f"--iterations={args.iterations}", f"--logdir={work}/direct{k}",
                                    "--wandb_mode=disabled", "--quiet", "--nthread=1"], env))
            ray_run.append(_measure([sys.executable, os.path.join(ROOT, "launchers", "compare.py"), "--algos=mame",
                                     "--seeds=0", f"--iterations={args.iterations}", f"--outdir={work}/cmp{k}",
                                     f"--run_flags={' '.join(RUN[1:])}", "--env=point_corner", "--num_cpus=2",
                                     f"--ray_temp_dir={work}/r{k}"], env))
            alone.append(_ray_alone(f"{work}/a{k}"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = statistics.median
    print(f"tiny run (point_corner, 2 tasks x 2 episodes, {args.iterations} iterations), median of {args.repeats}:")
    print(f"  launcher directly:      {med(s for s, _ in direct):6.1f} s  peak memory {med(m for _, m in direct):6.0f} MB")
    print(f"  compare.py on Ray:      {med(s for s, _ in ray_run):6.1f} s  peak memory {med(m for _, m in ray_run):6.0f} MB")
    print(f"  overhead:               {med(s for s, _ in ray_run) - med(s for s, _ in direct):6.1f} s  "
          f"{med(m for _, m in ray_run) - med(m for _, m in direct):6.0f} MB")
    print(f"  Ray alone: ray.init {med(a[0] for a in alone):.1f} s, first task {med(a[1] for a in alone):.2f} s, "
          f"idle processes {med(a[2] for a in alone):.0f} MB")
    print(f"  load average during the measurement: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
