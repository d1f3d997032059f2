"""Ant: `ant` (goal on a circle) and the ant mazes `ant_u_maze`, `ant_big_maze`, `ant_hardest_maze`,
`ant_giant_maze`.

The body is brax's packaged quadruped (`brax/envs/assets/ant.xml`, loaded from the installed
package): a torso sphere and four two-joint legs, 8 motors, actions in [-1, 1]^8. We change two
things in its XML: the torso collides with walls, the ball and the block but not with the floor
(only the feet touch the floor, as in JaxGCRL, so a flipped ant falls below the termination
height), and the floor is enlarged to cover the largest maze. Walls stop the torso and the feet;
the hip capsules pass through them (`WALL_COLLIDERS`; results/notes/ant_contacts.md). Control step
0.05 s on every backend (spring/positional: 0.005 s x 10 substeps, which stays stable when the
ant hits a wall; generalized/mjx: 0.01 s x 5).

Observation (state part, `state_dim` = 29): qpos (15: torso xyz, torso quaternion, 8 joint
angles) then qvel (14: torso linear and angular velocity, 8 joint velocities). The goal is the
torso's (x, y) (`goal_indices` = (0, 1)); success when it is within 0.5 m of the goal.

Goals: `ant` draws the goal uniformly on the circle of radius 10 around the start; a maze starts
the torso at the R cell's centre and draws the goal among the G cells' centres (cell 4 m).
Terminates when the torso height leaves [0.2, 1.0]; truncates at `episode_length` (1000).

Evaluation tasks (`tasks`): `ant`, five goals on its circle, one every 72 degrees; a maze, its
layout's five (envs/maze.py, `TASKS`; OGBench's on big, hardest and giant), the torso starting
within +- 1 m of the start cell's centre (with the usual joint noise) and the goal within +- 1 m
of the goal cell's centre. `ant_ball`: five goals on its circle of 5 m (the ball placed as in
training); `ant_push`: five goals over its two goal squares (`_PUSH_TASKS`).

Two tasks add an object, and its (x, y) and (x, y) velocity to the state part (`state_dim` 33):

* `ant_ball` (ant soccer, `AntBall`, default backend mjx): a free ball (radius 0.25 m, 0.2 kg)
  rolls on the floor and collides with the torso and the feet. (The spring pipeline gives every
  body of the ant XML unit mass and inertia, which turns the ball into a flywheel that a kick
  barely moves; see results/notes/env_throughput.md.) The goal is the *ball's* (x, y) (`goal_indices` =
  (29, 30)), drawn on the circle of radius 5; the ball starts 1.5 m from the ant on the line
  towards the goal (+- 0.25 m noise). Success when the ball is within 0.5 m of the goal.
* `ant_push` (`AntPush`, default backend mjx): a walled arena (inner area x, y in [-4, 21]).
  An L-shaped inner wall fences the start region [-4, 10]^2 off from the goal band; its only
  opening is the corner [7, 10]^2, which a 2.8 m block (0.5 kg, sliding in x and y) fills, so
  the ant has to push the block aside to get out. The goal is the torso's (x, y), drawn as
  (16, 8) or (8, 16) (equal odds) + U[0, 2)^2; start at (0, 0). The spring and positional
  backends are refused: they ignore joint damping, the block's friction.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import jax
import jax.numpy as jnp
from brax.io import mjcf
from etils import epath

from envs.base import GoalEnv, Task, fast_mjx_solver, ring_tasks
from envs.maze import Maze

# The geoms that collide with walls besides the feet. Making the four hip capsules collide too
# (as JaxGCRL's maze XML does) halves the env throughput on the spring pipeline and changes
# little: thrown at a wall at 2-6 m/s, the torso stops 4.5 cm further out, and in 3 of 64
# throws either way a leg link gets past the wall's face, by at most 5.4 cm without the hips and
# 3.5 cm with them (results/notes/ant_contacts.md).
WALL_COLLIDERS = ("torso_geom",)


def ant_xml(extra_world_xml: str = "", extra_init_qpos: str = "") -> str:
    """brax's ant XML with a wall-colliding torso, a large floor and extra world elements
    (their joints' initial positions, if any, in `extra_init_qpos`)."""
    root = ET.parse(epath.resource_path("brax") / "envs/assets/ant.xml").getroot()
    world = root.find("worldbody")
    world.find("geom[@name='floor']").set("size", "100 100 40")
    # Contact bits: the floor (conaffinity 1) touches the feet (contype 1) only. The torso gets
    # contype 2, which walls, the ball and the block answer (conaffinity 3) and the floor does
    # not: so it stops at a wall, and a flipped ant's torso sinks below the termination height
    # instead of resting on the floor (as in JaxGCRL, where only the feet touch the floor).
    for name in WALL_COLLIDERS:
        world.find(f".//geom[@name='{name}']").set("contype", "2")
    for element in ET.fromstring(f"<x>{extra_world_xml}</x>"):
        world.append(element)
    if extra_init_qpos:
        init_qpos = root.find("custom/numeric[@name='init_qpos']")
        init_qpos.set("data", f"{init_qpos.get('data')} {extra_init_qpos}")
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
        maze_start: str = "fixed",
    ):
        if maze_start != "fixed" and not maze:
            raise ValueError(f"maze_start '{maze_start}' applies to the maze envs only")
        self.maze = Maze(maze, cell_size=4.0, start=maze_start) if maze else None
        sys = mjcf.loads(ant_xml(*self._world_xml()))
        self._object_link = sys.link_names.index("object") if self._has_object else None
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
        self.healthy_z_range = tuple(healthy_z_range)
        # no maze: five goals on the goal circle (its radius is fixed: no near and far)
        self.tasks = self.maze.tasks() if self.maze else ring_tasks([goal_radius] * 5, unit="on the goal circle")
        super().__init__(
            sys,
            backend=backend,
            n_frames=n_frames,
            state_dim=29 + 4 * self._has_object,
            goal_indices=self._goal_indices,
            goal_reach_thresh=0.5,
            episode_length=episode_length,
            dense_reward=dense_reward,
        )

    _has_object = False  # AntBall, AntPush: an object body after the ant's
    _goal_indices = (0, 1)  # torso (x, y)

    def _world_xml(self) -> tuple[str, str]:
        """(world elements added to the ant XML, initial qpos of their joints)."""
        return (self.maze.walls_xml() if self.maze else ""), ""

    def _sample_init(self, key, task=None):
        q_key, qd_key, goal_key = jax.random.split(key, 3)
        q = self.sys.init_q + jax.random.uniform(q_key, (self.sys.q_size(),), minval=-self._noise, maxval=self._noise)
        qd = self._noise * jax.random.normal(qd_key, (self.sys.qd_size(),))
        if task is not None and self.maze is not None:
            start_xy, goal_xy = self.maze.task_ends(goal_key, *task)
            return q.at[:2].add(start_xy), qd, goal_xy
        if task is not None:
            return q, qd, task[1]
        if self.maze is None:
            angle = jax.random.uniform(goal_key, (), maxval=2 * math.pi)
            goal = self._goal_radius * jnp.array([jnp.cos(angle), jnp.sin(angle)])
        else:
            q = q.at[:2].add(self.maze.training_start(jax.random.fold_in(key, 1)))
            goal = self.maze.sample_goal(goal_key)
        return q, qd, goal

    def _state_obs(self, pipeline_state):
        q, qd = pipeline_state.q, pipeline_state.qd
        if not self._has_object:
            return jnp.concatenate([q, qd])
        xy = pipeline_state.x.pos[self._object_link, :2]
        vxy = pipeline_state.xd.vel[self._object_link, :2]
        return jnp.concatenate([q[:15], qd[:14], xy, vxy])

    def render_camera(self, pipeline_state):
        if self.maze is not None:
            return self.maze.camera()
        # The whole goal circle, so that both the ant and its goal are in view.
        return dict(lookat=(0.0, 0.0, 0.0), distance=3 * self._goal_radius, azimuth=90.0, elevation=-75.0)

    def goal_marker_xyz(self, goal):
        return jnp.array([goal[0], goal[1], 0.5])


class AntBall(Ant):
    """Ant soccer: dribble a ball to the goal (see the module docstring)."""

    _has_object = True
    _goal_indices = (29, 30)  # the ball's (x, y)
    BALL_RADIUS = 0.25

    def __init__(self, backend: str = "mjx", goal_radius: float = 5.0, ball_distance: float = 1.5, **kwargs):
        self._ball_distance = ball_distance
        super().__init__(maze=None, backend=backend, goal_radius=goal_radius, **kwargs)

    def _world_xml(self):
        r = self.BALL_RADIUS
        ball = (
            f'<body name="object" pos="0 0 {r}"><freejoint name="ball"/>'
            f'<geom name="ball" type="sphere" size="{r}" mass="0.2" contype="1" conaffinity="3" '
            'rgba="0.9 0.9 0.9 1"/></body>'
        )
        return ball, f"0 0 {r} 1 0 0 0"

    def _sample_init(self, key, task=None):
        ant_key, ball_key = jax.random.split(key)
        q, qd, goal = super()._sample_init(ant_key, task)
        direction = goal / jnp.linalg.norm(goal)
        ball_xy = q[:2] + self._ball_distance * direction
        ball_xy = ball_xy + jax.random.uniform(ball_key, (2,), minval=-0.25, maxval=0.25)
        q = q.at[15:17].set(ball_xy).at[17].set(self.BALL_RADIUS).at[18:22].set(jnp.array([1.0, 0.0, 0.0, 0.0]))
        return q, qd.at[14:].set(0.0), goal

    def goal_marker_xyz(self, goal):
        return jnp.array([goal[0], goal[1], self.BALL_RADIUS])

    def render_camera(self, pipeline_state):
        return dict(lookat=(0.0, 0.0, 0.0), distance=16.0, azimuth=90.0, elevation=-75.0)


# Arena of `ant_push` as boxes (centre x, centre y, half x, half y), all 1 m tall: the outer wall,
# then the L-shaped fence around the start region with its opening at the corner [7, 10]^2.
_PUSH_WALLS = (
    (-5.0, 8.5, 1.0, 14.5),
    (22.0, 8.5, 1.0, 14.5),
    (8.5, -5.0, 12.5, 1.0),
    (8.5, 22.0, 12.5, 1.0),
    (10.5, 1.5, 0.5, 5.5),
    (1.5, 10.5, 5.5, 0.5),
)
# ant_push's evaluation tasks: its goals lie in the squares [16, 18] x [8, 10] and [8, 10] x
# [16, 18], beyond the block's opening at [7, 10]^2; the ant starts at (0, 0).
_PUSH_TASKS = (
    Task("task1", (17.0, 9.0), why="the centre of the square along x"),
    Task("task2", (9.0, 17.0), why="the centre of the square along y"),
    Task("task3", (16.1, 8.1), why="near the corner of the x square nearest the opening"),
    Task("task4", (9.9, 17.9), why="near the corner of the y square farthest from the opening"),
    Task("task5", (17.9, 9.9), why="near the corner of the x square farthest from the opening"),
)
_PUSH_BLOCK_XY = (8.5, 8.5)
_PUSH_BLOCK_HALF = 1.4  # a 0.1 m slit on either side: too narrow for the ant, no contact with the walls


class AntPush(Ant):
    """Push a block out of the way to reach a goal behind it (see the module docstring)."""

    _has_object = True

    def __init__(self, backend: str = "mjx", **kwargs):
        if backend in ("spring", "positional"):
            raise ValueError(
                f"ant_push runs on the mjx or generalized backend, not '{backend}': the {backend} pipeline "
                "ignores joint damping, which is the block's only friction (it would slide on forever)."
            )
        super().__init__(maze=None, backend=backend, **kwargs)
        self.tasks = _PUSH_TASKS

    def _world_xml(self):
        # Walls answer the ant's feet (contype bit 1), its torso and the block (bit 2);
        # the block answers the same parts of the ant and slides on the floor without touching
        # it (no floor contact, joint damping for friction).
        walls = "".join(
            f'<geom name="wall_{n}" type="box" pos="{x:g} {y:g} 0.5" size="{hx:g} {hy:g} 0.5" '
            'contype="0" conaffinity="3" rgba="0.7 0.5 0.3 1"/>'
            for n, (x, y, hx, hy) in enumerate(_PUSH_WALLS)
        )
        h = _PUSH_BLOCK_HALF
        block = (
            f'<body name="object" pos="{_PUSH_BLOCK_XY[0]} {_PUSH_BLOCK_XY[1]} 0.5">'
            '<joint name="block_x" type="slide" axis="1 0 0" limited="false" damping="1"/>'
            '<joint name="block_y" type="slide" axis="0 1 0" limited="false" damping="1"/>'
            f'<geom name="block" type="box" size="{h} {h} 0.49" mass="0.5" contype="2" conaffinity="3" '
            'rgba="0.9 0.2 0.2 1"/></body>'
        )
        return walls + block, "0 0"

    def _sample_init(self, key, task=None):
        ant_key, order_key, goal_key = jax.random.split(key, 3)
        q, qd, _ = super()._sample_init(ant_key)
        corner = jnp.where(jax.random.bernoulli(order_key), jnp.array([16.0, 8.0]), jnp.array([8.0, 16.0]))
        goal = corner + jax.random.uniform(goal_key, (2,), maxval=2.0) if task is None else task[1]
        return q.at[15:].set(0.0), qd.at[14:].set(0.0), goal

    def render_camera(self, pipeline_state):
        return dict(lookat=(8.5, 8.5, 0.0), distance=34.0, azimuth=90.0, elevation=-89.0)
