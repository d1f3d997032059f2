"""Humanoid: `humanoid` (goal around the start) and the humanoid mazes `humanoid_u_maze`,
`humanoid_big_maze`, `humanoid_hardest_maze` (JaxGCRL's, cell 2 m) and `humanoid_giant_maze`
(OGBench's: cell 4 m, walls 2 m tall, 4000 steps per episode).

The body is brax's packaged humanoid (`brax/envs/assets/humanoid.xml`, loaded from the installed
package): 11 links (brax fuses the hands and feet into their parents) on a free root joint and
17 hinges, 17 motors. Actions in [-1, 1]^17 are
scaled to the XML's control range [-0.4, 0.4]. Control step 0.015 s (spring/positional: 0.0015 s
x 10 with gears 350 for the 11 trunk and leg motors and 100 for the 6 arm motors, brax's setting
for those pipelines; generalized/mjx: 0.003 s x 5 with the XML's gears).

Observation (state part, `state_dim` = 223): qpos (24: torso xyz, torso quaternion, 17 joint
angles), qvel (23), then per link (11 links) its inertia about the whole body's centre of mass
in world axes (9) and its mass (1), and its mass-weighted centre-of-mass velocity (3) and angular
velocity (3), computed as brax's own humanoid computes them (on spring/positional with the unit
masses those pipelines simulate). Nothing in it depends on the goal. (JaxGCRL's layout also
holds the target's two joints, a leak of the goal, and the actuator forces, 23 more entries
that repeat the previous action.) The goal is the torso's (x, y, z)
(`goal_indices` = (0, 1, 2)); success when the torso is within 0.5 m of the goal.

Goals: `humanoid` draws r ~ U[1, 5] and an angle ~ U[0, 2 pi) around the start, at height 1.25;
a maze starts the torso at the R cell's centre and draws the goal among the G cells' centres
(cell 2 m, walls 1 m tall), at height 1.25. Every episode starts in the XML's standing pose at
rest, without noise (JaxGCRL's start). In the mazes the torso, waist, pelvis and feet collide
with the walls (the limbs pass through them); only the feet touch the floor. Terminates when the torso height leaves
[1.0, 2.0]; truncates at `episode_length` (default 1000; the giant maze 4000, OGBench's).

Evaluation tasks (`tasks`): `humanoid`, five goals from 1 m to 5 m away, one every 72 degrees; a
maze, its layout's five (envs/maze.py, `TASKS`; OGBench's on big, hardest and giant), the torso
starting within +- cell/4 of the start cell's centre and the goal within +- cell/4 of the goal
cell's centre, at height 1.25.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import jax
import jax.numpy as jnp
from brax import math as brax_math
from brax.io import mjcf
from etils import epath

from envs.base import GoalEnv, fast_mjx_solver, ring_tasks
from envs.maze import Maze

_GOAL_Z = 1.25
_WALL_COLLIDERS = ("torso1", "uwaist", "lwaist", "butt")  # the feet collide already
_SPRING_GEAR = (350.0,) * 11 + (100.0,) * 6
# Cell size and default episode length per maze layout: JaxGCRL's (2 m, 1000 steps) for its
# layouts, OGBench's humanoid giant maze (4 m cells, 4000 steps) for the giant one.
_MAZE_CELL = {"u": 2.0, "big": 2.0, "hardest": 2.0, "giant": 4.0}
_MAZE_EPISODE_LENGTH = {"giant": 4000}


def humanoid_xml(walls_xml: str = "") -> str:
    root = ET.parse(epath.resource_path("brax") / "envs/assets/humanoid.xml").getroot()
    world = root.find("worldbody")
    if walls_xml:
        world.find("geom[@name='floor']").set("size", "100 100 0.125")
        for geom in root.iter("geom"):
            if geom.get("name") in _WALL_COLLIDERS:
                geom.set("contype", "2")  # walls answer bit 2, the floor does not
        for element in ET.fromstring(f"<x>{walls_xml}</x>"):
            world.append(element)
    return ET.tostring(root, encoding="unicode")


class Humanoid(GoalEnv):
    def __init__(
        self,
        maze: str | None = None,
        backend: str = "spring",
        episode_length: int | None = None,
        dense_reward: bool = False,
        goal_radius: tuple[float, float] = (1.0, 5.0),
        reset_noise_scale: float = 0.0,  # JaxGCRL starts every episode in the same pose
        healthy_z_range: tuple[float, float] = (1.0, 2.0),
        maze_start: str = "fixed",
    ):
        if maze_start != "fixed" and not maze:
            raise ValueError(f"maze_start '{maze_start}' applies to the maze envs only")
        self.maze = Maze(maze, cell_size=_MAZE_CELL[maze], start=maze_start) if maze else None
        if episode_length is None:
            episode_length = _MAZE_EPISODE_LENGTH.get(maze, 1000)
        sys = mjcf.loads(humanoid_xml(self.maze.walls_xml() if self.maze else ""))
        n_frames = 5
        if backend in ("spring", "positional"):
            sys = sys.tree_replace({"opt.timestep": 0.0015})
            sys = sys.replace(actuator=sys.actuator.replace(gear=jnp.array(_SPRING_GEAR)))
            n_frames = 10
        if backend == "mjx":
            sys = fast_mjx_solver(sys)
        # The spring and positional pipelines simulate every link with mass and inertia raised
        # to the power (1 - spring_mass_scale) and (1 - spring_inertia_scale) (1 for this XML:
        # unit masses); the features below use the masses that are simulated, as brax's own
        # humanoid and JaxGCRL do.
        inertia = sys.link.inertia
        if backend in ("spring", "positional"):
            diagonal = jax.vmap(jnp.diagonal)(inertia.i) ** (1 - sys.spring_inertia_scale)
            inertia = inertia.replace(i=jax.vmap(jnp.diag)(diagonal), mass=inertia.mass ** (1 - sys.spring_mass_scale))
        self._inertia = inertia
        self._goal_radius = goal_radius
        self._noise = reset_noise_scale
        low, high = goal_radius  # no maze: near to far over the goal region's radii
        open_tasks = ring_tasks([low + (high - low) * k / 4 for k in range(5)], (_GOAL_Z,), "away")
        self.tasks = self.maze.tasks(goal_z=(_GOAL_Z,)) if self.maze else open_tasks
        self.healthy_z_range = tuple(healthy_z_range)
        num_links = len(sys.link_names)
        super().__init__(
            sys,
            backend=backend,
            n_frames=n_frames,
            state_dim=sys.q_size() + sys.qd_size() + 16 * num_links,
            goal_indices=(0, 1, 2),
            goal_reach_thresh=0.5,
            episode_length=episode_length,
            dense_reward=dense_reward,
        )

    def _sample_init(self, key, task=None):
        q_key, qd_key, r_key, angle_key, goal_key = jax.random.split(key, 5)
        low, high = -self._noise, self._noise
        q = self.sys.init_q + jax.random.uniform(q_key, (self.sys.q_size(),), minval=low, maxval=high)
        qd = jax.random.uniform(qd_key, (self.sys.qd_size(),), minval=low, maxval=high)
        if task is not None and self.maze is not None:
            start_xy, goal_xy = self.maze.task_ends(goal_key, task[0], task[1][:2])
            return q.at[:2].add(start_xy), qd, jnp.concatenate([goal_xy, task[1][2:]])
        if task is not None:
            return q, qd, task[1]
        if self.maze is None:
            radius = jax.random.uniform(r_key, (), minval=self._goal_radius[0], maxval=self._goal_radius[1])
            angle = jax.random.uniform(angle_key, (), maxval=2 * math.pi)
            xy = radius * jnp.array([jnp.cos(angle), jnp.sin(angle)])
        else:
            q = q.at[:2].add(self.maze.training_start(jax.random.fold_in(key, 1)))
            xy = self.maze.sample_goal(goal_key)
        return q, qd, jnp.concatenate([xy, jnp.array([_GOAL_Z])])

    def _action_to_ctrl(self, action):
        low, high = self.sys.actuator.ctrl_range[:, 0], self.sys.actuator.ctrl_range[:, 1]
        return low + (action + 1.0) * 0.5 * (high - low)

    def _state_obs(self, pipeline_state):
        x, xd = pipeline_state.x, pipeline_state.xd
        inertia = self._inertia
        mass = inertia.mass
        # each link's centre of mass and principal frame in world coordinates
        com_pos = x.pos + jax.vmap(brax_math.rotate)(inertia.transform.pos, x.rot)
        rot = jax.vmap(brax_math.quat_to_3x3)(jax.vmap(brax_math.quat_mul)(x.rot, inertia.transform.rot))
        com = jnp.sum(mass[:, None] * com_pos, axis=0) / jnp.sum(mass)
        offset = com_pos - com
        world_inertia = rot @ inertia.i @ jnp.swapaxes(rot, -1, -2)
        parallel_axis = mass[:, None, None] * (
            jnp.sum(offset**2, -1)[:, None, None] * jnp.eye(3) - offset[:, :, None] * offset[:, None, :]
        )
        com_inertia = jnp.concatenate([(world_inertia + parallel_axis).reshape(-1, 9), mass[:, None]], axis=-1)
        com_vel = xd.vel + jnp.cross(xd.ang, com_pos - x.pos)
        com_velocity = jnp.concatenate([mass[:, None] * com_vel / jnp.sum(mass), xd.ang], axis=-1)
        return jnp.concatenate([pipeline_state.q, pipeline_state.qd, com_inertia.ravel(), com_velocity.ravel()])

    def goal_marker_xyz(self, goal):
        return goal

    def render_camera(self, pipeline_state):
        if self.maze is not None:
            return self.maze.camera()
        return dict(lookat=(0.0, 0.0, 1.0), distance=14.0, azimuth=90.0, elevation=-60.0)
