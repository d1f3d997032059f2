"""Every env beside JaxGCRL's definition of the same task: the page to read before comparing numbers.

    python results/notes/env_fidelity.py --output results/notes/env_fidelity.md
    python results/notes/env_fidelity.py --env-ids pusher_easy ant          # a few envs, to the terminal

For each env id, the left column is JaxGCRL's task as its source defines it (facts read from
the repository MichalBortkiewicz/JaxGCRL, `jaxgcrl/envs/*.py` and their XML assets, and brax's
packaged XMLs; written down in `BENCHMARK` below with the file each comes from). The right
column is ours, measured from the code: the start and goal regions from `--resets` resets (in
world coordinates: the achieved goal at reset, the commanded goal, and the distance between
them), the success threshold, the control step, the episode length, the observation layout,
the termination rule and which geoms can touch which (MuJoCo's contype/conaffinity rule on the
env's own model). Below each table, every difference and its reason, with the measurement
behind it where there is one.

JaxGCRL evaluates on random goals only; the "named tasks" row says what each env's five named
evaluation tasks are. The mazes that OGBench also has (its medium, large and giant maps: our
big, hardest and giant) get a last section beside OGBench's own envs, read from its installed
package (`ogbench`, a dev dependency): grid, tasks, episode length, cell size, noise, goal
tolerance and control step, each env made and read, not transcribed. The giant ids have no
JaxGCRL counterpart and appear only there.
"""

from __future__ import annotations

import datetime
import importlib.util
import pathlib
import platform
import sys
from dataclasses import dataclass

import jax
import numpy as np
import tyro

import envs


def load_sibling(name: str):
    """Import results/notes/{name}.py (this script's folder is not a package)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, pathlib.Path(__file__).with_name(f"{name}.py"))
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


ANT_JAXGCRL = {
    "dt": "0.05 s (spring: 0.005 x 10; generalized/mjx: 0.01 x 5; mjx: Newton, 1 iteration, 4 line searches)",
    "episode": "1001 (run default)",
    "termination": "torso z outside [0.2, 1.0]",
    "obs": "q without the target's 2 joints (15), qd without them (14): 29",
}
MAZE_GOALS = "a G cell centre, uniform (cell {s} m; row i is world x)"

# JaxGCRL's maze grids, row by row (1 wall, R the start cell, G a goal cell; row i is world x):
# U_MAZE, BIG_MAZE and HARDEST_MAZE, the same in jaxgcrl/envs/ant_maze.py, humanoid_maze.py and
# simple_maze.py. Ours are envs/maze.py's LAYOUTS; `grid_difference` compares them cell by cell.
JAXGCRL_MAZES = {
    "u": ("11111", "1RGG1", "111G1", "1GGG1", "11111"),
    "big": ("11111111", "1RG11GG1", "1GG1GGG1", "11GGG111", "1GG1GGG1", "1G1GG1G1", "1GGG1GG1", "11111111"),
    "hardest": (
        "111111111111",
        "1RGGG1GGGGG1",
        "1G11G1G1G1G1",
        "1GGGGGG1GGG1",
        "1G1111G111G1",
        "1GG1G1GGGGG1",
        "11G1G1G1G111",
        "1GG1GGG1GGG1",
        "111111111111",
    ),
}

# JaxGCRL's task definitions, per env id. Sources: jaxgcrl/envs/{reacher,half_cheetah,pusher,
# ant,ant_ball,ant_push,ant_maze,humanoid,humanoid_maze,simple_maze}.py,
# jaxgcrl/envs/manipulation/arm_*.py, jaxgcrl/utils/env.py (default backends),
# jaxgcrl/utils/config.py (episode_length 1001), their assets/*.xml, and brax's reacher.xml and
# pusher.xml (which JaxGCRL loads).
BENCHMARK = {
    "reacher": {
        "backend": "generalized",
        "goal": "fingertip target at radius 0.2 U(0,1), angle U(0, 2 pi), z = 0.01",
        "start": "arm q = U(-0.1, 0.1), qd = U(-0.005, 0.005)",
        "success": "|fingertip - target| < 0.05 (3-D, both at z = 0.01)",
        "dt": "0.02 s (generalized/mjx: 0.01 x 2; spring/positional: 0.005 x 4, gear 25)",
        "episode": "1001 (run default)",
        "obs": "cos q (2), sin q (2), tip xyz (3), tip velocity (3): 10; goal = tip xyz",
        "termination": "none",
        "contacts": "none (every geom contype 0, conaffinity 0)",
    },
    "cheetah": {
        "backend": "mjx (its create_env ignores --backend)",
        "goal": "root x = 5, fixed",
        "start": "q = init + U(-0.1, 0.1), qd = 0.1 N(0, 1)",
        "success": "|root x - 5| < 0.5",
        "dt": "0.05 s (mjx/generalized: 0.01 x 5; spring/positional: 0.003125 x 16)",
        "episode": "1001 (run default)",
        "obs": "q without the target (9), qd without it (9): 18; goal = root x",
        "termination": "none",
        "contacts": "floor with head, back thigh, back foot, front thigh, front foot",
    },
    "pusher": {
        "backend": "generalized",
        "goal": "easy: x ~ U[0.25, 0.65], y ~ U[-0.60, -0.30); hard: x ~ U[-0.10, 0.90], y ~ U[-0.70, 0.30]; "
        "the goal body at z = -0.323",
        "start": "puck x ~ U[0.25, 0.65], y ~ U[-0.35, -0.05), z = -0.275; within 0.17 m of the goal its "
        "offset from home is scaled to length 0.17; arm q = 0, qd = U(-0.005, 0.005)",
        "success": "3-D |puck - goal| < 0.1 on the state *before* the step (0.088 m in the plane, the goal "
        "being 4.8 cm lower)",
        "dt": "0.05 s (generalized/mjx: 0.01 x 5; spring/positional: 0.001 x 50, gear 20)",
        "episode": "1001 (run default)",
        "obs": "7 joint q, wrist-flex link's centre of mass (3), puck xyz (3), 7 joint qd: 20; goal = puck xyz",
        "termination": "none",
        "contacts": "table with the wrist capsules; puck with the wrist capsules (the puck and the table do "
        "not touch; no gravity)",
        "actions": "the 7 motor controls directly (XML range [-2, 2], gear 1): a tanh policy uses half",
    },
    "ant": {
        **ANT_JAXGCRL,
        "backend": "spring",
        "goal": "torso xy on the circle of radius 10 around the origin",
        "start": "q = init + U(-0.1, 0.1) (quaternion included), qd = 0.1 N(0, 1)",
        "success": "|torso xy - goal| < 0.5",
        "contacts": "only the feet with the floor",
    },
    "ant_ball": {
        **ANT_JAXGCRL,
        "backend": "spring",
        "goal": "ball xy on the circle of radius 5",
        "start": "ant as `ant`; ball = 0.2 goal + (cos a, sin b), a random, b the goal's angle (a slip "
        "for sin a); a sphere of radius 0.5 on x/y slides (it slides, never rolls)",
        "success": "|ball xy - goal| < 0.5",
        "obs": "ant's 29 + ball xy (2): 31; goal = ball xy",
        "contacts": "floor with the feet and the ball; ball with the torso and the feet",
    },
    "ant_push": {
        **ANT_JAXGCRL,
        "backend": "mjx (asserted)",
        "dt": "0.05 s (mjx 0.01 x 5; Newton, 4 iterations, 8 line searches)",
        "goal": "torso xy in (16, 8) or (8, 16) + 2 U(0, 1)^2",
        "start": "torso at (0, 0) + U(-0.1, 0.1); block at (8, 8) + noise",
        "success": "|torso xy - goal| < 0.5",
        "obs": "ant's 29 + block xy (2): 31; goal = torso xy",
        "contacts": "floor with the feet; fixed blocks with the torso, feet and the movable block",
    },
    "ant_maze": {
        **ANT_JAXGCRL,
        "backend": "spring",
        "grid": "the id's U_MAZE, BIG_MAZE or HARDEST_MAZE (in the script: JAXGCRL_MAZES)",
        "goal": MAZE_GOALS.format(s=4),
        "start": "torso at the R cell centre (4, 4), exactly; z, joints and qd as `ant`",
        "success": "|torso xy - goal| < 0.5",
        "contacts": "floor with the feet; walls with the torso, the four hip capsules and the feet",
    },
    "humanoid": {
        "backend": "spring",
        "goal": "torso at r ~ U[1, 5], angle U(0, 2 pi), z = 1.25",
        "start": "the XML's standing pose, no noise, at rest",
        "success": "3-D |torso xyz - goal| < 0.5",
        "dt": "0.015 s (spring/positional: 0.0015 x 10, gears 350 x 11 and 100 x 6; generalized/mjx: 0.003 x 5)",
        "episode": "1001 (run default)",
        "obs": "q (26) and qd (25) with the target's joints, link inertias (120), centre-of-mass "
        "velocities (72), actuator forces (25): 268",
        "termination": "torso z outside [1.0, 2.0]",
        "contacts": "every body geom with the floor (its XML's default contype 1)",
        "actions": "rescaled from [-1, 1] to the control range [-0.4, 0.4]",
    },
    "humanoid_maze": {
        "backend": "spring",
        "grid": "the id's U_MAZE, BIG_MAZE or HARDEST_MAZE (in the script: JAXGCRL_MAZES)",
        "goal": MAZE_GOALS.format(s=2) + ", z = 1.25",
        "start": "torso at (2, 2), standing, no noise",
        "success": "3-D |torso xyz - goal| < 0.5; reward always dense",
        "dt": "0.015 s, as `humanoid`",
        "episode": "1001 (run default)",
        "obs": "as `humanoid`: 268",
        "termination": "torso z outside [1.0, 2.0]",
        "contacts": "every body geom with the floor and the walls (1 m tall)",
        "actions": "as `humanoid`",
    },
    "simple_maze": {
        "backend": "spring",
        "grid": "the id's U_MAZE, BIG_MAZE or HARDEST_MAZE (in the script: JAXGCRL_MAZES)",
        "goal": MAZE_GOALS.format(s=4),
        "start": "ball at the R cell centre (4, 4), velocity 0.1 N(0, 1)",
        "success": "|ball xy - goal| < 0.5; reward always dense (-dist + 1 - 0.5 |a|^2)",
        "dt": "0.05 s (spring/positional: 0.005 x 10; generalized/mjx: 0.01 x 5)",
        "episode": "1001 (run default)",
        "obs": "x, y, vx, vy: 4; goal = xy",
        "termination": "none (its z test can never fire)",
        "contacts": "the ball with the walls (2 m tall)",
        "actions": "sphere radius 0.25, density 5 (0.327 kg), slide joints with armature 1, damping 0, "
        "motors of gear 5; its XML's spring_mass_scale 1 gives the ball unit mass on spring",
        # Measured with JaxGCRL's env at its pins, by results/notes/maze_walls.py --peer-root
        # (results/notes/maze_walls.md).
        "throttle": "measured with its env at its pins (results/notes/maze_walls.md): 0.250 m/s per step "
        "(5.00 m/s^2); stops with its centre 0.25 m from the wall's face "
        "(y = 13.750 m in the U maze, 9.750 m in the big maze)",
        "walls": "measured (maze_walls.md), big maze: 0 of 25,600 samples in a wall or outside; "
        "largest velocity component 7.2 m/s",
    },
    "arm_reach": {
        "backend": "mjx (the only one)",
        "goal": "end effector at (0, 0.5, 0.3) + 0.2 U(-1, 1)^3",
        "start": "Franka Panda (meshes) at a fixed pose, no noise",
        "success": "3-D |end effector - goal| < 0.1",
        "dt": "0.05 s (0.002 x 25, implicitfast, 6 iterations, 12 line searches)",
        "episode": "1001 (run default); its docs recommend 100",
        "obs": "7 joint q, end-effector xyz (3), its velocity (3): 13",
        "termination": "none",
        "contacts": "explicit pairs: table with the hand",
        "actions": "absolute targets of joints 1, 2, 4, 6 (4 values)",
    },
    "arm_grasp": {
        "backend": "mjx (the only one)",
        "goal": "both fingertips at the cube's sides (re-set every step to follow the cube) and the "
        "gripper opening at a fixed target",
        "start": "cube at (0, 0.6) + 0.3 U(-1, 1)^2",
        "success": "|cube - fingertip midpoint| < 0.05 and the opening within 0.02 of its target (the "
        "code reads the target from an index past the goal's end; JAX clamps it to 0.075)",
        "dt": "0.05 s, as arm_reach",
        "episode": "1001 (run default); its docs recommend 100",
        "obs": "cube xyz, 7 joint q, end-effector xyz and velocity, both fingertips, their distance, "
        "gripper force: 24; goal 7",
        "termination": "none",
        "contacts": "explicit pairs: cube, table, hand and fingers",
        "actions": "4 joint targets + gripper (> 0 closes)",
    },
    "arm_push": {
        "backend": "mjx (the only one)",
        "goal": "easy (0.1, 0.6, 0.03) + 0.1 U(-1, 1)^2; hard (0.25, 0.65, 0.03) + 0.25 U(-1, 1)^2",
        "start": "cube: easy (-0.1, 0.6) + 0.1 U(-1, 1)^2; hard (-0.25, 0.65) + 0.25 U(-1, 1)^2 (6 cm cube)",
        "success": "3-D |cube - goal| < 0.1",
        "dt": "0.05 s, as arm_reach",
        "episode": "1001 (run default); its docs recommend 150",
        "obs": "cube xyz, 7 joint q, end-effector xyz and velocity, finger distance, gripper force: 18",
        "termination": "none",
        "contacts": "explicit pairs: cube with table, hand, fingers; table with hand and fingers",
        "actions": "4 joint targets + gripper (> 0 closes)",
    },
    "arm_binpick": {
        "backend": "mjx (the only one)",
        "goal": "easy (0.17, 0.6, 0.03) + 0.005 U(-1, 1)^2; hard (0.3, 0.6, 0.03) + 0.15 U(-1, 1)^2",
        "start": "cube: easy (-0.15, 0.6) + 0.07 U(-1, 1)^2; hard (-0.3, 0.6) + 0.15 U(-1, 1)^2; bins at x = "
        "-+0.17 (easy) or -+0.3 (hard), y = 0.6, inner half-width 0.135 (easy) or 0.185 m (hard), walls 1 cm "
        "thick and 6.6 cm tall",
        "success": "3-D |cube - goal| < 0.1",
        "dt": "0.05 s, as arm_reach",
        "episode": "1001 (run default); its docs recommend 150",
        "obs": "as arm_push: 18",
        "termination": "none",
        "contacts": "explicit pairs: cube with the bin walls, table, hand and fingers; table with hand and "
        "fingers; hard only: hand and fingers with the bin walls (easy: the bins touch the cube only)",
        "actions": "4 joint targets + gripper (> 0 closes)",
    },
}

FAMILY = {
    "pusher_easy": "pusher",
    "pusher_hard": "pusher",
    **{f"ant_{m}_maze": "ant_maze" for m in ("u", "big", "hardest")},
    **{f"humanoid_{m}_maze": "humanoid_maze" for m in ("u", "big", "hardest")},
    **{f"simple_{m}_maze": "simple_maze" for m in ("u", "big", "hardest")},
    "arm_push_easy": "arm_push",
    "arm_push_hard": "arm_push",
    "arm_binpick_easy": "arm_binpick",
    "arm_binpick_hard": "arm_binpick",
}

EPISODE = (
    "Our default episode is shorter than JaxGCRL's run default of 1001 (its docs recommend {n} for this "
    "task); pass `--episode-length 1001` to compare at its setting. The default update ratio "
    "`num_envs * (episode_length - 1) / batch_size` scales with it."
)
ANT_CONTACT = (
    "Walls stop the torso and the feet, not the four hip capsules: making the hips collide halves the "
    "env throughput, and thrown at a wall the legs get at most 2 cm less far into it (results/notes/ant_contacts.md). "
    "The floor touches "
    "only the feet in both, so a flipped ant terminates (tests/test_env_physics.py::test_flipped_ant_terminates)."
)

# Every difference and why, per env id (the family's list applies to each of its ids).
DIFFERENCES = {
    "reacher": [
        "Episode 50 against JaxGCRL's run default 1001: reacher's goals lie within reach in a few steps, "
        "and 50 is the length JaxGCRL's own reacher comparisons use for throughput (episode 51). Pass `--episode-length 1001` to match the run default.",
        "The target body is removed from the model: the goal lives in the observation only (no physics cost).",
    ],
    "cheetah": ["Episode 1000 against the run default 1001 (JaxGCRL's scripts use 1000)."],
    "pusher": [
        "Episode 100 against JaxGCRL's run default 1001 (a push takes a few dozen steps); pass "
        "`--episode-length 1001` to compare at its setting. The default update ratio `num_envs * "
        "(episode_length - 1) / batch_size` scales with it.",
        "The goal sits at the puck's height (z = -0.275), not 4.8 cm below it: JaxGCRL's commanded goals "
        "lie 4.8 cm away from every goal the puck can achieve, so hindsight goals (z = -0.275) and "
        "commanded ones never match. Our success radius in the table plane is 0.1 m, JaxGCRL's 0.088 m.",
        "Success is measured on the state after the step (JaxGCRL: before it, one step late).",
        "A puck drawn within 0.17 m of its goal is moved straight away from the goal to 0.17 m (JaxGCRL "
        "scales the puck's offset from its home to length 0.17, which can leave it closer).",
        "The fingertip entry of the state is the point between the finger spheres (JaxGCRL's is the "
        "wrist-flex link's centre of mass, about 0.1 m behind it).",
    ],
    "ant": ["Episode 1000 against the run default 1001.", ANT_CONTACT],
    "ant_ball": [
        "Episode 1000 against the run default 1001.",
        "The ball is a free sphere of radius 0.25 m and 0.2 kg that rolls, starting 1.5 m from the ant "
        "on the line to the goal (+-0.25 m); JaxGCRL's is a radius-0.5 sphere on x/y slides that slides "
        "without rolling. Default backend mjx: brax's spring pipeline gives every body of the ant XML "
        "unit mass and inertia, and a kicked ball stops within 0.2 s (results/notes/env_throughput.md). Not yet "
        "aligned: JaxGCRL's slide-joint ball on spring is a different task, and no learning comparison "
        "between the two has been run.",
        "The ball's velocity (2) is in the state too: state_dim 33 against 31.",
        ANT_CONTACT,
    ],
    "ant_push": [
        "Episode 1000 against the run default 1001.",
        "Our arena: a walled square with an L-shaped fence around the start; a 2.8 m block (0.5 kg) fills "
        "its only opening. JaxGCRL's: seven fixed blocks and a movable 7.2 m block of 0.2 g. Same goal "
        "regions, same start; the layouts differ (ours is generated from a table in envs/ant.py).",
        "The block's velocity (2) is in the state too: state_dim 33 against 31.",
        "`--backend spring` and `positional` are refused: they ignore joint damping, which is the block's "
        "only friction (JaxGCRL asserts mjx for this task too).",
        ANT_CONTACT,
    ],
    "ant_maze": ["Episode 1000 against the run default 1001.", ANT_CONTACT],
    "humanoid": [
        "Episode 1000 against the run default 1001.",
        "The state leaves out the target's two joints (JaxGCRL leaks the goal into the state) and the "
        "actuator forces (a fixed function of the previous action): 223 entries against 268. The link "
        "inertia and centre-of-mass velocity features equal brax's own humanoid's "
        "(tests/test_env_physics.py::test_humanoid_body_features_equal_brax_humanoids).",
        "Only the feet touch the floor (brax's humanoid XML); JaxGCRL's XML lets every body geom touch it. "
        "The episode terminates when the torso drops below 1.0 m, before the trunk can reach the floor.",
    ],
    "humanoid_maze": [
        "Episode 1000 against the run default 1001.",
        "The state leaves out the target's two joints and the actuator forces: 223 against 268 (see `humanoid`).",
        "Walls stop the torso, waist, pelvis and feet (JaxGCRL: every body geom); only the feet touch the floor.",
        "Reward is sparse by default (JaxGCRL's humanoid mazes are always dense; `dense_reward=True` gives -dist).",
    ],
    "simple_maze": [
        "Episode 1000 against the run default 1001.",
        "Reward is sparse by default (JaxGCRL's point mazes are always dense; `dense_reward=True` gives -dist; "
        "CRL ignores rewards).",
        "The ball is at z = 0.25 instead of 0.75 (it has no z joint and touches nothing but the walls, "
        "so only the picture changes).",
        "Until 2026-12-07 our XML lacked JaxGCRL's brax parameters (spring_mass_scale 1 among them), so on "
        "spring the ball had its 0.327 kg: 15.3 m/s^2 at full throttle, speeds to 65-94 m/s under random "
        "bang-bang actions, and 0.4-2.5% of those states in a wall or outside the maze. Every point-mass result "
        "before that date is on that other task (results/notes/maze_walls.md).",
    ],
    "arm_reach": [
        EPISODE.format(n="100") + " Ours is 100.",
        "Our arm is generated from the Panda's published kinematic parameters with capsules and boxes "
        "(no meshes), with its own position gains and the Panda's joint torque limits (87 Nm for joints 1-4, "
        "12 Nm for 5-7, as JaxGCRL's model has; without them, until 2026-12-02, random actions swung the end "
        "effector at up to 13 m/s and flung the cube metres away, where now it stays under 2 m/s); JaxGCRL "
        "loads a mesh model of the Panda. The end-effector "
        "point is the same: the origin of link 7's frame (the Panda's kinematic parameters put it at the same "
        "place). It is not the point between the fingertips, 0.21 m further out along the gripper: from there, "
        "27% of the goals are more than 0.1 m from anywhere the four driven joints can put it (until "
        "2026-11-22 ours was that point; `tests/test_env_physics.py` checks that all goals are in reach).",
        "Starts from the zero action's pose + U(-0.05, 0.05) rad per joint (JaxGCRL: a fixed pose).",
    ],
    "arm_grasp": [
        EPISODE.format(n="100") + " Ours is 100.",
        "Goal: the cube's start position and a 5 cm opening; achieved goal: the fingertip midpoint and "
        "the opening. JaxGCRL re-sets its goal to follow the cube every step and reads the opening "
        "target past its goal vector's end; ours is a fixed, well-defined goal.",
        "The arm is our own model (see arm_reach).",
    ],
    "arm_push": [
        EPISODE.format(n="150") + " Ours is 150.",
        "The arm is our own model (see arm_reach); the cube is 5 cm (JaxGCRL: 6 cm), so the goals lie at "
        "its resting height, z = 0.025 (JaxGCRL: 0.03, its cube's).",
    ],
    "arm_binpick": [
        EPISODE.format(n="150") + " Ours is 150.",
        "The arm is our own model (see arm_reach); the cube is 5 cm (JaxGCRL: 6 cm), so the goals lie at "
        "its resting height, z = 0.025 (JaxGCRL: 0.03, its cube's).",
    ],
}


# Our maze layouts that are OGBench's maze maps (ogbench 1.2.2, locomaze/maze.py), and OGBench's
# env name prefix for each body.
OGBENCH_LAYOUTS = {"big": "medium", "hardest": "large", "giant": "giant"}
OGBENCH_BODIES = {"simple": "pointmaze", "ant": "antmaze", "humanoid": "humanoidmaze"}
JAXGCRL_IDS = tuple(i for i in envs.ENV_IDS if "_giant_" not in i)  # JaxGCRL has no giant maze


@dataclass(frozen=True)
class Args:
    env_ids: tuple[str, ...] = JAXGCRL_IDS
    """env ids to report beside JaxGCRL (the OGBench section always lists every maze it shares)"""
    resets: int = 1000
    """resets per env for the measured start and goal regions"""
    output: str = ""
    """also write the markdown page to this file"""


def box(points: np.ndarray) -> str:
    """A per-coordinate range, or the distinct points when there are few."""
    distinct = np.unique(np.round(points, 4), axis=0)
    if len(distinct) <= 8:
        return f"{len(distinct)} point(s): " + ", ".join("(" + ", ".join(f"{v:g}" for v in p) + ")" for p in distinct)
    if len(distinct) <= 60:
        return f"{len(distinct)} distinct points in " + box_range(points)
    return box_range(points)


def box_range(points: np.ndarray) -> str:
    names = "xyzw"
    return ", ".join(f"{names[k]} [{points[:, k].min():.3f}, {points[:, k].max():.3f}]" for k in range(points.shape[1]))


FIXED = ("bin walls", "floor", "table", "walls")  # listed first in a contact pair


def contacts(env) -> str:
    """Which named geom groups can touch which, by MuJoCo's contype/conaffinity rule."""
    model = env.sys.mj_model

    def group(i):
        name = model.geom(i).name or model.body(model.geom_bodyid[i]).name
        if name.startswith("wall_"):
            return "walls"
        if name.startswith("bin") and "_wall" in name:  # the arm's bins
            return "bin walls"
        return name

    def static(i):
        return model.geom_bodyid[i] == 0

    active = [i for i in range(model.ngeom) if model.geom_contype[i] or model.geom_conaffinity[i]]
    pairs = set()
    for a in active:
        for b in active:
            if a >= b or (static(a) and static(b)) or model.geom_bodyid[a] == model.geom_bodyid[b]:
                continue
            if (model.geom_contype[a] & model.geom_conaffinity[b]) or (
                model.geom_contype[b] & model.geom_conaffinity[a]
            ):
                pairs.add(tuple(sorted((group(a), group(b)))))
    if not pairs:
        return "none"
    by_first = {}
    for a, b in sorted(pairs):
        first, other = (a, b) if a in FIXED else (b, a) if b in FIXED else (a, b)
        by_first.setdefault(first, []).append(other)
    return "; ".join(f"{k} with {', '.join(sorted(set(v)))}" for k, v in sorted(by_first.items()))


def grid_difference(ours: tuple[str, ...], theirs: tuple[str, ...]) -> str:
    """'the same grid' or the cells where two grids differ, as (row, column): ours / theirs."""
    if [len(row) for row in ours] != [len(row) for row in theirs]:
        return f"a different shape: {len(ours)} rows of {len(ours[0])} against {len(theirs)} of {len(theirs[0])}"
    cells = [
        f"({i}, {j}): {a} / {b}"
        for i, (row, their_row) in enumerate(zip(ours, theirs))
        for j, (a, b) in enumerate(zip(row, their_row))
        if a != b
    ]
    return "the same grid, cell by cell" if not cells else "differs at " + ", ".join(cells) + " (ours / JaxGCRL's)"


def measure(env_id: str, resets: int) -> dict:
    env = envs.make(env_id)
    first = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(0), resets))
    achieved = np.asarray(env.achieved_goal(first.obs[:, : env.state_dim]))
    goal = np.asarray(first.info["goal"])
    distance = np.linalg.norm(achieved[:, :3] - goal[:, :3], axis=1) if env_id != "arm_grasp" else None
    z = env.healthy_z_range
    maze = getattr(env, "maze", None)
    throttle = walls = "-"
    if env_id.startswith("simple_"):  # the point mass: full throttle and the bang-bang walk
        maze_walls = load_sibling("maze_walls")
        gain, end_y, end_speed = maze_walls.full_throttle(env, maze.start_xy)
        throttle = (
            f"{gain:.3f} m/s per step ({gain / env.dt:.2f} m/s^2); "
            f"after 60 steps y = {end_y:.3f} m, speed {end_speed:.3f} m/s"
        )
        walk = maze_walls.summarise(maze, *maze_walls.bang_bang_walk(env, 0, 256, 1000, 10))
        walls = (
            f"{walk['escaped']} of {walk['samples']:,} samples in a wall or outside; "
            f"largest velocity component {walk['max_velocity']:.1f} m/s"
        )
    if maze is not None and maze.layout in OGBENCH_LAYOUTS:
        tasks = f"5: OGBench's `{OGBENCH_LAYOUTS[maze.layout]}` tasks, cell for cell (last section)"
    else:
        tasks = "5 (ours; docs/environments.md)"
    return {
        "tasks": tasks,
        "throttle": throttle,
        "walls": walls,
        "grid": "-" if maze is None else f"`{maze.layout}`: " + grid_difference(maze.grid, JAXGCRL_MAZES[maze.layout]),
        "backend": env.backend,
        "goal": box(goal),
        "start": "achieved goal at reset: " + box(achieved),
        "distance": "-" if distance is None else f"[{distance.min():.3f}, {distance.max():.3f}] m",
        "success": f"dist < {env.goal_reach_thresh:g}",
        "dt": f"{env.dt:g} s ({env.sys.opt.timestep:g} x {env._n_frames})",
        "episode": str(env.episode_length),
        "obs": f"state_dim {env.state_dim}, goal_indices {env.goal_indices} (layout: envs/{type(env).__module__.split('.')[-1]}.py)",
        "termination": "none" if z is None else f"torso z outside [{z[0]:g}, {z[1]:g}]",
        "contacts": contacts(env),
    }


ROWS = [
    ("default backend", "backend"),
    ("maze grid", "grid"),
    ("goal region (world)", "goal"),
    ("start region (world)", "start"),
    ("start to goal", "distance"),
    ("success", "success"),
    ("control step", "dt"),
    ("episode length", "episode"),
    ("observation", "obs"),
    ("termination", "termination"),
    ("what touches what", "contacts"),
    ("named evaluation tasks", "tasks"),
    ("full throttle along +y from the start, at rest", "throttle"),
    ("256 envs, 1000 steps of random bang-bang actions", "walls"),
]


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def section(env_id: str, ours: dict) -> str:
    family = FAMILY.get(env_id, env_id)
    theirs = BENCHMARK[family]
    lines = [f"## `{env_id}`", "", "| | JaxGCRL | ours (measured) |", "|---|---|---|"]
    for label, key in ROWS:
        if key in ("grid", "throttle", "walls") and ours[key] == "-":
            continue  # not a maze, or not the point mass
        theirs_text = theirs.get(key, "none: evaluations draw random goals" if key == "tasks" else "-")
        lines.append(f"| {label} | {cell(theirs_text)} | {cell(ours[key])} |")
    if "actions" in theirs:
        lines.append(f"| body and actions | {cell(theirs['actions'])} | see the env file's docstring |")
    lines += ["", "Differences:", ""]
    lines += [f"* {d}" for d in DIFFERENCES[family]]
    return "\n".join(lines) + "\n"


def ogbench_section() -> str:
    """Our mazes beside OGBench's envs of the same map, one row per env id, each side read from
    the env itself (OGBench's through gymnasium)."""
    try:
        import gymnasium
        import ogbench.locomaze  # noqa: F401  (registers its envs)
    except ImportError:
        return "## Against OGBench\n\n`ogbench` is not installed (`pip install -r requirements-dev.txt`).\n"
    lines = [
        "## Against OGBench: the mazes it shares",
        "",
        "OGBench's `medium`, `large` and `giant` maps are our `big`, `hardest` and `giant` layouts, mirrored "
        "across the diagonal (OGBench puts a cell's row on world y, we put it on world x): the same cells, "
        "paths and tasks. Each cell below is ours / OGBench's, both read from the envs.",
        "",
        "| env id | OGBench env | grid | tasks (start cell, goal cell) | episode length | cell | task noise |"
        " goal tolerance | control step | body |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for layout, name in OGBENCH_LAYOUTS.items():
        for body, prefix in OGBENCH_BODIES.items():
            env_id = f"{body}_{layout}_maze"
            ours = envs.make(env_id)
            spec = gymnasium.spec(f"{prefix}-{name}-v0")
            theirs = gymnasium.make(spec.id).unwrapped
            grid = np.array([[c == "1" for c in row] for row in ours.maze.grid], int)
            same_grid = "the same" if np.array_equal(grid, theirs.maze_map) else "DIFFERENT"
            their_tasks = [(tuple(t["init_ij"]), tuple(t["goal_ij"])) for t in theirs.task_infos]
            our_tasks = [tuple(map(tuple, task)) for task in envs.maze.TASKS[layout]]
            same_tasks = "the same 5, in order" if our_tasks == their_tasks else "DIFFERENT"
            s, unit = ours.maze.cell_size, theirs._maze_unit
            lines.append(
                f"| `{env_id}` | `{spec.id}` | {same_grid} | {same_tasks} | "
                f"{ours.episode_length} / {spec.max_episode_steps} | {s:g} m / {unit:g} m | "
                f"+- {s / 4:g} m / +- {theirs._noise * unit / 4:g} m | "
                f"{ours.goal_reach_thresh:g} m / {theirs._goal_tol:g} m | {float(ours.dt):g} s / {theirs.dt:g} s | "
                f"{type(ours).__name__} on brax ({ours.backend}) / OGBench's MuJoCo {prefix[: -len('maze')]} |"
            )
    lines += [
        "",
        "What differs, and why it stays: the bodies and their dynamics are ours (brax's ant and humanoid, "
        "JaxGCRL's point mass), so control steps differ. The episode lengths are OGBench's step counts, so an "
        "episode covers less simulated time here: OGBench's point and ant step 0.1 s (1000 steps: 100 s; ours "
        "50 s), its humanoid 0.025 s (4000 steps: 100 s; ours 60 s); `--episode-length 2000` on the point and "
        "ant mazes (and 6667 on `humanoid_giant_maze`) gives OGBench's time. The point mass keeps JaxGCRL's 0.5 m tolerance; our "
        "humanoid keeps JaxGCRL's 2 m cells and 1000 steps on big and hardest (OGBench: 4 m, 2000), and "
        "`humanoid_giant_maze` takes OGBench's 4 m cells and 4000 steps. OGBench's episodes end at the goal, "
        "ours run to their length (success is reaching the goal at some step in both). Its numbers are offline "
        "RL on its datasets; ours are online.",
    ]
    return "\n".join(lines) + "\n"


def main(args: Args) -> str:
    unknown = [env_id for env_id in args.env_ids if env_id not in JAXGCRL_IDS]
    if unknown:
        print(
            f"error: --env-ids: {', '.join(unknown)} has no JaxGCRL counterpart (the giant mazes are OGBench's: "
            f"the page's last section compares them). Choose among {', '.join(JAXGCRL_IDS)}.",
            file=sys.stderr,
        )
        raise SystemExit(2)
    # the arm's XLA flags, before the first env starts JAX (envs/base.py: set_cpu_xla_flags)
    envs.base.set_cpu_xla_flags("env_fidelity", (envs.base.FUSION_FLAG, envs.base.SCHEDULER_FLAG))
    header = [
        "# Env fidelity: each env beside JaxGCRL's task",
        "",
        "Generated by `python results/notes/env_fidelity.py --output results/notes/env_fidelity.md` on "
        f"{datetime.date.today()} (jax {jax.__version__}, {platform.machine()}). The JaxGCRL column is read "
        "from its source (`BENCHMARK` in the script names the files); ours is measured from the code: "
        f"regions over {args.resets} resets with `jax.random.PRNGKey(0)`, in world coordinates. "
        "'start to goal' is the distance from the achieved goal at reset to the commanded goal.",
        "",
    ]
    sections = [section(env_id, measure(env_id, args.resets)) for env_id in args.env_ids]
    page = "\n".join(header) + "\n" + "\n".join(sections) + "\n" + ogbench_section()
    print(page)
    if args.output:
        with open(args.output, "w") as f:
            f.write(page)
    return page


if __name__ == "__main__":
    main(tyro.cli(Args))
