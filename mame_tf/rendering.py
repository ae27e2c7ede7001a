"""Rendering: an OpenGL back-end for MuJoCo on machines without a screen, point-task frames, captions.

``configure_offscreen_gl()`` runs when ``mame_tf`` is imported: on Linux without a display (no
``DISPLAY``/``WAYLAND_DISPLAY``) and with ``MUJOCO_GL`` unset, it sets ``MUJOCO_GL=egl`` when the EGL
library is present (Mesa's software EGL needs no GPU: Debian's ``libegl1`` and ``libgl1-mesa-dri``),
else ``osmesa`` when libOSMesa is. A ``MUJOCO_GL`` set by the user is never changed. gymnasium reads the
variable when an env first renders, so ``gym.make(..., render_mode="rgb_array").render()`` then works
on a headless machine without setting anything by hand.

A process that has loaded TensorFlow cannot create Mesa's software OpenGL context (the two bring
clashing copies of LLVM; the process crashes), so ``render_mujoco_states`` renders recorded simulator
states in a fresh process that never imports TensorFlow: the visualizer steps the policy in its own
process and has the frames drawn there.

``point_frame`` draws the point task as an RGB array (the goal's rewarded region, the four corners,
the start and the path so far); ``caption`` writes a line of text onto a frame.
"""
from __future__ import annotations

import ctypes.util
import multiprocessing
import os
import sys

import numpy as np

POINT_EXTENT = 3.0  # the point frame shows [-3, 3]²


def configure_offscreen_gl(environ=None) -> str | None:
    """Choose ``MUJOCO_GL`` for a machine without a screen; returns the back-end in force (or None)."""
    environ = os.environ if environ is None else environ
    if environ.get("MUJOCO_GL"):
        return environ["MUJOCO_GL"]
    if not sys.platform.startswith("linux") or environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"):
        return None
    for backend, library in (("egl", "EGL"), ("osmesa", "OSMesa")):
        if ctypes.util.find_library(library):
            environ["MUJOCO_GL"] = backend
            if backend == "osmesa":
                environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
            return backend
    return None


def _to_px(xy, size: int) -> tuple[float, float]:
    x, y = float(xy[0]), float(xy[1])
    scale = size / (2 * POINT_EXTENT)
    return (x + POINT_EXTENT) * scale, (POINT_EXTENT - y) * scale


def point_frame(path: np.ndarray, goal: np.ndarray, size: int = 256) -> np.ndarray:
    """The point task as an ``[size, size, 3]`` uint8 image.

    ``path`` ``[T, 2]``: the positions so far (first = start, drawn as a black ring; last = the point);
    ``goal`` ``[2]``: the task's corner (red; its rewarded region shaded green).
    """
    from PIL import Image, ImageDraw

    from mame_tf.envs.point_corner import CENTRE_RADIUS_L1
    from mame_tf.envs.tasks import CORNERS

    img = Image.new("RGB", (size, size), (250, 250, 250))
    draw = ImageDraw.Draw(img)
    # the rewarded region: the goal's quadrant outside the centre diamond
    gx, gy = np.sign(goal[0]), np.sign(goal[1])
    quad = [(0, 0), (gx * POINT_EXTENT, 0), (gx * POINT_EXTENT, gy * POINT_EXTENT), (0, gy * POINT_EXTENT)]
    draw.polygon([_to_px(p, size) for p in quad], fill=(214, 239, 214))
    r = CENTRE_RADIUS_L1
    draw.polygon([_to_px(p, size) for p in ((r, 0), (0, r), (-r, 0), (0, -r))], fill=(228, 228, 228))
    draw.line([_to_px((-POINT_EXTENT, 0), size), _to_px((POINT_EXTENT, 0), size)], fill=(200, 200, 200))
    draw.line([_to_px((0, -POINT_EXTENT), size), _to_px((0, POINT_EXTENT), size)], fill=(200, 200, 200))
    half = max(3, size // 64)
    for corner in CORNERS:
        cx, cy = _to_px(corner, size)
        is_goal = np.allclose(corner, goal)
        draw.rectangle([cx - half, cy - half, cx + half, cy + half],
                       fill=(214, 39, 40) if is_goal else None, outline=(214, 39, 40) if is_goal else (120, 120, 120))
    path = np.asarray(path, dtype=np.float64).reshape(-1, 2)
    if len(path) > 1:
        draw.line([_to_px(p, size) for p in path], fill=(31, 119, 180), width=max(1, size // 200))
    if len(path):
        sx, sy = _to_px(path[0], size)
        draw.ellipse([sx - half, sy - half, sx + half, sy + half], outline=(0, 0, 0), width=1)
        px, py = _to_px(path[-1], size)
        draw.ellipse([px - half + 1, py - half + 1, px + half - 1, py + half - 1], fill=(31, 119, 180))
    return np.asarray(img, dtype=np.uint8)


def caption(frame: np.ndarray, text: str) -> np.ndarray:
    """A copy of ``frame`` with ``text`` written in its top-left corner on a light band."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(np.ascontiguousarray(frame))
    draw = ImageDraw.Draw(img)
    box = draw.textbbox((4, 3), text)
    draw.rectangle([0, 0, box[2] + 4, box[3] + 3], fill=(255, 255, 255))
    draw.text((4, 3), text, fill=(0, 0, 0))
    return np.asarray(img, dtype=np.uint8)


def render_mujoco_states(env: str, task, qpos: np.ndarray, qvel: np.ndarray, width: int, height: int) -> np.ndarray:
    """``[N, height, width, 3]`` frames of the states ``qpos [N, nq]``, ``qvel [N, nv]`` of ``env``'s model
    (a MuJoCo family's short name or id) on ``task``, drawn by its tracking camera in a fresh process."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_render_states, (env, task, np.asarray(qpos), np.asarray(qvel), width, height))


def _render_states(env, task, qpos, qvel, width, height):
    from mame_tf import envs

    sim = envs.make(env, render_mode="rgb_array", width=width, height=height)
    try:
        sim.unwrapped.set_task(task)
        sim.reset(seed=0)
        frames = []
        for q, v in zip(qpos, qvel):
            sim.unwrapped.set_state(q, v)
            frames.append(sim.render())
        return np.stack(frames)
    finally:
        sim.close()
