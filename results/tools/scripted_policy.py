"""Hand-written controllers for the arm and pusher envs, scored under the algorithms' evaluation protocol:
can the task be done at all in this env, at its episode length and threshold?

    python results/tools/scripted_policy.py --env-id arm_reach
    python results/tools/scripted_policy.py --env-id arm_push_easy --num-episodes 256 --output scripted.json
    python results/tools/scripted_policy.py --env-id pusher_easy

When an agent does not rise above the random policy on an env, this tells the env's fault (a
goal that cannot be reached, a body that cannot move the object, a threshold too tight) apart
from the algorithm's. Each controller reads only the observation the agent gets (state and
goal) and knows the body's kinematics (the forward kinematics of the env's own model); none
learns anything. Same protocol as `random_policy.py`: `--num-episodes` envs each run one full
episode from fresh goals (`envs.VecEnv.evaluate`), scored as the algorithms' `eval/*` scalars.
Prints one JSON object; `--output` also writes it.

The actions are joint targets, so each controller solves inverse kinematics at every step
(Gauss-Newton on the four driven joints, through MuJoCo's forward kinematics of the env's
model) for a target point chosen by phase, read from the observation (no memory):

* `arm_reach`: the end effector to the goal.
* `arm_push_easy`, `arm_push_hard`: the closed gripper, pointing down, comes down behind the cube
  (seen from the goal) and moves towards the goal; when it loses the cube it goes round over it.
* `arm_grasp`: the open gripper comes down over the cube and closes on it.
* `arm_binpick_easy`, `arm_binpick_hard`: grasp as for `arm_grasp`, lift the cube straight up
  clear of the bin walls, carry it over the goal and lower it there (it stays held).
* `pusher_easy`, `pusher_hard`: the pusher's actions are motor torques, so a joint-space PD
  controller follows the inverse kinematics of the middle of the gripper's cross bar, which
  comes down behind the puck (seen from the goal) and pushes it towards the goal.

These are crude (no grasp planning, no re-grasping), so their scores are lower bounds of what
the env allows.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass

import jax
import jax.numpy as jnp
from brax import kinematics
from brax import math as brax_math
from mujoco import mjx

import envs
from envs import arm as arm_env


@dataclass(frozen=True)
class Args:
    env_id: str = "arm_reach"
    """environment id: arm_reach, arm_grasp, arm_push_easy, arm_push_hard, arm_binpick_easy, arm_binpick_hard,
    pusher_easy or pusher_hard"""
    episode_length: int | None = None
    """steps per episode; default: the env's own"""
    num_episodes: int = 128
    """evaluation episodes (the algorithms' --num-eval-envs)"""
    seed: int = 1
    """seed of the goals"""
    output: str = ""
    """also write the JSON object to this file (atomically)"""


# ------------------------------------------------------------------------------------------- arm
def _arm_ik(env, reach=arm_env._FLANGE + arm_env._TCP, down_weight=0.3):
    """`solve(joints, target xyz) -> action[:4]`: the joint targets that put the point `reach`
    metres along the gripper's axis from link 7's origin (default: the tool centre point between
    the fingertips; 0: the end effector of the observation) at `target`, with the gripper
    pointing straight down as far as `down_weight` asks. Gauss-Newton from the current joints on
    the driven joints, through the forward kinematics of the env's own model."""
    acted = jnp.array(arm_env._ACTED_JOINTS)
    ranges = jnp.asarray(arm_env._ACTED_RANGES, jnp.float32)
    held = env._home  # the held joints' angles and the fingers
    data0 = mjx.make_data(env.sys)

    def tcp_and_axis(x_acted):
        arm = held.at[acted].set(x_acted)
        data = mjx.kinematics(env.sys, data0.replace(qpos=data0.qpos.at[: arm.shape[0]].set(arm)))
        body = env._link7 + 1  # MuJoCo's body 0 is the world
        axis = brax_math.rotate(jnp.array([0.0, 0.0, 1.0]), data.xquat[body])
        return jnp.concatenate([data.xpos[body] + reach * axis, down_weight * axis])

    def solve(joints, target):
        wanted = jnp.concatenate([target, down_weight * jnp.array([0.0, 0.0, -1.0])])

        def iteration(x, _):
            jac = jax.jacfwd(tcp_and_axis)(x)
            err = wanted - tcp_and_axis(x)
            x = x + jnp.linalg.solve(jac.T @ jac + 1e-3 * jnp.eye(4), jac.T @ err)
            return jnp.clip(x, ranges[:, 0], ranges[:, 1]), None

        x, _ = jax.lax.scan(iteration, jnp.clip(joints[acted], ranges[:, 0], ranges[:, 1]), None, length=8)
        return 2.0 * (x - ranges[:, 0]) / (ranges[:, 1] - ranges[:, 0]) - 1.0

    solve.tcp = lambda joints: tcp_and_axis(joints[acted])[:3]
    return solve


def _arm_action(solve, joints, target, close):
    return jnp.concatenate([solve(joints, target), jnp.where(close, 1.0, -1.0)[None]])


def arm_reach_policy(env):
    """Move the end effector to the goal (the gripper's direction does not matter)."""
    solve = _arm_ik(env, reach=0.0, down_weight=0.0)

    def act(obs):
        joints, goal = obs[:7], obs[13:16]
        return _arm_action(solve, joints, goal, False)

    return jax.vmap(act)


CUBE_HALF = 0.025


def _grasp_target(tcp, cube, opening):
    """Target and gripper command that come down over the cube open and close on it; and whether
    the cube is held (between the fingers, the gripper closed on it)."""
    off_xy = jnp.linalg.norm(tcp[:2] - cube[:2])
    low = tcp[2] < cube[2] + 0.03
    over = off_xy < jnp.where(low, 0.03, 0.015)
    down = jnp.logical_and(over, tcp[2] < cube[2] + 0.012)
    target = jnp.where(over, cube, cube + jnp.array([0.0, 0.0, 0.1]))
    held = jnp.logical_and(jnp.linalg.norm(tcp - cube) < 0.03, opening < 2 * CUBE_HALF + 0.01)
    return target, jnp.logical_or(down, held), held


def arm_grasp_policy(env):
    """Come down over the cube with the gripper open, then close it on the cube."""
    solve = _arm_ik(env)

    def act(obs):
        opening, cube, joints = obs[3], obs[4:7], obs[7:14]
        target, close, _ = _grasp_target(solve.tcp(joints), cube, opening)
        return _arm_action(solve, joints, target, close)

    return jax.vmap(act)


@dataclass(frozen=True)
class Push:
    """The constants of a push: the pushing point's start `behind` the object's centre (seen from
    the goal), its height while pushing (`push_z`) and while going round (`clear_z`); it comes
    down once within `start_radius` of the start, pushes while within `push_margin` of `push_z`
    and `keep_radius` of the start, and aims `lead` metres ahead along the push."""

    behind: float
    push_z: float
    clear_z: float
    start_radius: float
    keep_radius: float
    push_margin: float
    lead: float


def _push_target(push: Push, point, obj, goal):
    """Where the pushing point (xyz) goes next, read from the observation alone. Down behind the
    object: push (the target moves ahead of the point with the object); over the start point:
    come down; otherwise go round over the object at `clear_z` to the start."""
    gap = goal[:2] - obj[:2]
    dist = jnp.linalg.norm(gap)
    u = gap / jnp.maximum(dist, 1e-6)
    start = obj[:2] - push.behind * u
    off = jnp.linalg.norm(point[:2] - start)
    pushing = jnp.logical_and(point[2] < push.push_z + push.push_margin, off < push.keep_radius)
    xy = jnp.where(pushing, start + jnp.minimum(dist, push.lead) * u, start)
    z = jnp.where(jnp.logical_or(pushing, off < push.start_radius), push.push_z, push.clear_z)
    return jnp.concatenate([xy, z[None]])


ARM_PUSH = Push(
    behind=CUBE_HALF + 0.03,  # 3 cm behind the cube's face
    push_z=0.02,  # the tool point just under the cube's centre
    clear_z=0.1,  # over the 5 cm cube
    start_radius=0.02,
    keep_radius=0.04,
    push_margin=0.03,
    lead=0.05,
)


def arm_push_policy(env):
    """Lower the closed gripper behind the cube (seen from the goal) and move it towards the goal
    (`_push_target` with `ARM_PUSH`)."""
    solve = _arm_ik(env)

    def act(obs):
        cube, joints, goal = obs[0:3], obs[3:10], obs[18:21]
        target = _push_target(ARM_PUSH, solve.tcp(joints), cube, goal)
        return _arm_action(solve, joints, target, True)

    return jax.vmap(act)


def arm_binpick_policy(env, carry_z=0.14, lead=0.1):
    """Grasp the cube as `arm_grasp_policy` does, lift it straight up clear of the bin walls
    (6.6 cm tall), carry it at `carry_z` towards the goal, at most `lead` metres ahead of the cube
    at a time, and lower it onto the goal once over it, still held."""
    solve = _arm_ik(env)

    def act(obs):
        cube, joints, opening, goal = obs[0:3], obs[3:10], obs[16], obs[18:21]
        grasp, close, held = _grasp_target(solve.tcp(joints), cube, opening)
        gap = goal[:2] - cube[:2]
        dist = jnp.linalg.norm(gap)
        over_goal = dist < 0.02
        clear = cube[2] > 0.1  # the cube's bottom above the walls' tops
        ahead = cube[:2] + gap * jnp.minimum(1.0, lead / jnp.maximum(dist, 1e-6))
        across = jnp.where(over_goal, goal[:2], ahead)
        xy = jnp.where(clear | over_goal, across, cube[:2])  # straight up until clear, then across
        z = jnp.where(over_goal, goal[2], carry_z)
        target = jnp.where(held, jnp.concatenate([xy, z[None]]), grasp)
        return _arm_action(solve, joints, target, close | held)

    return jax.vmap(act)


# ---------------------------------------------------------------------------------------- pusher
# The pusher's gripper is a U: a 0.2 m cross bar at the wrist-roll joint and two 0.1 m prongs
# (capsules of radius 0.02); the observation's fingertip is the midpoint of the prongs' ends.
# The controller pushes with the middle of the bar (the wrist-roll joint), whatever the
# gripper's orientation.
PUSHER_PUSH = Push(
    behind=0.02 + 0.05 + 0.01,  # the bar's radius, the puck's, a margin
    push_z=-0.25,  # the joint's height while pushing: the puck's full radius spans -0.325 to -0.225
    clear_z=-0.05,  # the joint's height while moving over the puck (its top is at -0.175)
    start_radius=0.03,
    keep_radius=0.05,
    push_margin=0.05,
    lead=0.1,
)


def pusher_policy(env, kp=12.0, kd=2.0):
    """Lower the gripper's cross bar behind the puck (seen from the goal) and push it to the goal.

    The pusher's actions are motor torques (no gravity), so a joint-space PD controller (gains
    `kp`, `kd` per unit of action) follows the joint targets that inverse kinematics gives for a
    target of the wrist-roll joint chosen by phase (`_push_target` with `PUSHER_PUSH`), as the
    arm's push does: over the point behind the puck while the joint is off it; down there once
    over it; then 0.1 m ahead along the push, re-aimed every step, and back up and round when the
    puck slides off. The gains and the lead were picked among five settings on 32 episodes of
    pusher_easy (success 0.25-0.63)."""
    wrist_link = env._tip_link
    low, high = (jnp.asarray(limit[:7]) for limit in env.sys.dof.limit)
    puck_q = env.sys.init_q[7:]

    def wrist(arm):
        q = jnp.concatenate([arm, puck_q])
        x, _ = kinematics.forward(env.sys, q, jnp.zeros(env.sys.qd_size()))
        return x.pos[wrist_link]

    def solve(arm, target):
        def iteration(x, _):
            jac = jax.jacfwd(wrist)(x)
            x = x - jnp.linalg.solve(jac.T @ jac + 1e-3 * jnp.eye(7), jac.T @ (wrist(x) - target))
            return jnp.clip(x, low, high), None

        x, _ = jax.lax.scan(iteration, arm, None, length=8)
        return x

    def act(obs):
        arm, puck, velocity, goal = obs[0:7], obs[10:13], obs[13:20], obs[20:23]
        joints = solve(arm, _push_target(PUSHER_PUSH, wrist(arm), puck, goal))
        return jnp.clip(kp * (joints - arm) - kd * velocity, -1.0, 1.0)

    return jax.vmap(act)


POLICIES = {
    "pusher_easy": pusher_policy,
    "pusher_hard": pusher_policy,
    "arm_reach": arm_reach_policy,
    "arm_grasp": arm_grasp_policy,
    "arm_push_easy": arm_push_policy,
    "arm_push_hard": arm_push_policy,
    "arm_binpick_easy": arm_binpick_policy,
    "arm_binpick_hard": arm_binpick_policy,
}


def main(args: Args) -> dict:
    if args.env_id not in POLICIES:
        print(
            f"error: no scripted controller for env '{args.env_id}'. This script has one for: "
            f"{', '.join(sorted(POLICIES))}.",
            file=sys.stderr,
        )
        raise SystemExit(2)
    if args.num_episodes < 1:
        print(f"error: --num-episodes must be at least 1, got {args.num_episodes}.", file=sys.stderr)
        raise SystemExit(2)
    env = envs.make(args.env_id, episode_length=args.episode_length)  # before JAX computes: its XLA flags
    policy = POLICIES[args.env_id](env)
    start = time.perf_counter()
    metrics, _ = jax.jit(envs.VecEnv(env, args.num_episodes).evaluate, static_argnums=0)(
        policy, jax.random.PRNGKey(args.seed)
    )
    metrics = {name: float(v) for name, v in metrics.items()}
    result = {
        **asdict(args),
        "episode_length": env.episode_length,
        "backend": env.backend,
        **metrics,
        "eval_s": round(time.perf_counter() - start, 1),
        "jax": jax.__version__,
    }
    text = json.dumps(result)
    print(text)
    if args.output:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with open(f"{args.output}.tmp", "w") as f:
            f.write(text + "\n")
        os.replace(f"{args.output}.tmp", args.output)
    return result


if __name__ == "__main__":
    import tyro

    main(tyro.cli(Args))
