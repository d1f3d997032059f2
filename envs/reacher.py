"""Reacher: a planar two-link arm brings its fingertip to a goal point.

The body is brax's packaged reacher (`brax/envs/assets/reacher.xml`, loaded from the installed
package) with its target body removed: the goal lives only in the observation and is drawn by
`render`, so it costs no physics. Two hinge motors, actions in [-1, 1]^2. Control step 0.02 s
(generalized/mjx: 0.01 s x 2; spring/positional: brax's 0.005 s x 4 with gear 25).

Observation (state part, `state_dim` = 10): [cos q (2), sin q (2), fingertip position xyz (3),
fingertip velocity xyz (3)]; goal = fingertip xyz (`goal_indices` = (4, 5, 6)). Goals: radius
U[0, 0.2], angle U[0, 2 pi), at the fingertip's height. Success when the fingertip is within
0.05 m of the goal. No termination; truncation at `episode_length` (default 50).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import jax
import jax.numpy as jnp
import numpy as np
from brax import math as brax_math
from brax.io import mjcf
from etils import epath

from envs.base import GoalEnv, ring_tasks

# The fingertip sits 0.11 m along the second link's x axis (the XML's `fingertip` body, which
# brax fuses into `body1` because it has no joint), at the arm's height 0.01 m.
_TIP_OFFSET = np.array([0.11, 0.0, 0.0], np.float32)
_TIP_HEIGHT = 0.01


def reacher_xml() -> str:
    root = ET.parse(epath.resource_path("brax") / "envs/assets/reacher.xml").getroot()
    world = root.find("worldbody")
    world.remove(world.find("body[@name='target']"))
    # brax's per-joint/per-body custom values listed the target too; keep the arm's entries.
    custom = root.find("custom")
    custom.find("numeric[@name='init_qpos']").set("data", "0 0")
    custom.find("numeric[@name='constraint_stiffness']").set("data", "1000 1000")
    custom.find("numeric[@name='constraint_vel_damping']").set("data", "3 3")
    return ET.tostring(root, encoding="unicode")


class Reacher(GoalEnv):
    def __init__(
        self,
        backend: str = "generalized",
        episode_length: int = 50,
        dense_reward: bool = False,
        goal_radius: float = 0.2,
    ):
        sys = mjcf.loads(reacher_xml())
        n_frames = 2
        if backend in ("spring", "positional"):
            sys = sys.tree_replace({"opt.timestep": 0.005})
            sys = sys.replace(actuator=sys.actuator.replace(gear=jnp.array([25.0, 25.0])))
            n_frames = 4
        self._goal_radius = goal_radius
        # radii from a fifth of the goal disc to its edge (near the base, where the arm must fold,
        # to nearly stretched out; it starts stretched along +x)
        self.tasks = ring_tasks([goal_radius * (k + 1) / 5 for k in range(5)], (_TIP_HEIGHT,), "from the base")
        super().__init__(
            sys,
            backend=backend,
            n_frames=n_frames,
            state_dim=10,
            goal_indices=(4, 5, 6),
            goal_reach_thresh=0.05,
            episode_length=episode_length,
            dense_reward=dense_reward,
        )

    def _sample_init(self, key, task=None):
        q_key, qd_key, radius_key, angle_key = jax.random.split(key, 4)
        q = self.sys.init_q + jax.random.uniform(q_key, (2,), minval=-0.1, maxval=0.1)
        qd = jax.random.uniform(qd_key, (2,), minval=-0.005, maxval=0.005)
        if task is not None:
            return q, qd, task[1]
        radius = jax.random.uniform(radius_key, (), maxval=self._goal_radius)
        angle = jax.random.uniform(angle_key, (), maxval=2 * math.pi)
        goal = jnp.array([radius * jnp.cos(angle), radius * jnp.sin(angle), _TIP_HEIGHT])
        return q, qd, goal

    def fingertip(self, pipeline_state) -> tuple[jax.Array, jax.Array]:
        """World position and velocity of the fingertip."""
        x, xd = pipeline_state.x.take(1), pipeline_state.xd.take(1)
        offset = brax_math.rotate(_TIP_OFFSET, x.rot)
        return x.pos + offset, xd.vel + jnp.cross(xd.ang, offset)

    def _state_obs(self, pipeline_state):
        q = pipeline_state.q
        tip_pos, tip_vel = self.fingertip(pipeline_state)
        return jnp.concatenate([jnp.cos(q), jnp.sin(q), tip_pos, tip_vel])

    def goal_marker_xyz(self, goal):
        return goal

    def render_camera(self, pipeline_state):
        return dict(lookat=(0.0, 0.0, 0.0), distance=0.8, azimuth=90.0, elevation=-89.0)
