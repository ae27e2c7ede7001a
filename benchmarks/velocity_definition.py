"""How much the velocity definition matters: the same random-action episodes scored with this
project's velocity (root x displacement over dt, as ProMP and pytorch-maml-rl) and with the torso
subtree's centre-of-mass velocity after the step (Finn et al.'s rllab envs).

    python benchmarks/velocity_definition.py

Prints, per cheetah family, the mean return and the mean and max absolute difference of the two
returns over 20 episodes (seeded; uniform actions clipped from N(0, 1)).
"""
import numpy as np, mujoco, gymnasium as gym
from mame_tf.envs.tasks import VelocityTask, DirectionTask
from mame_tf.registry import FAMILIES  # importing mame_tf registers the environments
rng = np.random.default_rng(0)
for fam in ("cheetah_vel", "cheetah_dir"):
    env = gym.make(FAMILIES[fam].gym_id).unwrapped
    torso = env.model.body("torso").id
    diffs, ours_all = [], []
    for ep in range(20):
        task = VelocityTask(float(rng.uniform(0, 2))) if fam == "cheetah_vel" else DirectionTask(int(rng.choice([-1, 1])))
        env.set_task(task); env.reset(seed=ep)
        ours = finn = 0.0
        for t in range(FAMILIES[fam].horizon):
            a = np.clip(rng.normal(size=6), -1, 1)
            _, r, _, _, info = env.step(a)
            mujoco.mj_subtreeVel(env.model, env.data)
            v = env.data.subtree_linvel[torso][0]
            ctrl = 0.05 * np.sum(a ** 2)
            rf = (-abs(v - task.velocity) if fam == "cheetah_vel" else task.direction * v) - ctrl
            ours += r; finn += rf
        diffs.append(abs(ours - finn)); ours_all.append(ours)
    print(f"{fam}: mean return (ours) {np.mean(ours_all):.1f}; mean |ours - COM-velocity| {np.mean(diffs):.2f} (max {np.max(diffs):.2f}) over 20 random-action episodes")
