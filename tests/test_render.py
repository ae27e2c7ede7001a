"""gymnasium render API: the point task draws itself; the MuJoCo families render offscreen headless."""
import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

import mame_tf  # noqa: F401  (registers the envs)
from mame_tf import rendering
from mame_tf.envs.tasks import GoalTask


@pytest.mark.parametrize("env_id", ["mame_tf/PointCorner-v0", "mame_tf/PointCornerStrict-v0"])
def test_point_env_renders_rgb_array(env_id):
    env = gym.make(env_id, render_mode="rgb_array")
    env.unwrapped.set_task(GoalTask(np.array([2.0, 2.0])))
    env.reset(seed=0)
    first = env.render()
    assert first.shape == (256, 256, 3) and first.dtype == np.uint8
    goal_px = rendering._to_px((2.0, 2.0), 256)
    assert tuple(first[int(goal_px[1]), int(goal_px[0])]) == (214, 39, 40)  # the goal corner is red
    for _ in range(10):
        env.step(np.array([0.2, 0.2]))
    later = env.render()
    assert (later != first).any(axis=-1).sum() > 50  # the path up to the point has been drawn
    env.close()


def test_point_env_rejects_an_unknown_render_mode():
    from mame_tf.envs.point_corner import PointCornerEnv

    with pytest.raises(ValueError, match="render_mode='depth_array' is invalid; valid choices: None, 'rgb_array'"):
        PointCornerEnv(render_mode="depth_array")


def test_offscreen_gl_is_chosen_only_when_headless_and_unset(monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(rendering.ctypes.util, "find_library", lambda name: "lib" + name if name == "EGL" else None)
    env = {}
    assert rendering.configure_offscreen_gl(env) == "egl" and env["MUJOCO_GL"] == "egl"
    env = {"MUJOCO_GL": "glfw"}
    assert rendering.configure_offscreen_gl(env) == "glfw" and env["MUJOCO_GL"] == "glfw"
    env = {"DISPLAY": ":0"}
    assert rendering.configure_offscreen_gl(env) is None and "MUJOCO_GL" not in env
    monkeypatch.setattr(rendering.ctypes.util, "find_library", lambda name: "libOSMesa" if name == "OSMesa" else None)
    env = {}
    assert rendering.configure_offscreen_gl(env) == "osmesa" and env["PYOPENGL_PLATFORM"] == "osmesa"


def test_mujoco_envs_render_offscreen_without_mujoco_gl():
    code = (
        "import gymnasium as gym, numpy as np, mame_tf\n"
        "for i in ('mame_tf/HalfCheetahDir-v0', 'mame_tf/AntDir-v0'):\n"
        "    e = gym.make(i, render_mode='rgb_array', width=96, height=64)\n"
        "    e.reset(seed=0)\n"
        "    f = e.render()\n"
        "    assert f.shape == (64, 96, 3) and f.dtype == np.uint8 and f.std() > 5, (i, f.shape, f.std())\n"
        "    e.close()\n"
        "print('rendered')\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM", "DISPLAY",
                                                            "WAYLAND_DISPLAY")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "rendered" in out.stdout, out.stderr[-3000:]
