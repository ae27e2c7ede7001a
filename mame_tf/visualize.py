"""What a trained agent does: trajectory pictures on the point task, videos on the MuJoCo families.

Used by ``launchers/visualize.py``. For a run directory and some of its checkpoints, the agent goes
through the same exploration → adaptation → exploitation path as in training
(``mame_tf.trainer.adapt_and_sample``) on fixed tasks:

* point tasks: for each checkpoint, ``visualize/trajectories_iter<N>.png`` — per goal corner, the
  exploration episodes (MAME's μ_φ; the pre-update policy π_θ of the MAML baselines) and the episodes
  after adaptation (π_{θ,z′}; π_θ′), with the start, the goal corner and its rewarded region marked —
  and, over all the checkpoints, ``visualize/sequence.png`` (one row per checkpoint);
* MuJoCo families: ``visualize/adapted_iter<N>.gif`` — one episode of the adapted policy on each task,
  rendered offscreen, with the task's target, the step and the return so far written on the frames —
  and ``visualize/adapted_iter<N>_strip.png``, a few frames of each task side by side.

Checkpoints are read, never written or removed.
"""
from __future__ import annotations

import dataclasses
import os
import re

import numpy as np

# The tasks shown when --tasks is not given, by the family's task type.
DEFAULT_TASKS = {"GoalTask": "0,1,2,3", "DirectionTask": "1,-1", "VelocityTask": "0.5,1.5"}
PRE_NAMES = {"mame": ("exploration episodes (μ_φ)", "after adaptation (π_θ,z′)")}
BASELINE_NAMES = ("pre-update episodes (π_θ)", "post-update episodes (π_θ′)")


@dataclasses.dataclass
class LoadedRun:
    logdir: str
    algorithm: str
    train: object
    algo_cfg: object
    checkpoints: dict[int, str]  # iteration -> checkpoint directory, complete ones only

    @property
    def family(self) -> str:
        from mame_tf.registry import find_family

        family = find_family(self.train.env)
        return family.name if family is not None else self.train.env

    @property
    def is_point(self) -> bool:
        """Whether the run is on a point family (pictures) rather than MuJoCo (videos)."""
        from mame_tf.registry import find_family

        family = find_family(self.train.env)
        return family is not None and family.kind == "point"

    @property
    def default_tasks(self) -> str:
        """The ``--tasks`` shown when none are given ("" for a family without a visualisation)."""
        return DEFAULT_TASKS.get(getattr(_task_class(self.family), "__name__", ""), "")


def load_run(logdir: str) -> LoadedRun:
    """The run's configuration and its complete checkpoints (ValueError naming what is missing)."""
    from mame_tf.api import read_config

    if not os.path.exists(os.path.join(logdir, "config.json")):
        raise ValueError(f"--logdir={logdir!r} has no config.json; give a run directory written by a launcher")
    cls, train, algo_cfg = read_config(logdir)
    ckdir = os.path.join(logdir, "checkpoints")
    found = {}
    if os.path.isdir(ckdir):
        for name in os.listdir(ckdir):
            m = re.fullmatch(r"ckpt-(\d+)", name)
            if m and os.path.exists(os.path.join(ckdir, name, "state.json")):
                found[int(m.group(1))] = os.path.join(ckdir, name)
    if not found:
        raise ValueError(f"--logdir={logdir!r} has no complete checkpoint in {ckdir}")
    return LoadedRun(logdir, cls.name, train, algo_cfg, dict(sorted(found.items())))


def select_checkpoints(run: LoadedRun, spec: str | int) -> list[int]:
    """``last``, ``all``, a count (``5``: that many spread evenly, the last included) or iterations
    (``10,150,300``). A single number that names one of the run's checkpoints is that checkpoint; an
    ``int`` is always a count."""
    have = list(run.checkpoints)
    if isinstance(spec, int):
        spec, count_only = str(spec), True
    else:
        count_only = False
    if spec == "last":
        return have[-1:]
    if spec == "all":
        return have
    if spec.isdigit() and (count_only or int(spec) not in run.checkpoints):
        n = int(spec)
        if n < 1:
            raise ValueError(f"--checkpoints={spec!r} is invalid: a count must be positive")
        idx = np.unique(np.round(np.linspace(0, len(have) - 1, min(n, len(have)))).astype(int))
        return [have[i] for i in idx]
    try:
        wanted = [int(s) for s in spec.split(",")]
    except ValueError:
        wanted = None
    if not wanted:
        raise ValueError(f"--checkpoints={spec!r} is invalid; give last, all, a count, or iterations such as 10,300")
    missing = [w for w in wanted if w not in run.checkpoints]
    if missing:
        raise ValueError(f"--checkpoints: no complete checkpoint of iteration {', '.join(map(str, missing))}; "
                         f"the run has {', '.join(map(str, have))}")
    return wanted


def _task_class(family: str) -> type | None:
    """The task type of a registered family, or None."""
    from mame_tf.registry import find_family, resolve

    spec = find_family(family)
    return None if spec is None else resolve(spec.env_class).task_class


def make_tasks(family: str, spec: str) -> list:
    """Tasks from ``--tasks``: corner indices 0-3 on the point tasks, directions ±1, or target speeds."""
    from mame_tf.envs.tasks import CORNERS, DirectionTask, GoalTask, VelocityTask

    try:
        values = [float(s) for s in spec.split(",") if s.strip()]
    except ValueError:
        values = []
    if not values:
        raise ValueError(f"--tasks={spec!r} is invalid; give comma-separated numbers")
    task_class = _task_class(family)
    if task_class is GoalTask:
        if any(v not in (0, 1, 2, 3) for v in values):
            raise ValueError(f"--tasks={spec!r} is invalid for {family}: corner indices 0, 1, 2, 3 "
                             f"({', '.join(str(tuple(c)) for c in CORNERS)})")
        return [GoalTask(np.array(CORNERS[int(v)], dtype=np.float64)) for v in values]
    if task_class is DirectionTask:
        if any(v not in (1, -1) for v in values):
            raise ValueError(f"--tasks={spec!r} is invalid for {family}: directions 1 (forward) and -1 (backward)")
        return [DirectionTask(float(v)) for v in values]
    if task_class is VelocityTask:
        return [VelocityTask(float(v)) for v in values]
    raise ValueError(f"no visualisation for environment {family!r}")


def task_label(task) -> str:
    if hasattr(task, "goal"):
        return f"goal ({task.goal[0]:+.0f}, {task.goal[1]:+.0f})"
    if hasattr(task, "direction"):
        return "run forward" if task.direction > 0 else "run backward"
    return f"target speed {task.velocity:.2f}"


def build_agent(run: LoadedRun, seed: int, episodes: int):
    """(algorithm, sampler) for the run's settings; the sampler draws ``episodes`` per task."""
    from mame_tf.launch import algorithm_class, build_algorithm, seed_everything
    from mame_tf.sampler import MetaSampler

    seed_everything(seed)
    sampler = MetaSampler(run.train.env, episodes, run.train.horizon, seed=seed)
    algo = build_algorithm(algorithm_class(run.algorithm), run.train, run.algo_cfg, sampler.obs_dim, sampler.act_dim)
    return algo, sampler


def restore(algo, checkpoint_dir: str) -> dict:
    """Read a checkpoint into the algorithm's variables (read-only: nothing in the run changes)."""
    from mame_tf.checkpoint import CheckpointError, read_checkpoint

    variables = algo.checkpoint_items()
    try:
        arrays, state = read_checkpoint(checkpoint_dir, variables)
    except CheckpointError as err:
        raise ValueError(f"checkpoint {checkpoint_dir} cannot be read: {err}") from None
    for name, var in variables.items():
        var.assign(arrays[name])
    return state


# ------------------------------------------------------------------------------------------------
# The point task.
# ------------------------------------------------------------------------------------------------
def _arena(ax, goal, title: str):
    from matplotlib.patches import Polygon, Rectangle

    from mame_tf.envs.point_corner import CENTRE_RADIUS_L1, START_RANGE
    from mame_tf.envs.tasks import CORNERS
    from mame_tf.rendering import POINT_EXTENT

    e = POINT_EXTENT
    if goal is not None:
        gx, gy = np.sign(goal)
        ax.add_patch(Polygon([(0, 0), (gx * e, 0), (gx * e, gy * e), (0, gy * e)], color="#d6efd6", lw=0))
    r = CENTRE_RADIUS_L1
    ax.add_patch(Polygon([(r, 0), (0, r), (-r, 0), (0, -r)], color="#e4e4e4", lw=0))
    ax.add_patch(Rectangle((-START_RANGE, -START_RANGE), 2 * START_RANGE, 2 * START_RANGE, fill=False,
                           ec="black", lw=0.8, ls="--"))
    for c in CORNERS:
        is_goal = goal is not None and np.allclose(c, goal)
        ax.plot(*c, marker="*" if is_goal else "s", ms=13 if is_goal else 6, color="#d62728" if is_goal else "0.55",
                mfc="#d62728" if is_goal else "none", zorder=5)
    ax.set_xlim(-e, e)
    ax.set_ylim(-e, e)
    ax.set_aspect("equal")
    ax.set_xticks([-2, 0, 2])
    ax.set_yticks([-2, 0, 2])
    ax.tick_params(labelsize=7)
    ax.set_title(title, fontsize=8.5)


def _paths(ax, positions: np.ndarray, starts: np.ndarray, colour: str, n: int):
    """``positions [E, H, 2]`` after each step, ``starts [E, 2]``: up to ``n`` episodes."""
    for e in range(min(n, len(positions))):
        path = np.concatenate([starts[e][None], positions[e]], axis=0)
        ax.plot(path[:, 0], path[:, 1], color=colour, lw=0.9, alpha=0.75)
        ax.plot(*path[-1], "o", color=colour, ms=3)
        ax.plot(*path[0], "o", mfc="white", mec="black", ms=3.5, mew=0.7, zorder=6)


def rollout(algo, sampler, tasks, inner_steps: int):
    from mame_tf.trainer import adapt_and_sample

    pre_batches, post_batch, _ = adapt_and_sample(algo, sampler, tasks, inner_steps)
    return (pre_batches[0] if pre_batches else None), post_batch


def point_pictures(run: LoadedRun, iterations: list[int], tasks: list, episodes: int, seed: int,
                   outdir: str) -> list[str]:
    """The trajectory picture of every checkpoint and, for several, the sequence picture."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mame_tf.plotting import STYLES, display_name

    algo, sampler = build_agent(run, seed, max(episodes, run.train.episodes_per_task))
    names = PRE_NAMES.get(run.algorithm, BASELINE_NAMES)
    colour = STYLES.get(run.algorithm, ("", "#d62728"))[1]
    written, rows = [], []
    fresh = sampler.get_state()
    for it in iterations:
        sampler.set_state(fresh)  # each checkpoint's episodes do not depend on which others are drawn
        state = restore(algo, run.checkpoints[it])
        pre_batch, post_batch = rollout(algo, sampler, tasks, run.train.inner_steps)
        steps = state.get("env_steps")
        rows.append((it, steps, pre_batch, post_batch))
        fig, axes = plt.subplots(2, len(tasks), figsize=(max(2.7 * len(tasks), 5.4), 7.2), squeeze=False)
        for j, task in enumerate(tasks):
            for row, batch, col in ((0, pre_batch, "#555555"), (1, post_batch, colour)):
                ret = batch.episode_returns()[j].mean()
                dist = float(batch.infos["goal_distance"][j, :, -1].mean())
                _arena(axes[row, j], task.goal, f"{task_label(task)}\n{names[row]}\nreturn {ret:.2f}, "
                       f"final distance {dist:.2f}")
                _paths(axes[row, j], batch.infos["position"][j], batch.obs[j, :, 0], col, episodes)
        fig.suptitle(f"{display_name(run.algorithm)} on {run.train.env}, iteration {it}"
                     + (f" ({steps:,} environment steps)" if steps else "")
                     + f"\n{min(episodes, pre_batch.episodes_per_task)} episodes per panel; ○ start, ★ goal, "
                       "green: the goal's rewarded region, dashed square: start area", fontsize=9)
        fig.tight_layout(rect=(0, 0, 1, 0.94), h_pad=2.0)
        path = os.path.join(outdir, f"trajectories_iter{it:06d}.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    if len(rows) > 1:
        fig, axes = plt.subplots(len(rows), len(tasks) + 1, figsize=(2.3 * (len(tasks) + 1), 2.45 * len(rows)),
                                 squeeze=False)
        for i, (it, steps, pre, post) in enumerate(rows):
            ax = axes[i, 0]
            _arena(ax, None, f"iteration {it}: {names[0].split(' (')[0]}")
            for j in range(len(tasks)):
                _paths(ax, pre.infos["position"][j], pre.obs[j, :, 0], "#555555", max(1, episodes // len(tasks)))
            for j, task in enumerate(tasks):
                ret = post.episode_returns()[j].mean()
                _arena(axes[i, j + 1], task.goal, f"{task_label(task)}: return {ret:.2f}")
                _paths(axes[i, j + 1], post.infos["position"][j], post.obs[j, :, 0], colour, episodes)
        fig.suptitle(f"{display_name(run.algorithm)} on {run.train.env} over training\n{names[0]} (left, "
                     f"all tasks) and {names[1]} per goal", fontsize=9)
        fig.tight_layout(rect=(0, 0, 1, 0.96))
        path = os.path.join(outdir, "sequence.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    sampler.close()
    return written


# ------------------------------------------------------------------------------------------------
# MuJoCo.
# ------------------------------------------------------------------------------------------------
def mujoco_videos(run: LoadedRun, iterations: list[int], tasks: list, seed: int, outdir: str,
                  width: int = 320, height: int = 240, frame_every: int = 2) -> list[str]:
    """A GIF of the adapted policy on each task (one after the other) and a strip of frames."""
    import imageio

    from mame_tf.plotting import display_name
    from mame_tf.rendering import caption, render_mujoco_states

    algo, sampler = build_agent(run, seed, run.train.episodes_per_task)
    written = []
    fresh = sampler.get_state()
    for it in iterations:
        sampler.set_state(fresh)
        rng = np.random.default_rng(seed)
        restore(algo, run.checkpoints[it])
        adapted, explore_return = None, float("nan")
        for _ in range(algo.num_exploration_batches(run.train.inner_steps)):  # as in training
            batch = sampler.sample(tasks, algo.exploration_policy(adapted))
            explore_return = batch.mean_return()
            adapted = algo.adapt(batch, adapted, run.train.inner_steps)
        states, returns, dt = _record_episodes(run, algo.exploitation_policy(adapted), tasks, rng)
        frames, strips = [], []
        for j, task in enumerate(tasks):
            keep = list(range(0, len(states[j]), frame_every))
            if keep[-1] != len(states[j]) - 1:
                keep.append(len(states[j]) - 1)
            raw = render_mujoco_states(run.train.env, task, np.array([states[j][k][0] for k in keep]),
                                       np.array([states[j][k][1] for k in keep]), width, height)
            shown = [caption(f, f"{display_name(run.algorithm)}, iteration {it}\n{task_label(task)} | step {k} | "
                             f"return {states[j][k][2]:.0f}") for f, k in zip(raw, keep)]
            frames.extend(shown)
            picks = np.linspace(0, len(shown) - 1, 4).astype(int)
            strips.append(np.concatenate([shown[k] for k in picks], axis=1))
        gif = os.path.join(outdir, f"adapted_iter{it:06d}.gif")
        imageio.mimsave(gif, frames, duration=1000 * frame_every * dt, loop=0)
        strip = os.path.join(outdir, f"adapted_iter{it:06d}_strip.png")
        imageio.imwrite(strip, np.concatenate(strips, axis=0))
        written += [gif, strip]
        print(f"  iteration {it}: " + ", ".join(f"{task_label(t)} return {r:.1f}" for t, r in zip(tasks, returns))
              + f" (exploration episodes: mean return {explore_return:.1f})", flush=True)
    sampler.close()
    return written


def _record_episodes(run: LoadedRun, policy, tasks: list, rng: np.random.Generator):
    """One episode of ``policy`` on each task, stepped here in gymnasium envs; the simulator states are
    recorded to be rendered later in a TF-free process. Returns ``(states, returns [tasks], dt)`` with
    ``states[j]`` the ``(qpos, qvel, return so far)`` of task ``j`` after the reset and after each step."""
    from mame_tf import envs

    sims = [envs.make(run.train.env) for _ in tasks]
    obs, states = [], [[] for _ in tasks]
    for sim, task, rec in zip(sims, tasks, states):
        sim.unwrapped.set_task(task)
        obs.append(sim.reset(seed=int(rng.integers(2**31)))[0])
        rec.append((sim.unwrapped.data.qpos.copy(), sim.unwrapped.data.qvel.copy(), 0.0))
    returns = np.zeros(len(tasks))
    alive = np.ones(len(tasks), bool)
    for _ in range(run.train.horizon):
        mean, log_std = policy(np.asarray(obs, np.float32)[:, None, :])
        mean = np.asarray(mean).reshape(len(tasks), -1)
        std = np.exp(np.broadcast_to(np.asarray(log_std).reshape(-1, mean.shape[-1]), mean.shape))
        action = mean + std * rng.standard_normal(mean.shape)
        for j, sim in enumerate(sims):
            if not alive[j]:
                continue
            obs[j], r, terminated, truncated, _ = sim.step(action[j])
            returns[j] += r
            states[j].append((sim.unwrapped.data.qpos.copy(), sim.unwrapped.data.qvel.copy(), returns[j]))
            alive[j] &= not (terminated or truncated)
        if not alive.any():
            break
    dt = _dt(sims[0])
    for sim in sims:
        sim.close()
    return states, returns, dt


def _dt(env) -> float:
    return float(getattr(env.unwrapped, "dt", 0.05))


def log_to_wandb(run: LoadedRun, paths: list[str]) -> bool:
    """Log the pictures and videos to the run's wandb run (same id, resumed); False if wandb is off."""
    if run.train.wandb_mode == "disabled":
        return False
    id_path = os.path.join(run.logdir, "wandb_run_id")
    if not os.path.exists(id_path):
        return False
    import wandb

    with open(id_path) as fh:
        run_id = fh.read().strip()
    wb = wandb.init(project=run.train.wandb_project, id=run_id, resume="allow", mode=run.train.wandb_mode,
                    dir=run.logdir, settings=wandb.Settings(console="off"))
    media = {}
    for p in paths:
        key = "visualize/" + os.path.splitext(os.path.basename(p))[0]
        media[key] = wandb.Video(p, format="gif") if p.endswith(".gif") else wandb.Image(p)
    wb.log(media)
    wb.finish()
    return True
