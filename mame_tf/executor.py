"""Run an experiment's runs on Ray: an embedded local instance by default, or an existing cluster.

Why Ray core tasks rather than Ray Tune: each run already is a complete, resumable program (the
launcher, with its own run directory, checkpoints and exact resume), and the experiment needs no
search algorithm or scheduler; Tune would add a second notion of trial directory, checkpoint and
restore on top of the run's own. One task per run is all that is needed:

* the task (:func:`run_task`, executed by a Ray worker on any node) starts
  ``launchers/run_<algo>.py`` as a child process (in its own session, so a terminal's Ctrl-C never
  reaches it directly; killed with the worker if the worker dies), with ``--resume`` whenever the
  run directory already holds the run, and waits for it;
* the task asks for ``--cpus_per_run`` CPUs, so Ray runs as many at a time as the nodes hold;
* **fault tolerance**: if the worker process or its node dies, Ray retries the task (at most
  ``max_retries`` times); if the child is killed (OOM killer, a signal), the task raises
  :class:`RunLost`, which Ray retries too. Either way the retry resumes from the last checkpoint.
  A run that fails by itself (a bad setting, a NaN) is not retried;
* **stopping**: on Ctrl-C or SIGTERM the driver writes ``<outdir>/.experiment/stop.json`` (its
  session id), which every task polls; the task sends SIGINT once to its run, which finishes its
  iteration, saves a checkpoint and exits, and the driver waits for all of them before it exits.
  Tasks still queued in Ray are cancelled (``ray.cancel``). A file rather than ``ray.cancel`` for
  the running ones, because the KeyboardInterrupt ``ray.cancel`` raises inside a task was observed
  not to arrive at all on a heavily loaded machine;
* **durable results**: every run writes straight into ``<outdir>``, which must be on a filesystem
  every node mounts at the same path (on one machine it trivially is). The driver writes
  ``<outdir>/.experiment/experiment.json`` with its session id before submitting anything; a task
  that cannot see it refuses to start, naming the node, instead of writing results nobody collects;
* **progress**: each task writes ``<outdir>/.experiment/<run>.json`` (node, attempt, process ids);
  the driver reads those and the runs' ``progress.csv`` to show each run's iteration, latest
  return and ETA, and the whole experiment's ETA.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from typing import Sequence, TextIO

from mame_tf.checkpoint import atomic_write_text
from mame_tf.experiment import BOOKKEEPING, RunSpec, launcher_argv, saved_checkpoint_iteration
from mame_tf.results import progress_rows

RETURN = "post_adapt/return"
STOP = "stop.json"  # in <outdir>/.experiment: written by the driver to stop every run of its session


class RunLost(RuntimeError):
    """The run's process was killed from outside; the task is retried and the run resumes."""


class NotShared(RuntimeError):
    """The output directory is not visible on the node that got the task."""


def _read_json(path: str) -> dict | None:
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def _write_json(path: str, data: dict) -> None:
    atomic_write_text(path, json.dumps(data))


def _alive(pid: int, run_dir: str) -> bool:
    """Whether process ``pid`` on this node is still the run of ``run_dir``."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read().decode(errors="replace")
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z" and run_dir in cmdline


def _child_setup() -> None:
    """Runs in the run's process between fork and exec: default signal handling, death with the worker.

    Ray workers block SIGINT, and a blocked signal stays blocked across exec: without this the run
    could not be stopped cleanly.
    """
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _describe(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit status {returncode}"


def _project_root(spec: RunSpec, session: str, repo_root: str, node: str) -> str:
    """The project directory holding the run's launcher on this node; NotShared if this node does not
    see the experiment's output directory (its ``experiment.json`` of this session) or the launcher."""
    marker = _read_json(os.path.join(os.path.dirname(spec.run_dir), BOOKKEEPING, "experiment.json"))
    if not marker or marker.get("session") != session:
        raise NotShared(f"{spec.name}: the output directory {os.path.dirname(spec.run_dir)} is not visible on "
                        f"node {node}; put it on a filesystem every node mounts at the same path")
    roots = [repo_root, os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
    root = next((r for r in roots if os.path.exists(os.path.join(r, "launchers", f"run_{spec.algo}.py"))), None)
    if root is None:
        raise NotShared(f"{spec.name}: launchers/run_{spec.algo}.py is not on node {node} (looked in "
                        f"{', '.join(roots)}); install the project at the same path on every node")
    return root


def _next_attempt(status_path: str, session: str, node: str, run_dir: str) -> int:
    """The number of this attempt in the session; waits (up to 2 minutes) until the run's process of an
    earlier attempt on this node is gone, so that two never write one run directory."""
    previous = _read_json(status_path) or {}
    attempt = previous.get("attempt", 0) + 1 if previous.get("session") == session else 1
    if previous.get("node") == node and previous.get("child"):
        deadline = time.monotonic() + 120  # a killed attempt's run must be gone before this one starts
        while _alive(previous["child"], run_dir) and time.monotonic() < deadline:
            time.sleep(0.2)
    return attempt


def run_task(spec: RunSpec, session: str, repo_root: str) -> dict:
    """The body of one run's Ray task (see the module docstring). Returns ``{"status", "returncode"}``."""
    node = socket.gethostname()
    book = os.path.join(os.path.dirname(spec.run_dir), BOOKKEEPING)
    root = _project_root(spec, session, repo_root, node)
    status_path = os.path.join(book, spec.name + ".json")
    attempt = _next_attempt(status_path, session, node, spec.run_dir)
    os.makedirs(spec.run_dir, exist_ok=True)
    argv = launcher_argv(spec, root)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    stop_path = os.path.join(book, STOP)

    def stop_requested() -> bool:
        return (_read_json(stop_path) or {}).get("session") == session

    if stop_requested():
        return {"status": "not started", "returncode": None}
    stopping = False
    proc = None
    try:
        with open(spec.log_path, "a") as log:
            log.write(f"\n== {time.strftime('%Y-%m-%d %H:%M:%S')} attempt {attempt} on {node}: "
                      f"{' '.join(argv)}\n")
            log.flush()
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env, start_new_session=True, preexec_fn=_child_setup)
        _write_json(status_path, {"session": session, "attempt": attempt, "node": node, "worker": os.getpid(),
                                  "child": proc.pid, "started": time.time()})
        while proc.poll() is None:
            try:
                if not stopping and stop_requested():
                    stopping = True  # one SIGINT: the run finishes its iteration, saves and exits
                    proc.send_signal(signal.SIGINT)
                time.sleep(0.5)
            except KeyboardInterrupt:  # ray.cancel: the same, once
                if not stopping and proc.poll() is None:
                    stopping = True
                    proc.send_signal(signal.SIGINT)
    except KeyboardInterrupt:  # interrupted before the run's process was watched
        stopping = True
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait()
    rc = proc.returncode if proc is not None else None
    if stopping:
        return {"status": "stopped" if proc is not None else "not started", "returncode": rc}
    if rc == 0:
        return {"status": "done", "returncode": 0}
    if rc < 0 or rc in (128 + signal.SIGINT, 128 + signal.SIGTERM):
        raise RunLost(f"{spec.name}: its process on {node} ended with {_describe(rc)}")
    return {"status": "failed", "returncode": rc}


def _fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Board:
    """What the driver knows of each run, rendered as a progress block."""

    def __init__(self, specs: Sequence[RunSpec], states: dict[str, str], session: str, stream: TextIO,
                 status_every: float):
        self.specs = list(specs)
        self.state = {s.name: {"done": "kept", "new": "queued", "resume": "queued"}[states[s.name]] for s in specs}
        self.session = session
        self.stream = stream
        self.tty = stream.isatty()
        self.status_every = status_every
        self.attempt: dict[str, int] = {}
        self.node: dict[str, str] = {}
        self.info: dict[str, tuple[int, float | None, float | None]] = {}
        self._lines = 0
        self._last_block = time.monotonic()

    def event(self, text: str) -> None:
        self._clear()
        print(f"  {text}", file=self.stream, flush=True)
        self._lines = 0

    def _clear(self) -> None:
        if self.tty and self._lines:
            self.stream.write(f"\x1b[{self._lines}F\x1b[J")

    def poll(self, book: str) -> None:
        """Read the tasks' status files and the runs' progress; announce starts and retries."""
        for spec in self.specs:
            if self.state[spec.name] not in ("queued", "running"):
                continue
            status = _read_json(os.path.join(book, spec.name + ".json"))
            if status and status.get("session") == self.session:
                attempt = int(status["attempt"])
                if self.attempt.get(spec.name) != attempt:
                    self.attempt[spec.name] = attempt
                    self.node[spec.name] = status["node"]
                    self.state[spec.name] = "running"
                    resumed = saved_checkpoint_iteration(spec.run_dir)
                    how = f" (resuming at iteration {resumed})" if resumed else ""
                    if attempt == 1:
                        self.event(f"started {spec.label} seed {spec.seed} on {status['node']}{how}")
                    else:
                        self.event(f"retrying {spec.label} seed {spec.seed}: attempt {attempt} on "
                                   f"{status['node']}{how}")
            if self.state[spec.name] == "running":
                self.info[spec.name] = self._progress(spec)

    @staticmethod
    def _progress(spec: RunSpec) -> tuple[int, float | None, float | None]:
        rows = progress_rows(spec.run_dir)
        if not rows:
            return 0, None, None
        last = rows[-1].get(RETURN)
        times = [float(r["time/iteration"]) for r in rows[-10:] if r.get("time/iteration")]
        return len(rows), float(last) if last else None, sum(times) / len(times) if times else None

    def eta(self) -> float | None:
        """Seconds until every run is finished, from the running runs' recent seconds per iteration."""
        rates: dict[str, list[float]] = {}
        for spec in self.specs:
            rate = self.info.get(spec.name, (0, None, None))[2]
            if rate:
                rates.setdefault(spec.algo, []).append(rate)
        everyone = [r for v in rates.values() for r in v]
        left, longest, active = 0.0, 0.0, 0
        for spec in self.specs:
            if self.state[spec.name] not in ("queued", "running"):
                continue
            active += 1
            rows, _, rate = self.info.get(spec.name, (0, None, None))
            rate = rate or (sum(rates[spec.algo]) / len(rates[spec.algo]) if spec.algo in rates else None) \
                or (sum(everyone) / len(everyone) if everyone else None)
            if rate is None:
                return None
            seconds = (spec.iterations - rows) * rate
            left += seconds
            longest = max(longest, seconds)
        if not active:
            return 0.0
        slots = max(1, sum(1 for s in self.state.values() if s == "running"))
        return max(left / slots, longest)

    def render(self, force: bool = False) -> None:
        if not self.tty and not force and time.monotonic() - self._last_block < self.status_every:
            return
        self._last_block = time.monotonic()
        counts = {}
        for s in self.state.values():
            counts[s] = counts.get(s, 0) + 1
        head = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        lines = [f"[{time.strftime('%H:%M:%S')}] {len(self.specs)} runs: {head}; experiment ETA {_fmt_time(self.eta())}"]
        width = max(len(f"{s.label} s{s.seed}") for s in self.specs)
        for spec in self.specs:
            if self.state[spec.name] != "running":
                continue
            rows, ret, rate = self.info.get(spec.name, (0, None, None))
            where = f"{self.node.get(spec.name, '?')}" + (f", attempt {self.attempt[spec.name]}"
                                                           if self.attempt.get(spec.name, 1) > 1 else "")
            lines.append(f"    {spec.label + ' s' + str(spec.seed):{width}s}  iteration {rows:>4d}/{spec.iterations:<4d} "
                         f"return {'?' if ret is None else f'{ret:7.3f}'}  "
                         f"{'?' if rate is None else f'{rate:.2f}'} s/it  "
                         f"ETA {_fmt_time(None if rate is None else (spec.iterations - rows) * rate)}  ({where})")
        self._clear()
        self.stream.write("\n".join(lines) + "\n")
        self.stream.flush()
        self._lines = len(lines) if self.tty else 0


class StopRequest:
    """SIGINT/SIGTERM handlers that only record the first signal (the runs are stopped by the driver)."""

    def __init__(self):
        self.signum: int | None = None
        self._previous = {}

    def _handler(self, signum, frame):
        if self.signum is None:
            self.signum = signum
            message = (f"\n{signal.Signals(signum).name}: stopping; every run finishes its iteration, saves a "
                       f"checkpoint and exits. Repeat the command to continue.\n")
        else:
            message = "\nalready stopping: waiting for the runs to save their checkpoints\n"
        try:
            os.write(2, message.encode())
        except OSError:
            pass

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def _init_ray(address: str, num_cpus: int, temp_dir: str, repo_root: str):
    import logging

    import ray

    path = os.pathsep.join(p for p in (repo_root, os.environ.get("PYTHONPATH", "")) if p)
    kwargs = dict(runtime_env={"env_vars": {"PYTHONPATH": path}}, logging_level=logging.WARNING,
                  log_to_driver=False)
    if address:
        ray.init(address=address, **kwargs)
    else:  # an embedded instance on this machine, reachable from it only, gone when the driver exits
        # Ray starts its workers 15 niceness steps below itself; the runs keep the driver's priority
        # instead (so `nice` on the command line sets theirs, and other work does not starve them)
        os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(num_cpus=num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
                 object_store_memory=100 * 2**20, _temp_dir=temp_dir or None, **kwargs)
    return ray


STOP_GRACE_SECONDS = 600  # how long a driver that failed waits for its runs to save and stop


def execute(todo: Sequence[RunSpec], board: Board, outdir: str, *, address: str = "", num_cpus: int = 0,
            cpus_per_run: float = 1, max_retries: int = 3, workers: int = 0, temp_dir: str = "",
            repo_root: str = "") -> tuple[dict[str, str], int | None]:
    """Run ``todo`` on Ray; returns ``({run name: outcome}, signal that stopped the experiment or None)``.

    Outcomes: ``done``, ``stopped``, ``not started`` or ``failed: <why>``.
    """
    repo_root = repo_root or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    book = os.path.join(outdir, BOOKKEEPING)
    os.makedirs(book, exist_ok=True)
    session = f"{time.strftime('%Y%m%d-%H%M%S')}-{socket.gethostname()}-{os.getpid()}"
    board.session = session
    _write_json(os.path.join(book, "experiment.json"), {"session": session, "runs": [s.name for s in board.specs]})
    outcomes: dict[str, str] = {}
    pending: dict = {}
    ray = _init_ray(address, num_cpus or os.cpu_count() or 1, temp_dir, repo_root)
    try:
        largest = max((n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")), default=0)
        if largest < cpus_per_run:
            if not address:
                raise ValueError(f"--cpus_per_run={cpus_per_run:g} is more than the {largest:g} CPUs of the "
                                 f"local Ray instance (--num_cpus)")
            board.event(f"no node has {cpus_per_run:g} CPUs yet; the runs wait for the cluster to provide one")
        task = ray.remote(run_task).options(num_cpus=cpus_per_run, max_retries=max_retries,
                                            retry_exceptions=[RunLost], name="mame-tf-run")
        queue = list(todo)
        with StopRequest() as stop:
            cancelled = False
            while queue or pending:
                while queue and not cancelled and (not workers or len(pending) < workers):
                    spec = queue.pop(0)
                    pending[task.remote(spec, session, repo_root)] = spec
                ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=1.0)
                board.poll(book)
                for ref in ready:
                    spec = pending.pop(ref)
                    outcomes[spec.name] = _outcome(ray, ref, spec)
                    board.state[spec.name] = outcomes[spec.name].split(":")[0]
                    board.info.pop(spec.name, None)
                    _announce(board, spec, outcomes[spec.name])
                if stop.signum is not None and not cancelled:
                    cancelled = True
                    _write_json(os.path.join(book, STOP), {"session": session})  # the running runs stop
                    for spec in queue:
                        outcomes[spec.name] = "not started"
                        board.state[spec.name] = "not started"
                    queue.clear()
                    for ref, spec in pending.items():
                        if board.state[spec.name] != "running":  # queued in Ray: it must not start
                            ray.cancel(ref, recursive=False)
                board.render()
            board.render(force=True)
            return outcomes, stop.signum
    finally:
        if pending:  # left by an error of the driver itself: each run gets its one stop request and is
            # waited for before Ray goes, since its worker's end would kill the run without a checkpoint
            _write_json(os.path.join(book, STOP), {"session": session})
            ray.wait(list(pending), num_returns=len(pending), timeout=STOP_GRACE_SECONDS)
        ray.shutdown()
        _stop_leftovers(board, book, session)


def _outcome(ray, ref, spec: RunSpec) -> str:
    from ray import exceptions as rex

    try:
        result = ray.get(ref)
    except rex.TaskCancelledError:
        return "stopped" if progress_rows(spec.run_dir) else "not started"
    except rex.RayTaskError as err:
        cause = err.cause if getattr(err, "cause", None) is not None else err
        return f"failed: {str(cause).strip().splitlines()[-1] if str(cause).strip() else type(cause).__name__}"
    except rex.RayError as err:  # the worker or node died more often than max_retries
        return f"failed: {type(err).__name__} ({str(err).strip().splitlines()[0] if str(err).strip() else ''})"
    if result["status"] == "failed":
        return f"failed: {_describe(result['returncode'])}; see {spec.log_path}"
    return result["status"]


def _announce(board: Board, spec: RunSpec, outcome: str) -> None:
    rows = len(progress_rows(spec.run_dir))
    if outcome == "done":
        board.event(f"finished {spec.label} seed {spec.seed} ({rows} iterations)")
    elif outcome == "stopped":
        board.event(f"stopped {spec.label} seed {spec.seed} at iteration {rows}, checkpoint at "
                    f"{saved_checkpoint_iteration(spec.run_dir)}")
    elif outcome.startswith("failed"):
        board.event(f"FAILED {spec.label} seed {spec.seed}: {outcome[len('failed: '):]}")


def _stop_leftovers(board: Board, book: str, session: str) -> None:
    """Safety net on this node: a run whose task ended without waiting for it gets one SIGINT, and is waited for."""
    node = socket.gethostname()
    alive = []
    for spec in board.specs:
        status = _read_json(os.path.join(book, spec.name + ".json"))
        if status and status.get("session") == session and status.get("node") == node \
                and _alive(status["child"], spec.run_dir):
            alive.append((status["child"], spec))
            os.kill(status["child"], signal.SIGINT)
    for pid, spec in alive:
        while _alive(pid, spec.run_dir):
            time.sleep(0.2)
        board.event(f"{spec.label} seed {spec.seed}: its run outlived its task; stopped it (checkpoint at "
                    f"{saved_checkpoint_iteration(spec.run_dir)})")
