"""Point-mass mazes: `simple_u_maze`, `simple_big_maze`, `simple_hardest_maze`, `simple_giant_maze`.

JaxGCRL's point mass: a sphere of radius 0.25 m and density 5 (0.327 kg) on two slide joints
(x, y) with armature 1 and no damping, each driven by a motor of gear 5 (action in [-1, 1]^2).
It is undamped: under a constant push it keeps accelerating until a wall stops it. The XML
carries JaxGCRL's brax parameters, `spring_mass_scale` 1 among them: brax's spring and
positional pipelines scale every link's mass to m^(1 - scale), so on the default spring backend
the ball has unit mass (and no armature: spring ignores it), and full throttle accelerates it at
5 N / 1 kg = 5.0 m/s^2, a gain of 0.25 m/s per control step. Generalized and mjx use the true
mass and honour the armature: 5 N / 1.327 kg = 3.77 m/s^2. Positional has gear 200, as
JaxGCRL's (that pipeline caps the speed near gear x 0.05 m/s). Each of these was measured beside
JaxGCRL's own env at its pins (`results/notes/maze_walls.md`): the same to 3 decimals. Without
the scale (until 2026-12-07) the spring ball had its 0.327 kg: 15.3 m/s^2, speeds to 65-94 m/s
under random bang-bang actions, and 0.4-2.5% of such states in a wall or outside the maze; now
none leaves the free cells on any layout and backend (`results/notes/maze_walls.md`; on spring,
`tests/test_mazes.py`).

It collides with the maze walls; cell size 4 m; control step 0.05 s (spring/positional:
0.005 s x 10; generalized/mjx: 0.01 s x 5).

Observation (state part, `state_dim` = 4): [x, y, vx, vy]; goal = [x, y]
(`goal_indices` = (0, 1)); success when the ball's centre is within 0.5 m of the goal.
Each episode starts at the R cell's centre with velocity 0.1 N(0, 1) per axis (JaxGCRL's
start; `maze_start="anywhere"`: in a uniformly drawn free cell, `envs/maze.py`); the goal is a uniformly drawn G cell centre. No termination; truncation at
`episode_length` (default 1000, OGBench's for its point mazes too).

Evaluation tasks: the layout's five (envs/maze.py, `TASKS`; OGBench's on big, hardest and giant),
each starting within +- 1 m of its start cell's centre and aiming within +- 1 m of its goal
cell's centre. OGBench's point mass counts a goal reached within 1.0 m; this one, as JaxGCRL's,
within 0.5 m.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from brax.io import mjcf

from envs.base import GoalEnv
from envs.maze import Maze

_BALL_RADIUS = 0.25

_XML = """
<mujoco model="point_maze">
  <compiler angle="radian" inertiafromgeom="true"/>
  <option timestep="0.005" iterations="4" ls_iterations="4"/>
  <custom>
    <!-- JaxGCRL's brax parameters for this body. spring_mass_scale 1 makes the spring and
         positional pipelines treat every link as unit mass (brax scales mass as m^(1 - x)). -->
    <numeric name="spring_mass_scale" data="1"/>
    <numeric name="spring_inertia_scale" data="1"/>
    <numeric name="constraint_stiffness" data="4000"/>
    <numeric name="constraint_limit_stiffness" data="1000"/>
    <numeric name="constraint_ang_damping" data="10"/>
    <numeric name="constraint_vel_damping" data="20"/>
    <numeric name="joint_scale_pos" data="0.5"/>
    <numeric name="joint_scale_ang" data="0.2"/>
    <numeric name="ang_damping" data="0"/>
    <numeric name="solver_maxls" data="15"/>
  </custom>
  <worldbody>
    <light pos="0 0 40" dir="0 0 -1" directional="true" diffuse="0.8 0.8 0.8"/>
    <geom name="floor" type="plane" size="100 100 0.1" contype="0" conaffinity="0" rgba="0.85 0.85 0.85 1"/>
    {walls}
    <body name="ball" pos="0 0 {radius}">
      <joint name="slide_x" type="slide" axis="1 0 0" limited="false" damping="0" armature="1"/>
      <joint name="slide_y" type="slide" axis="0 1 0" limited="false" damping="0" armature="1"/>
      <geom name="ball" type="sphere" size="{radius}" density="5" contype="1" conaffinity="0" rgba="0.2 0.3 0.9 1"/>
    </body>
  </worldbody>
  <actuator>
    <motor joint="slide_x" gear="5" ctrllimited="true" ctrlrange="-1 1"/>
    <motor joint="slide_y" gear="5" ctrllimited="true" ctrlrange="-1 1"/>
  </actuator>
</mujoco>
"""


class PointMaze(GoalEnv):
    def __init__(
        self,
        layout: str = "u",
        backend: str = "spring",
        episode_length: int = 1000,
        dense_reward: bool = False,
        start_velocity_noise: float = 0.1,
        maze_start: str = "fixed",
    ):
        self.maze = Maze(layout, cell_size=4.0, start=maze_start)
        sys = mjcf.loads(_XML.format(walls=self.maze.walls_xml(), radius=_BALL_RADIUS))
        # 0.05 s per control step on every backend (spring/positional: 0.005 x 10).
        n_frames = 10
        if backend in ("generalized", "mjx"):
            sys = sys.tree_replace({"opt.timestep": 0.01})
            n_frames = 5
        if backend == "positional":
            # JaxGCRL's positional point mass has gear 200: brax's positional pipeline turns a
            # motor into a speed limit of about gear x 0.05 m/s, and gear 5 would crawl at 0.25.
            sys = sys.replace(actuator=sys.actuator.replace(gear=200 * jnp.ones_like(sys.actuator.gear)))
        self._velocity_noise = start_velocity_noise
        self.tasks = self.maze.tasks()
        super().__init__(
            sys,
            backend=backend,
            n_frames=n_frames,
            state_dim=4,
            goal_indices=(0, 1),
            goal_reach_thresh=0.5,
            episode_length=episode_length,
            dense_reward=dense_reward,
        )

    def _sample_init(self, key, task=None):
        velocity_key, goal_key = jax.random.split(key)
        qd = self._velocity_noise * jax.random.normal(velocity_key, (2,))
        if task is None:
            return self.maze.training_start(jax.random.fold_in(key, 1)), qd, self.maze.sample_goal(goal_key)
        start_xy, goal_xy = self.maze.task_ends(goal_key, *task)
        return start_xy, qd, goal_xy

    def _state_obs(self, pipeline_state):
        return jnp.concatenate([pipeline_state.q, pipeline_state.qd])

    def goal_marker_xyz(self, goal):
        return jnp.array([goal[0], goal[1], _BALL_RADIUS])

    def render_camera(self, pipeline_state):
        return self.maze.camera()
