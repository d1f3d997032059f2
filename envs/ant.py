"""Ant: `ant` (goal on a circle) and the ant mazes `ant_u_maze`, `ant_big_maze`, `ant_hardest_maze`.

The body is brax's packaged quadruped (`brax/envs/assets/ant.xml`, loaded from the installed
package): a torso sphere and four two-joint legs, 8 motors, actions in [-1, 1]^8. We change two
things in its XML: the torso collides with maze walls (its contype bit 1 is set), and the floor
is enlarged to cover the largest maze. Control step 0.05 s on every backend (spring/positional:
0.005 s x 10 substeps, which stays stable when the ant hits a wall; generalized/mjx: 0.01 s x 5).

Observation (state part, `state_dim` = 29): qpos (15: torso xyz, torso quaternion, 8 joint
angles) then qvel (14: torso linear and angular velocity, 8 joint velocities). The goal is the
torso's (x, y) (`goal_indices` = (0, 1)); success when it is within 0.5 m of the goal.

Goals: `ant` draws the goal uniformly on the circle of radius 10 around the start; a maze starts
the torso at the R cell's centre and draws the goal among the G cells' centres (cell 4 m).
Terminates when the torso height leaves [0.2, 1.0]; truncates at `episode_length` (1000).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import jax
import jax.numpy as jnp
from brax.io import mjcf
from etils import epath

from envs.base import GoalEnv, fast_mjx_solver
from envs.maze import Maze


def ant_xml(extra_world_xml: str = "") -> str:
    """brax's ant XML with a wall-colliding torso, a large floor and extra world geoms."""
    root = ET.parse(epath.resource_path("brax") / "envs/assets/ant.xml").getroot()
    world = root.find("worldbody")
    world.find("geom[@name='floor']").set("size", "100 100 40")
    world.find("body[@name='torso']/geom[@name='torso_geom']").set("contype", "1")
    for element in ET.fromstring(f"<x>{extra_world_xml}</x>"):
        world.append(element)
    return ET.tostring(root, encoding="unicode")


class Ant(GoalEnv):
    def __init__(
        self,
        maze: str | None = None,
        backend: str = "spring",
        episode_length: int = 1000,
        dense_reward: bool = False,
        goal_radius: float = 10.0,
        reset_noise_scale: float = 0.1,
        healthy_z_range: tuple[float, float] = (0.2, 1.0),
    ):
        self.maze = Maze(maze, cell_size=4.0) if maze else None
        sys = mjcf.loads(ant_xml(self.maze.walls_xml() if self.maze else ""))
        n_frames = 10
        if backend in ("spring", "positional"):
            sys = sys.tree_replace({"opt.timestep": 0.005})
        else:
            n_frames = 5
        if backend == "mjx":
            sys = fast_mjx_solver(sys)
        if backend == "positional":  # brax's setting for this body on the positional pipeline
            sys = sys.replace(actuator=sys.actuator.replace(gear=200 * jnp.ones_like(sys.actuator.gear)))
        self._goal_radius = goal_radius
        self._noise = reset_noise_scale
        self._healthy_z_range = healthy_z_range
        super().__init__(
            sys,
            backend=backend,
            n_frames=n_frames,
            state_dim=29,
            goal_indices=(0, 1),
            goal_reach_thresh=0.5,
            episode_length=episode_length,
            dense_reward=dense_reward,
        )

    def _sample_init(self, key):
        q_key, qd_key, goal_key = jax.random.split(key, 3)
        q = self.sys.init_q + jax.random.uniform(q_key, (self.sys.q_size(),), minval=-self._noise, maxval=self._noise)
        qd = self._noise * jax.random.normal(qd_key, (self.sys.qd_size(),))
        if self.maze is None:
            angle = jax.random.uniform(goal_key, (), maxval=2 * math.pi)
            goal = self._goal_radius * jnp.array([jnp.cos(angle), jnp.sin(angle)])
        else:
            q = q.at[:2].add(jnp.asarray(self.maze.start_xy))
            goal = self.maze.sample_goal(goal_key)
        return q, qd, goal

    def _state_obs(self, pipeline_state):
        return jnp.concatenate([pipeline_state.q, pipeline_state.qd])

    def _is_terminated(self, pipeline_state):
        z = pipeline_state.x.pos[0, 2]
        low, high = self._healthy_z_range
        return jnp.logical_or(z < low, z > high)

    def render_camera(self, pipeline_state):
        if self.maze is not None:
            return self.maze.camera()
        # The whole goal circle, so that both the ant and its goal are in view.
        return dict(lookat=(0.0, 0.0, 0.0), distance=3 * self._goal_radius, azimuth=90.0, elevation=-75.0)

    def goal_marker_xyz(self, goal):
        return jnp.array([goal[0], goal[1], 0.5])
