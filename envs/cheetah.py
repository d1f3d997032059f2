"""Cheetah: brax's planar half-cheetah runs to a goal position along x.

The body is brax's packaged `half_cheetah.xml` (loaded from the installed package): a torso on
three root joints (slide x, slide z, hinge y) and six leg hinges, 6 motors, actions in [-1, 1]^6.
Control step 0.05 s (mjx/generalized: 0.01 s x 5, mjx with one Newton iteration and 4
line-search steps; spring/positional: brax's 0.003125 s x 16 with its gears for those pipelines).

Observation (state part, `state_dim` = 18): qpos (9: root x, root z, root angle, 6 joint
angles) then qvel (9). The goal is the root's x (`goal_indices` = (0,)), fixed at x = 5 by
default (`goal_x`); success when |x - goal| < 0.5. No termination; truncation at
`episode_length` (default 1000).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import jax
import jax.numpy as jnp
import mujoco
from brax.io import mjcf
from etils import epath

from envs.base import GoalEnv, Task, fast_mjx_solver


def cheetah_model() -> mujoco.MjModel:
    """brax's half-cheetah with its total mass (14 kg) applied by `mj_setTotalmass` instead of
    the XML's deprecated `settotalmass` attribute: the same masses and inertias, without MuJoCo
    writing a deprecation warning to MUJOCO_LOG.TXT in the working directory."""
    root = ET.parse(epath.resource_path("brax") / "envs/assets/half_cheetah.xml").getroot()
    total_mass = float(root.find("compiler").attrib.pop("settotalmass"))
    model = mujoco.MjModel.from_xml_string(ET.tostring(root, encoding="unicode"))
    mujoco.mj_setTotalmass(model, total_mass)
    mujoco.mj_setConst(model, mujoco.MjData(model))
    return model


class Cheetah(GoalEnv):
    fixed_goal = True

    def __init__(
        self,
        backend: str = "mjx",
        episode_length: int = 1000,
        dense_reward: bool = False,
        goal_x: float = 5.0,
        reset_noise_scale: float = 0.1,
    ):
        sys = mjcf.load_model(cheetah_model())
        n_frames = 5
        if backend in ("spring", "positional"):  # brax's settings for this body on those pipelines
            sys = sys.tree_replace({"opt.timestep": 0.003125})
            sys = sys.replace(actuator=sys.actuator.replace(gear=jnp.array([120.0, 90.0, 60.0, 120.0, 100.0, 100.0])))
            n_frames = 16
        if backend == "mjx":  # one Newton iteration with 4 line-search steps, as for the ant
            sys = fast_mjx_solver(sys)
        self._goal_x = goal_x
        # Evaluation tasks: the training goal is one point, so the tasks are the points on the way
        # to it, near to far (task5 is the training goal itself).
        self.tasks = tuple(
            Task(f"task{k}", (goal_x * k / 5,), why=f"{k}/5 of the way to the training goal") for k in range(1, 6)
        )
        self._noise = reset_noise_scale
        super().__init__(
            sys,
            backend=backend,
            n_frames=n_frames,
            state_dim=18,
            goal_indices=(0,),
            goal_reach_thresh=0.5,
            episode_length=episode_length,
            dense_reward=dense_reward,
        )

    def _sample_init(self, key, task=None):
        q_key, qd_key = jax.random.split(key)
        q = self.sys.init_q + jax.random.uniform(q_key, (self.sys.q_size(),), minval=-self._noise, maxval=self._noise)
        qd = self._noise * jax.random.normal(qd_key, (self.sys.qd_size(),))
        return q, qd, jnp.array([self._goal_x]) if task is None else task[1]

    def _state_obs(self, pipeline_state):
        return jnp.concatenate([pipeline_state.q, pipeline_state.qd])

    def goal_marker_xyz(self, goal):
        return jnp.array([goal[0], 0.0, 0.5])

    def render_camera(self, pipeline_state):
        return dict(lookat=(self._goal_x / 2, 0.0, 0.5), distance=9.0, azimuth=90.0, elevation=-10.0)
