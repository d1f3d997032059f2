"""Arm: a Panda-like 7-DoF arm with a parallel gripper on a table, for `arm_reach`, `arm_grasp`,
`arm_push_easy`, `arm_push_hard`, `arm_binpick_easy` and `arm_binpick_hard`.

The model is generated here from the Franka Emika Panda's published kinematic parameters
(modified Denavit-Hartenberg: link offsets d1 = 0.333, d3 = 0.316, a4 = 0.0825, a5 = -0.0825,
d5 = 0.384, a7 = 0.088, flange 0.107 m; the Panda's joint limits) with capsules and boxes only.
The base stands at the origin on a table whose top is the plane z = 0. Only the hand, the two
fingers, the cube, the table and the bins collide; the arm's links are visual.

Physics: MJX only, control step 0.05 s (0.002 s x 25), implicitfast integrator, Newton solver
with 4 iterations and 8 line-search steps. Every joint is driven by a position actuator, and the
arm's bodies are gravity-compensated (MuJoCo's `gravcomp`), as the real arm's controller does.
The arm's actuators are limited to the Panda's joint torques, 87 Nm for joints 1-4 and 12 Nm
for joints 5-7 (as in JaxGCRL's model), which keeps the end effector under about 2 m/s (the
Panda's Cartesian limit is 1.7 m/s); without them random actions swung it at up to 13 m/s and
flung the cube metres across the table.

Actions, in [-1, 1]^5: four joint targets for joints 1, 2, 4 and 6, mapped linearly onto
[0.3491, 2.7925], [0, 1.48353], [-3.0718, -0.0698] and [2.3562, 3.7525] rad (joints 3 and 5 are
held at 0 and joint 7 at 1.4487), and one gripper command (> 0 closes both fingers, otherwise
they open to 4 cm each). Each episode starts at the pose of the zero action with the gripper
open, plus U(-0.05, 0.05) rad per joint.

Tasks (state part; the goal indices point into it):

* `arm_reach`: state [7 joint angles, end-effector xyz, end-effector velocity] (13); goal = the
  end effector's xyz, (0, 0.5, 0.3) + 0.2 U(-1, 1)^3; success within 0.1 m. Episode 100 steps.
* `arm_push_easy` / `arm_push_hard`: a 5 cm cube on the table at (-0.1, 0.6) + 0.1 U(-1, 1)^2
  (easy) or (-0.25, 0.65) + 0.25 U(-1, 1)^2 (hard); goal = the cube's xyz, easy (0.1, 0.6, 0.03)
  + 0.1 U(-1, 1)^2, hard (0.25, 0.65, 0.03) + 0.25 U(-1, 1)^2; success within 0.1 m. State
  [cube xyz, 7 joint angles, end-effector xyz, end-effector velocity, gripper opening, gripper
  force] (18). Episode 150 steps.
* `arm_binpick_easy` / `arm_binpick_hard`: as push, with two open bins on the table, centred at
  x = -+0.17 (easy, inner half-width 0.135 m) or -+0.3 (hard, 0.185 m), their walls 1 cm thick
  and 6.6 cm tall, so the cube has to be lifted over them. The walls stop the cube, and in the
  hard task the hand and fingers too; in the easy task those pass through (as in JaxGCRL's two
  models). The cube starts in the left bin at (-0.15, 0.6) + 0.07 U(-1, 1)^2 (easy) or (-0.3,
  0.6) + 0.15 U(-1, 1)^2 (hard) and its goal lies in the right bin at (0.17, 0.6, 0.03) + 0.005
  U(-1, 1)^2 (easy) or (0.3, 0.6, 0.03) + 0.15 U(-1, 1)^2 (hard). Episode 150 steps. (The
  start and goal regions and the bins are JaxGCRL's. Every goal's height is the cube's resting
  height, 0.025 m for our 5 cm cube where JaxGCRL's 6 cm cube rests at 0.03, so a goal is a
  place the cube can be.)
* `arm_grasp`: the cube at (0, 0.6) + 0.3 U(-1, 1)^2; the goal is (the cube's start xyz, the
  cube's width 0.05 m) and the achieved goal is (the midpoint between the fingertips, the
  gripper opening), so the gripper has to close around the cube. Success needs both: midpoint
  within 0.05 m of the goal point and opening within 0.02 m of 0.05; `dist` is the midpoint's
  distance. State [fingertip midpoint xyz, gripper opening, cube xyz, 7 joint angles,
  end-effector xyz, end-effector velocity, gripper force, left fingertip xyz, right fingertip
  xyz] (27). Episode 100 steps.

The end effector is the origin of link 7's frame (at the wrist, 0.21 m short of the point between
the fingertips), as in JaxGCRL: from there every `arm_reach` goal is within reach of the four
driven joints, from the fingertips a quarter of them are not (`end_effector`). The gripper
opening is the gap between the two finger pads (0 closed, 0.08 m open); the gripper force is the
mean force of the two finger actuators (negative when squeezing).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from brax import math as brax_math
from brax.io import mjcf

from envs.base import FUSION_FLAG, SCHEDULER_FLAG, GoalEnv, Task, set_cpu_xla_flags

# (alpha_{i-1}, a_{i-1}, d_i) of the Panda's modified DH convention, and its joint limits (rad).
_DH = (
    (0.0, 0.0, 0.333),
    (-math.pi / 2, 0.0, 0.0),
    (math.pi / 2, 0.0, 0.316),
    (math.pi / 2, 0.0825, 0.0),
    (-math.pi / 2, -0.0825, 0.384),
    (math.pi / 2, 0.0, 0.0),
    (math.pi / 2, 0.088, 0.0),
)
_LIMITS = (
    (-2.8973, 2.8973),
    (-1.7628, 1.7628),
    (-2.8973, 2.8973),
    (-3.0718, -0.0698),
    (-2.8973, 2.8973),
    (-0.0175, 3.7525),
    (-2.8973, 2.8973),
)
_FLANGE = 0.107  # link 7 origin to flange, along link 7's z
_TCP = 0.1034  # flange to the point between the fingertips
_LINK_RADIUS = (0.06, 0.06, 0.055, 0.055, 0.05, 0.045, 0.04)

# action -> joint targets
_ACTED_JOINTS = (0, 1, 3, 5)
_ACTED_RANGES = np.array([[0.3491, 2.7925], [0.0, 1.48353], [-3.0718, -0.0698], [2.3562, 3.7525]])
_HELD = {2: 0.0, 4: 0.0, 6: 1.4487}
_FINGER_OPEN = 0.04
_CUBE_HALF = 0.025

# (centre x, centre y, inner half-size) of the two bins, per binpick task, and the walls' half
# thickness and half height: JaxGCRL's bins (1 cm thick, 6.6 cm tall walls)
_BINS = {
    "easy": ((-0.17, 0.6, 0.135), (0.17, 0.6, 0.135)),
    "hard": ((-0.3, 0.6, 0.185), (0.3, 0.6, 0.185)),
}
_BIN_WALL = (0.005, 0.033)


def _quat_x(angle: float) -> str:
    return f"{math.cos(angle / 2):.9g} {math.sin(angle / 2):.9g} 0 0"


def _capsule_to(end: tuple[float, float, float], radius: float) -> str:
    if np.linalg.norm(end) < 1e-9:
        return f'<geom type="sphere" size="{radius}" contype="0" conaffinity="0" rgba="0.9 0.9 0.92 1"/>'
    return (
        f'<geom type="capsule" fromto="0 0 0 {end[0]:.9g} {end[1]:.9g} {end[2]:.9g}" size="{radius}" '
        'contype="0" conaffinity="0" rgba="0.9 0.9 0.92 1"/>'
    )


def _next_origin(alpha: float, a: float, d: float) -> tuple[float, float, float]:
    """Origin of the next link in this link's frame: RotX(alpha) (a, 0, d)."""
    return (a, -d * math.sin(alpha), d * math.cos(alpha))


def arm_xml(with_cube: bool, bins: tuple = (), hand_hits_bins: bool = False) -> str:
    """The arm's MJCF: kinematic chain from `_DH`, hand and fingers, table, optional cube and bins
    (whose walls touch the cube, and the hand and fingers too if `hand_hits_bins`)."""
    chain_open, chain_close = [], []
    for i, (alpha, a, d) in enumerate(_DH):
        origin = _next_origin(alpha, a, d)
        lo, hi = _LIMITS[i]
        # the geometry of link i-1 runs from its origin to link i's origin
        geom = _capsule_to(origin, _LINK_RADIUS[max(i - 1, 0)]) if i > 0 else ""
        chain_open.append(
            f"{geom}<body name='link{i + 1}' pos='{origin[0]:.9g} {origin[1]:.9g} {origin[2]:.9g}' "
            f"quat='{_quat_x(alpha)}' gravcomp='1'>"
            f"<joint name='joint{i + 1}' axis='0 0 1' range='{lo} {hi}' damping='{60 if i < 4 else 15}'/>"
        )
        chain_close.append("</body>")
    hand = f"""
      {_capsule_to((0.0, 0.0, _FLANGE), _LINK_RADIUS[6])}
      <body name="hand" gravcomp="1" pos="0 0 {_FLANGE}" quat="{math.cos(-math.pi / 8):.9g} 0 0 {math.sin(-math.pi / 8):.9g}">
        <geom name="hand" type="box" pos="0 0 0.03" size="0.025 0.1 0.03" contype="2" conaffinity="0"
              rgba="0.9 0.9 0.92 1"/>
        <site name="tcp" pos="0 0 {_TCP}" size="0.005"/>
        <body name="left_finger" pos="0 0 0.0584" gravcomp="1">
          <joint name="finger_left" type="slide" axis="0 1 0" range="0 {_FINGER_OPEN}" damping="5" armature="0.01"/>
          <geom name="left_pad" type="box" pos="0 0.008 0.025" size="0.01 0.008 0.02" contype="2"
                conaffinity="0" friction="1.5 0.05 0.001" rgba="0.2 0.2 0.2 1"/>
        </body>
        <body name="right_finger" pos="0 0 0.0584" gravcomp="1">
          <joint name="finger_right" type="slide" axis="0 -1 0" range="0 {_FINGER_OPEN}" damping="5" armature="0.01"/>
          <geom name="right_pad" type="box" pos="0 -0.008 0.025" size="0.01 0.008 0.02" contype="2"
                conaffinity="0" friction="1.5 0.05 0.001" rgba="0.2 0.2 0.2 1"/>
        </body>
      </body>"""
    cube = (
        f"""
    <body name="cube" pos="0 0.6 {_CUBE_HALF}">
      <freejoint name="cube"/>
      <geom name="cube" type="box" size="{_CUBE_HALF} {_CUBE_HALF} {_CUBE_HALF}" mass="0.1" contype="1"
            conaffinity="2" friction="1.5 0.05 0.001" rgba="0.9 0.3 0.2 1"/>
    </body>"""
        if with_cube
        else ""
    )
    walls = []
    if bins:
        t, h = _BIN_WALL
        affinity = 3 if hand_hits_bins else 1  # the cube's contype is 1, the hand's and pads' 2
        for b, (cx, cy, half) in enumerate(bins):
            sides = (  # (side x, side y, half length along x, along y): the x walls cover the corners
                (1, 0, t, half + 2 * t),
                (-1, 0, t, half + 2 * t),
                (0, 1, half, t),
                (0, -1, half, t),
            )
            for w, (sx, sy, hx, hy) in enumerate(sides):
                x, y = cx + sx * (half + t), cy + sy * (half + t)
                walls.append(
                    f'<geom name="bin{b}_wall{w}" type="box" pos="{x:.9g} {y:.9g} {h}" '
                    f'size="{hx:.9g} {hy:.9g} {h}" contype="0" conaffinity="{affinity}" rgba="0.5 0.6 0.8 1"/>'
                )
    actuators = [
        f'<position joint="joint{i + 1}" kp="{800 if i < 4 else 300}" ctrlrange="{lo} {hi}" '
        f'forcerange="{-87 if i < 4 else -12} {87 if i < 4 else 12}"/>'
        for i, (lo, hi) in enumerate(_LIMITS)
    ]
    actuators += [
        f'<position joint="finger_{side}" kp="300" ctrlrange="0 {_FINGER_OPEN}" forcerange="-20 20"/>'
        for side in ("left", "right")
    ]
    return f"""
<mujoco model="panda_like_arm">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="0.002" integrator="implicitfast" iterations="4" ls_iterations="8"/>
  <default>
    <joint armature="0.1"/>
    <geom density="1000"/>
  </default>
  <worldbody>
    <light pos="0 0.4 2" dir="0 0 -1" directional="true" diffuse="0.8 0.8 0.8"/>
    <geom name="table" type="plane" size="1 1 0.05" pos="0 0.4 0" contype="0" conaffinity="3"
          rgba="0.75 0.7 0.6 1"/>
    <geom name="base" type="cylinder" fromto="0 0 0 0 0 0.2" size="0.07" contype="0" conaffinity="0"
          rgba="0.9 0.9 0.92 1"/>
    {"".join(chain_open)}{hand}{"".join(chain_close)}{cube}
    {"".join(walls)}
  </worldbody>
  <actuator>
    {"".join(actuators)}
  </actuator>
</mujoco>
"""


_TASKS = {
    # name: (with cube, bins, cube centre, cube noise, goal centre, goal noise, episode length);
    # the cube and goal regions are JaxGCRL's
    "reach": (False, (), None, 0.0, (0.0, 0.5, 0.3), 0.2, 100),
    "grasp": (True, (), (0.0, 0.6), 0.3, None, 0.0, 100),
    "push_easy": (True, (), (-0.1, 0.6), 0.1, (0.1, 0.6, _CUBE_HALF), 0.1, 150),
    "push_hard": (True, (), (-0.25, 0.65), 0.25, (0.25, 0.65, _CUBE_HALF), 0.25, 150),
    "binpick_easy": (True, _BINS["easy"], (-0.15, 0.6), 0.07, (0.17, 0.6, _CUBE_HALF), 0.005, 150),
    "binpick_hard": (True, _BINS["hard"], (-0.3, 0.6), 0.15, (0.3, 0.6, _CUBE_HALF), 0.15, 150),
}

# Evaluation tasks, as offsets in units of a task's noise (the half-width of its region) from the
# centres above: (cube start offset (x, y), goal offset (x, y, z), why). 0.9: just inside the
# region's edge. The cube's region lies towards -x of the goal's, so moving both to their far
# edges gives the longest move; the tasks also cover both sides in y. Reach (no cube) spans the
# goal box's centre and four of its corners, every direction of it; grasp's goal is the cube
# grasped where it rests, so its tasks place the cube (its centre and four edges: `_GRASP_WHY`).
_E = 0.9
_CUBE_TASKS = (
    ((0.0, 0.0), (0.0, 0.0, 0.0), "both regions' centres"),
    ((-_E, 0.0), (_E, 0.0, 0.0), "the regions' far edges along x: the longest move"),
    ((_E, 0.0), (_E, 0.0, 0.0), "both at their +x edge"),
    ((0.0, _E), (0.0, -_E, 0.0), "across, from +y to -y"),
    ((0.0, -_E), (0.0, _E, 0.0), "across, from -y to +y"),
)
_GRASP_WHY = ("the cube at its region's centre", "at its -x edge", "at its +x edge", "at its +y edge", "at its -y edge")
_REACH_TASKS = (
    ((0.0, 0.0), (0.0, 0.0, 0.0), "the goal box's centre"),
    ((0.0, 0.0), (_E, _E, _E), "its corner at +x +y +z"),
    ((0.0, 0.0), (-_E, -_E, _E), "its corner at -x -y +z"),
    ((0.0, 0.0), (_E, -_E, -_E), "its corner at +x -y -z"),
    ((0.0, 0.0), (-_E, _E, -_E), "its corner at -x +y -z"),
)


class Arm(GoalEnv):
    def __init__(
        self,
        task: str = "reach",
        backend: str = "mjx",
        episode_length: int | None = None,
        dense_reward: bool = False,
    ):
        set_cpu_xla_flags(f"arm_{task}", (FUSION_FLAG, SCHEDULER_FLAG))
        if task not in _TASKS:
            raise ValueError(f"task must be one of {sorted(_TASKS)}, got {task!r}")
        if backend != "mjx":
            raise ValueError(f"the arm tasks run on the mjx backend only (position actuators), got '{backend}'")
        with_cube, bins, cube_xy, cube_noise, goal_xyz, goal_noise, default_length = _TASKS[task]
        self.task = task
        # Without SCHEDULER_FLAG, more envs than this can hang on CPU (see set_cpu_xla_flags);
        # `VecEnv` refuses them then.
        self.cpu_max_envs_without_scheduler_flag = 128
        self._cube_xy, self._cube_noise = cube_xy, cube_noise
        self._goal_xyz, self._goal_noise = goal_xyz, goal_noise
        model = mujoco.MjModel.from_xml_string(arm_xml(with_cube, bins, hand_hits_bins=task == "binpick_hard"))
        sys = mjcf.load_model(model)
        self._tcp_site = model.site("tcp").id
        self._link7 = sys.link_names.index("link7")
        self._fingers = (sys.link_names.index("left_finger"), sys.link_names.index("right_finger"))
        self._cube_link = sys.link_names.index("cube") if with_cube else None
        home = np.zeros(7)
        home[list(_ACTED_JOINTS)] = _ACTED_RANGES.mean(axis=1)
        for joint, value in _HELD.items():
            home[joint] = value
        self._home = jnp.asarray(np.concatenate([home, [_FINGER_OPEN, _FINGER_OPEN]]), jnp.float32)
        if task == "reach":
            state_dim, goal_indices, thresh = 13, (7, 8, 9), 0.1
        elif task == "grasp":
            state_dim, goal_indices, thresh = 27, (0, 1, 2, 3), 0.05
        else:
            state_dim, goal_indices, thresh = 18, (0, 1, 2), 0.1
        self.tasks = self._make_tasks()
        super().__init__(
            sys,
            backend=backend,
            n_frames=25,
            state_dim=state_dim,
            goal_indices=goal_indices,
            goal_reach_thresh=thresh,
            episode_length=episode_length or default_length,
            dense_reward=dense_reward,
        )

    @property
    def action_size(self) -> int:
        return 5

    def _action_to_ctrl(self, action):
        low, high = jnp.asarray(_ACTED_RANGES[:, 0]), jnp.asarray(_ACTED_RANGES[:, 1])
        targets = low + (jnp.clip(action[:4], -1.0, 1.0) + 1.0) * 0.5 * (high - low)
        fingers = jnp.where(action[4] > 0, 0.0, _FINGER_OPEN)
        ctrl = self._home[:7].at[jnp.array(_ACTED_JOINTS)].set(targets)
        return jnp.concatenate([ctrl, jnp.stack([fingers, fingers])])

    def _make_tasks(self) -> tuple[Task, ...]:
        """The task's five evaluation tasks (`_CUBE_TASKS`, `_REACH_TASKS`) in numbers."""
        tasks = []
        for k, (cube_offset, goal_offset, why) in enumerate(_REACH_TASKS if self.task == "reach" else _CUBE_TASKS):
            start = ()
            if self._cube_xy is not None:
                start = tuple(round(c + self._cube_noise * o, 4) for c, o in zip(self._cube_xy, cube_offset))
            if self.task == "grasp":  # the fingertips at the resting cube's centre, closed to its width
                goal = (*start, _CUBE_HALF, 2 * _CUBE_HALF)
            else:
                goal = tuple(round(c + self._goal_noise * o, 4) for c, o in zip(self._goal_xyz, goal_offset))
            tasks.append(Task(f"task{k + 1}", goal, start, _GRASP_WHY[k] if self.task == "grasp" else why))
        return tuple(tasks)

    def _sample_init(self, key, task=None):
        q_key, cube_key, goal_key = jax.random.split(key, 3)
        q = self._home + jnp.concatenate([jax.random.uniform(q_key, (7,), minval=-0.05, maxval=0.05), jnp.zeros(2)])
        qd = jnp.zeros(self.sys.qd_size())
        if task is not None:
            start, goal = task
            if self._cube_link is not None:
                q = jnp.concatenate([q, start, jnp.array([_CUBE_HALF, 1.0, 0.0, 0.0, 0.0])])
            return q, qd, goal
        goal = None
        if self._cube_link is not None:
            cube_xy = jnp.asarray(self._cube_xy) + self._cube_noise * jax.random.uniform(
                cube_key, (2,), minval=-1.0, maxval=1.0
            )
            cube = jnp.concatenate([cube_xy, jnp.array([_CUBE_HALF, 1.0, 0.0, 0.0, 0.0])])
            q = jnp.concatenate([q, cube])
            if self.task == "grasp":
                goal = jnp.concatenate([cube_xy, jnp.array([_CUBE_HALF, 2 * _CUBE_HALF])])
        if goal is None:
            goal = jnp.asarray(self._goal_xyz) + self._goal_noise * jax.random.uniform(
                goal_key, (3,), minval=-1.0, maxval=1.0
            ) * jnp.array([1.0, 1.0, 1.0 if self.task == "reach" else 0.0])
        return q, qd, goal

    # ------------------------------------------------------------------ observation
    def end_effector(self, pipeline_state) -> tuple[jax.Array, jax.Array]:
        """World position and velocity of the end effector: the origin of link 7's frame, at the
        wrist, 0.21 m short of the point between the fingertips (JaxGCRL's end-effector point).

        Not the fingertips: with joints 3, 5 and 7 held, the point between the fingertips can get
        within 0.1 m of only 73% of `arm_reach`'s goals (their box reaches 0.5 m up, close to the
        base), where link 7's origin gets within 0.1 m of all of them (`results/notes/env_fidelity.md`).
        """
        return pipeline_state.x.pos[self._link7], pipeline_state.xd.vel[self._link7]

    def fingertips(self, pipeline_state) -> tuple[jax.Array, jax.Array]:
        """World positions of the two finger pads' tips (inner face, tip height)."""
        tips = []
        for link in self._fingers:
            x = pipeline_state.x.take(link)
            tips.append(x.pos + brax_math.rotate(jnp.array([0.0, 0.0, 0.045]), x.rot))
        return tips[0], tips[1]

    def _state_obs(self, pipeline_state):
        q = pipeline_state.q
        joints = q[:7]
        eef_pos, eef_vel = self.end_effector(pipeline_state)
        if self.task == "reach":
            return jnp.concatenate([joints, eef_pos, eef_vel])
        opening = q[7:8] + q[8:9]
        force = jnp.mean(pipeline_state.actuator_force[7:9], keepdims=True)
        cube = pipeline_state.x.pos[self._cube_link]
        if self.task == "grasp":
            left, right = self.fingertips(pipeline_state)
            middle = (left + right) / 2
            return jnp.concatenate([middle, opening, cube, joints, eef_pos, eef_vel, force, left, right])
        return jnp.concatenate([cube, joints, eef_pos, eef_vel, opening, force])

    def _goal_metrics(self, state_obs, goal):
        if self.task != "grasp":
            return super()._goal_metrics(state_obs, goal)
        dist = jnp.linalg.norm(state_obs[:3] - goal[:3])
        opening_ok = jnp.abs(state_obs[3] - goal[3]) < 0.02
        return dist, jnp.logical_and(dist < self.goal_reach_thresh, opening_ok).astype(jnp.float32)

    def goal_marker_xyz(self, goal):
        return goal[:3]

    def render_camera(self, pipeline_state):
        return dict(lookat=(0.0, 0.45, 0.1), distance=1.6, azimuth=60.0, elevation=-30.0)
