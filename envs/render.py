"""Render pipeline states of a `GoalEnv` to RGB frames with MuJoCo's renderer.

    frames = envs.render(env, pipeline_states, goals)   # list of (H, W, 3) uint8 arrays
    envs.save_gif(frames, "episode.gif", fps=1 / env.dt, writer=writer, step=n, tag="videos/eval")
    logs = buffers.Logs(run_dirs, video=envs.episode_video(env))   # the algorithms' eval videos

`pipeline_states` is a list of single-env pipeline states, or one pytree with a leading time
axis (as a `lax.scan` rollout returns it). `goals` is one goal or one per frame; each frame
shows it as a translucent green sphere of radius `goal_reach_thresh`.

Headless rendering needs an OpenGL library; training and stepping never do. Before mujoco is
imported, `envs` picks `MUJOCO_GL` among the installed ones: `egl` where an NVIDIA device and
libEGL are present, else `osmesa` where libOSMesa is (Debian: `apt-get install libosmesa6`),
else `disable`, so that importing mujoco loads no OpenGL at all. A value the user set wins.
`check_rendering()` raises `RenderingUnavailable`, whose message says what to install, when no
backend is usable; `render` calls it first, and the algorithms call it before training with
`--capture-video`.
"""

from __future__ import annotations

import ctypes.util
import glob
import io
import os
from typing import Any

import jax
import numpy as np

_DISABLED = ("disable", "disabled", "off", "false", "0")
INSTALL_HINT = (
    "On Debian or Ubuntu install software OpenGL with `apt-get install libosmesa6` (then "
    "MUJOCO_GL=osmesa is picked by itself); on a machine with an NVIDIA driver set MUJOCO_GL=egl."
)


class RenderingUnavailable(RuntimeError):
    """No OpenGL backend for MuJoCo's headless renderer is installed."""


def choose_gl_backend() -> str:
    """Set MUJOCO_GL (unless the user did) to a headless backend whose library is installed,
    or to `disable` when there is none; returns the value. Must run before mujoco is imported."""
    if "MUJOCO_GL" not in os.environ:
        if glob.glob("/dev/nvidia[0-9]*") and ctypes.util.find_library("EGL"):
            os.environ["MUJOCO_GL"] = "egl"
        elif ctypes.util.find_library("OSMesa"):
            os.environ["MUJOCO_GL"] = "osmesa"
        else:
            os.environ["MUJOCO_GL"] = "disable"
    backend = os.environ["MUJOCO_GL"].lower().strip()
    if backend in ("egl", "osmesa"):
        os.environ.setdefault("PYOPENGL_PLATFORM", backend)
    return backend


def check_rendering() -> None:
    """Raise `RenderingUnavailable` with what to install unless MuJoCo can render headless."""
    backend = os.environ.get("MUJOCO_GL", "").lower().strip()
    if backend in _DISABLED:
        raise RenderingUnavailable(f"Rendering needs an OpenGL library and none was found. {INSTALL_HINT}")
    try:
        import mujoco

        mujoco.GLContext(16, 16).free()
    except Exception as error:  # a missing or broken library surfaces here, not at import
        raise RenderingUnavailable(
            f"Rendering with MUJOCO_GL={backend} failed ({type(error).__name__}: {error}). {INSTALL_HINT}"
        ) from None


_GOAL_RGBA = np.array([0.1, 0.8, 0.2, 0.6], np.float32)


def _unstack(pipeline_states: Any) -> list:
    if isinstance(pipeline_states, (list, tuple)):
        return list(pipeline_states)
    length = jax.tree.leaves(pipeline_states)[0].shape[0]
    return [jax.tree.map(lambda x, t=t: x[t], pipeline_states) for t in range(length)]


def render(
    env: Any,
    pipeline_states: Any,
    goals: Any = None,
    height: int = 240,
    width: int = 320,
) -> list[np.ndarray]:
    import mujoco  # imported here: `envs` imports this module before it sets MUJOCO_GL

    check_rendering()
    env = getattr(env, "env", env)  # accept a VecEnv too
    states = _unstack(pipeline_states)
    if goals is not None:
        goals = np.asarray(goals, np.float32)
        if goals.ndim == 1:
            goals = np.broadcast_to(goals, (len(states), goals.shape[0]))
        if len(goals) != len(states):
            raise ValueError(f"got {len(goals)} goals for {len(states)} states")
    model = env.sys.mj_model
    data = mujoco.MjData(model)
    camera = mujoco.MjvCamera()
    frames = []
    with mujoco.Renderer(model, height=height, width=width) as renderer:
        for t, state in enumerate(states):
            data.qpos[:], data.qvel[:] = np.asarray(state.q), np.asarray(state.qd)
            mujoco.mj_forward(model, data)
            view = env.render_camera(state)
            camera.type = mujoco.mjtCamera.mjCAMERA_FREE
            camera.lookat[:] = view["lookat"]
            camera.distance, camera.azimuth, camera.elevation = view["distance"], view["azimuth"], view["elevation"]
            renderer.update_scene(data, camera=camera)
            scene = renderer.scene
            if goals is not None and scene.ngeom < scene.maxgeom:
                radius = env.goal_reach_thresh
                mujoco.mjv_initGeom(
                    scene.geoms[scene.ngeom],
                    mujoco.mjtGeom.mjGEOM_SPHERE,
                    np.array([radius, radius, radius]),
                    np.asarray(env.goal_marker_xyz(goals[t]), np.float64),
                    np.eye(3).flatten(),
                    _GOAL_RGBA,
                )
                scene.ngeom += 1
            frames.append(renderer.render().copy())
    return frames


def gif_bytes(frames: list[np.ndarray], fps: float) -> bytes:
    """Encode RGB frames as a looping GIF at `fps` frames per second."""
    from PIL import Image

    images = [Image.fromarray(np.asarray(f)) for f in frames]
    out = io.BytesIO()
    images[0].save(out, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return out.getvalue()


def save_gif(frames: list[np.ndarray], path: str, fps: float, writer: Any = None, step: int = 0, tag: str = "") -> str:
    """Write RGB frames as a looping GIF at `fps` frames per second (temp file, then rename).
    Given a tensorboardX `SummaryWriter` and a `tag`, also log the GIF there at `step` as an
    animated image summary (TensorBoard's image dashboard plays it)."""
    gif = gif_bytes(frames, fps)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(f"{path}.tmp.gif", "wb") as f:
        f.write(gif)
    os.replace(f"{path}.tmp.gif", path)
    if writer is not None:
        from tensorboardX.proto.summary_pb2 import Summary

        height, width = np.asarray(frames[0]).shape[:2]
        image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=gif)
        writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)
    return path


def episode_video(env: Any):
    """`video(writer, run_dir, rollout, env_steps)` for `buffers.Logs`: render one evaluation
    episode of `env` (`rollout` = (pipeline states, goals)) and write it as
    run_dir/videos/eval_{env_steps}.gif and as TensorBoard's animated image `videos/eval`."""

    def video(writer: Any, run_dir: str, rollout: Any, env_steps: int) -> None:
        frames = render(env, rollout[0], rollout[1])
        path = os.path.join(run_dir, "videos", f"eval_{env_steps:012d}.gif")
        save_gif(frames, path, fps=1.0 / float(env.dt), writer=writer, step=env_steps, tag="videos/eval")

    return video
