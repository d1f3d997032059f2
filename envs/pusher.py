"""Pusher: a 7-joint arm pushes a puck across a table to a goal: `pusher_easy`, `pusher_hard`.

The body is brax's packaged `pusher.xml` (loaded from the installed package) with its goal body
and the goal's two slide joints removed: the goal lives only in the observation and is drawn by
`render`. Seven hinge motors; the actions in [-1, 1]^7 are the motor controls themselves, so the
policy uses half of the XML's control range [-2, 2], as in JaxGCRL. No gravity; the puck slides
on two joints at a fixed height (the XML orders them y, then x). Control step 0.05 s
(generalized/mjx: 0.01 s x 5; spring/positional: brax's 0.001 s x 50 with gear 20).

Observation (state part, `state_dim` = 20): [7 joint angles, fingertip xyz (3), puck xyz (3),
7 joint velocities]. The fingertip is the point between the two finger spheres, 0.1 m ahead of
the wrist-roll joint (JaxGCRL's "tips" entry is the wrist-flex link's centre of mass instead).
The goal is the puck's xyz (`goal_indices` = (10, 11, 12)); success, on the post-step state,
when the puck is within 0.1 m of the goal. No termination; truncation at `episode_length`
(default 100).

Start and goal regions in world coordinates (JaxGCRL's; the puck's home is (0.45, -0.05)):

* puck: x ~ U[0.25, 0.65], y ~ U[-0.35, -0.05);
* easy goal: x ~ U[0.25, 0.65], y ~ U[-0.60, -0.30): a push of 0.25-0.55 m in -y;
* hard goal: x ~ U[-0.10, 0.90], y ~ U[-0.70, 0.30].

A puck drawn closer than 0.17 m to its goal is moved straight away from it to 0.17 m. The goal
sits at the puck's height (z = -0.275), so the 0.1 m test is a 0.1 m radius in the table plane.
(JaxGCRL puts its goal body 4.8 cm lower, at z = -0.323, which shrinks its radius in the plane to
0.088 m and puts the commanded goals 4.8 cm away from every goal the puck can achieve.)
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import jax
import jax.numpy as jnp
import numpy as np
from brax import math as brax_math
from brax.io import mjcf
from etils import epath

from envs.base import FUSION_FLAG, GoalEnv, Task, set_cpu_xla_flags

_PUCK_HOME = np.array([0.45, -0.05, -0.275], np.float32)
_TIP_OFFSET = np.array([0.1, 0.0, 0.0], np.float32)  # the XML's `tips_arm` body, fused into the wrist-roll link
_MIN_PUCK_GOAL_DIST = 0.17
# (low xy, high xy) in world coordinates of the puck's start and of the goal
_PUCK_BOX = ((0.25, -0.35), (0.65, -0.05))
_GOAL_BOXES = {
    "easy": ((0.25, -0.60), (0.65, -0.30)),
    "hard": ((-0.10, -0.70), (0.90, 0.30)),
}
# Evaluation tasks: (puck start xy, goal xy, why), inside the boxes above and at least
# _MIN_PUCK_GOAL_DIST apart. The easy goal box lies beside the puck box (towards -y); the hard
# one surrounds it.
_TASKS = {
    "easy": (
        ((0.45, -0.20), (0.45, -0.45), "the boxes' centres: a 0.25 m push towards -y"),
        ((0.30, -0.10), (0.60, -0.55), "far corners: the longest diagonal push (0.54 m)"),
        ((0.60, -0.10), (0.30, -0.55), "the other diagonal (0.54 m)"),
        ((0.45, -0.30), (0.45, -0.50), "a short push (0.2 m)"),
        ((0.30, -0.25), (0.60, -0.35), "mostly sideways, towards +x (0.32 m)"),
    ),
    "hard": (
        ((0.45, -0.20), (0.45, -0.60), "from the puck box's centre towards -y (0.4 m)"),
        ((0.45, -0.20), (0.00, 0.20), "away from the arm's side, towards -x +y (0.6 m)"),
        ((0.45, -0.20), (0.85, 0.20), "towards +x +y (0.57 m)"),
        ((0.30, -0.10), (-0.05, -0.65), "towards -x -y, the far corner (0.65 m)"),
        ((0.60, -0.30), (0.85, -0.30), "a short push towards +x (0.25 m)"),
    ),
}


def pusher_xml() -> str:
    root = ET.parse(epath.resource_path("brax") / "envs/assets/pusher.xml").getroot()
    world = root.find("worldbody")
    world.remove(world.find("body[@name='goal']"))
    return ET.tostring(root, encoding="unicode")


class Pusher(GoalEnv):
    def __init__(
        self,
        difficulty: str = "easy",
        backend: str = "generalized",
        episode_length: int = 100,
        dense_reward: bool = False,
    ):
        set_cpu_xla_flags(f"pusher_{difficulty}", (FUSION_FLAG,))  # an 8-body chain: see envs/base.py
        if difficulty not in _GOAL_BOXES:
            raise ValueError(f"difficulty must be one of {sorted(_GOAL_BOXES)}, got {difficulty!r}")
        sys = mjcf.loads(pusher_xml())
        n_frames = 5
        if backend in ("spring", "positional"):  # brax's settings for this body on those pipelines
            sys = sys.tree_replace({"opt.timestep": 0.001})
            sys = sys.replace(actuator=sys.actuator.replace(gear=jnp.array([20.0] * 7)))
            n_frames = 50
        self._goal_box = _GOAL_BOXES[difficulty]
        goal_z = round(float(_PUCK_HOME[2]), 4)
        self.tasks = tuple(
            Task(f"task{k + 1}", (*goal, goal_z), puck, why) for k, (puck, goal, why) in enumerate(_TASKS[difficulty])
        )
        self._tip_link = sys.link_names.index("r_wrist_roll_link")
        self._puck_link = sys.link_names.index("object")
        # qpos: 7 arm joints, then the puck's slide joints in the XML's order (y, then x).
        super().__init__(
            sys,
            backend=backend,
            n_frames=n_frames,
            state_dim=20,
            goal_indices=(10, 11, 12),
            goal_reach_thresh=0.1,
            episode_length=episode_length,
            dense_reward=dense_reward,
        )

    def _sample_init(self, key, task=None):
        puck_key, goal_key, qd_key = jax.random.split(key, 3)
        low, high = _PUCK_BOX
        puck = jax.random.uniform(puck_key, (2,), minval=jnp.array(low), maxval=jnp.array(high))
        low, high = self._goal_box
        goal = jax.random.uniform(goal_key, (2,), minval=jnp.array(low), maxval=jnp.array(high))
        gap = puck - goal
        dist = jnp.linalg.norm(gap)
        direction = jnp.where(dist > 1e-6, gap / jnp.maximum(dist, 1e-6), jnp.array([1.0, 0.0]))
        puck = jnp.where(dist < _MIN_PUCK_GOAL_DIST, goal + _MIN_PUCK_GOAL_DIST * direction, puck)
        if task is not None:  # the task's puck start and goal, already far enough apart
            puck, goal = task[0], task[1][:2]
        # the slide joints are offsets from the puck's home, ordered (y, x) in the XML
        offset = puck - jnp.asarray(_PUCK_HOME[:2])
        q = jnp.concatenate([self.sys.init_q[:7], offset[::-1]])
        qd = jnp.concatenate([jax.random.uniform(qd_key, (7,), minval=-0.005, maxval=0.005), jnp.zeros(2)])
        return q, qd, jnp.concatenate([goal, jnp.asarray(_PUCK_HOME[2:])])

    def fingertip(self, pipeline_state) -> jax.Array:
        x = pipeline_state.x.take(self._tip_link)
        return x.pos + brax_math.rotate(_TIP_OFFSET, x.rot)

    def _state_obs(self, pipeline_state):
        q, qd = pipeline_state.q, pipeline_state.qd
        puck = pipeline_state.x.pos[self._puck_link]
        return jnp.concatenate([q[:7], self.fingertip(pipeline_state), puck, qd[:7]])

    def goal_marker_xyz(self, goal):
        return goal

    def render_camera(self, pipeline_state):
        return dict(lookat=(0.3, -0.1, -0.3), distance=2.2, azimuth=90.0, elevation=-60.0)
