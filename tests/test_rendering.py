"""Rendering: frames with the goal drawn, the choice of a headless GL backend, training and the
video refusal without OpenGL, the `python -m envs` demo."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import jax
import numpy as np
from conftest import make_env, rollout

import envs


def test_render_returns_frames_with_the_goal_drawn():
    env = make_env("simple_u_maze")
    first, _ = rollout("simple_u_maze")
    pipeline_state = jax.tree.map(lambda x: x[0], first.pipeline_state)
    goal = np.asarray(first.info["goal"][0])
    with_goal = envs.render(env, [pipeline_state], goal, height=64, width=64)
    without = envs.render(env, [pipeline_state], None, height=64, width=64)
    assert with_goal[0].shape == (64, 64, 3) and with_goal[0].dtype == np.uint8
    assert with_goal[0].std() > 5  # not blank
    green = (with_goal[0][..., 1].astype(int) - with_goal[0][..., 0]) > 60
    green_without = (without[0][..., 1].astype(int) - without[0][..., 0]) > 60
    assert green.sum() > green_without.sum()


def test_gl_backend_is_chosen_among_installed_libraries(monkeypatch):
    render_module = importlib.import_module("envs.render")  # `envs.render` is the function

    for libraries, nvidia, expected in [
        ({"OSMesa"}, False, "osmesa"),
        ({"EGL", "OSMesa"}, True, "egl"),
        ({"EGL"}, False, "disable"),  # EGL without an NVIDIA device: no headless context here
        (set(), False, "disable"),
    ]:
        monkeypatch.delenv("MUJOCO_GL", raising=False)
        monkeypatch.setattr(
            render_module.ctypes.util, "find_library", lambda name, libs=libraries: name if name in libs else None
        )
        monkeypatch.setattr(
            render_module.glob, "glob", lambda pattern, nvidia=nvidia: ["/dev/nvidia0"] if nvidia else []
        )
        assert render_module.choose_gl_backend() == expected
    monkeypatch.setenv("MUJOCO_GL", "osmesa")  # the user's choice wins
    assert render_module.choose_gl_backend() == "osmesa"


def test_without_opengl_envs_import_and_train_and_videos_are_refused(tmp_path):
    """MUJOCO_GL=disable is what `envs` picks on a machine without an OpenGL library: importing
    envs and stepping work, and --capture-video stops before compiling with what to install."""
    env = {**os.environ, "MUJOCO_GL": "disable"}
    code = (
        "import envs, jax\nenv = envs.make('reacher')\nprint(float(jax.jit(env.reset)(jax.random.PRNGKey(0)).obs[0]))"
    )
    stepped = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert stepped.returncode == 0, stepped.stderr[-2000:]
    script = os.path.join(os.path.dirname(__file__), "..", "algorithms", "crl_infonce.py")
    video = subprocess.run(
        [sys.executable, script, "--capture-video", "--run-root", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert video.returncode == 2 and "apt-get install libosmesa6" in video.stderr, video.stderr[-2000:]
    assert "Traceback" not in video.stderr and not os.listdir(tmp_path)  # nothing was started


def test_env_demo_runs_and_writes_a_gif_with_one_frame_per_step(tmp_path):
    import subprocess
    import sys

    from PIL import Image

    gif = tmp_path / "demo.gif"
    command = [sys.executable, "-m", "envs", "--env-id", "simple_u_maze", "--num-envs", "2", "--steps", "12"]
    result = subprocess.run([*command, "--video", str(gif)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "env steps/s" in result.stdout
    with Image.open(gif) as image:
        assert image.n_frames >= 10  # 12 steps; GIF writers may merge identical frames
    bad = subprocess.run([*command[:3], "--env-id", "simple_maze_u"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "Did you mean" in bad.stderr and "Traceback" not in bad.stderr
