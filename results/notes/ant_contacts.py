"""Which parts of the ant should collide with maze walls: what the hip capsules cost and buy.

    python results/notes/ant_contacts.py --output results/notes/ant_contacts.md

JaxGCRL's maze XML lets the torso, the four hip capsules and the feet hit the walls. Our ant
lets the torso and the feet hit them (`envs/ant.py`, `WALL_COLLIDERS`). For both choices this
script measures, on `ant_u_maze` and its default backend:

* env-only throughput: `num_envs` envs, random actions, `steps` steps in one jitted scan;
* what the walls stop: `throws` ants thrown from the start cell at the west wall (its face at
  x = 2) at 2-6 m/s with a random sideways speed and random actions for 60 steps; the deepest
  any link origin (torso and the eight leg links) gets past the face, and how many throws
  put a leg link origin past it.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass

import jax
import numpy as np
import tyro

import envs
import envs.ant


@dataclass(frozen=True)
class Args:
    num_envs: int = 128
    """parallel envs for the throughput measurement"""
    steps: int = 300
    """env steps per env in the timed scan"""
    throws: int = 64
    """ants thrown at the wall"""
    output: str = ""
    """also write the markdown report to this file"""


def throughput(env, num_envs: int, steps: int) -> float:
    vec = envs.VecEnv(env, num_envs)

    @jax.jit
    def rollout(key):
        def body(state, k):
            action = jax.random.uniform(k, (num_envs, env.action_size), minval=-1.0, maxval=1.0)
            return vec.step(state, action), None

        return jax.lax.scan(body, vec.reset(key), jax.random.split(key, steps))[0].obs

    jax.block_until_ready(rollout(jax.random.PRNGKey(0)))  # compile
    start = time.perf_counter()
    jax.block_until_ready(rollout(jax.random.PRNGKey(1)))
    return num_envs * steps / (time.perf_counter() - start)


def throw_at_wall(env, throws: int) -> np.ndarray:
    """x of every link origin, (throws, 60 steps, links)."""

    def one(key):
        speed_key, side_key, action_key = jax.random.split(key, 3)
        state = env.reset(key)
        qd = state.pipeline_state.qd.at[0].set(-jax.random.uniform(speed_key, (), minval=2.0, maxval=6.0))
        qd = qd.at[1].set(jax.random.uniform(side_key, (), minval=-2.0, maxval=2.0))
        state = state.replace(pipeline_state=env.pipeline_init(state.pipeline_state.q, qd))

        def body(state, k):
            state = env.step(state, jax.random.uniform(k, (env.action_size,), minval=-1.0, maxval=1.0))
            return state, state.pipeline_state.x.pos[:, 0]

        return jax.lax.scan(body, state, jax.random.split(action_key, 60))[1]

    return np.asarray(jax.jit(jax.vmap(one))(jax.random.split(jax.random.PRNGKey(0), throws)))


def main(args: Args) -> str:
    rows = []
    for label, colliders in [
        ("torso + feet (ours)", ("torso_geom",)),
        ("torso + hips + feet (JaxGCRL)", ("torso_geom", "aux_1_geom", "aux_2_geom", "aux_3_geom", "aux_4_geom")),
    ]:
        envs.ant.WALL_COLLIDERS = colliders
        env = envs.make("ant_u_maze")
        sps = throughput(env, args.num_envs, args.steps)
        xs = throw_at_wall(env, args.throws)
        past = 2.0 - xs[:, :, 1:].min(axis=(1, 2))
        rows.append(
            f"| {label} | {sps:,.0f} | {xs[:, :, 0].min():.3f} | {max(past.max(), 0.0):.3f} | "
            f"{(past > 0).sum()} of {args.throws} |"
        )
    report = "\n".join(
        [
            "# Ant: what collides with maze walls",
            "",
            "Made by `python results/notes/ant_contacts.py --output results/notes/ant_contacts.md`.",
            "",
            f"`ant_u_maze`, default backend; jax {jax.__version__}, {platform.machine()}, "
            f"{jax.devices()[0].device_kind}; {args.num_envs} envs x {args.steps} steps for the throughput, "
            f"{args.throws} throws at the wall (face at x = 2) at 2-6 m/s for the rest.",
            "",
            "| walls stop | env-only SPS | lowest torso x | deepest leg link past the face (m) | throws with a leg link past it |",
            "|---|---:|---:|---:|---:|",
            *rows,
            "",
        ]
    )
    print(report)
    if args.output:
        with open(args.output, "w") as f:
            f.write(report)
    return report


if __name__ == "__main__":
    main(tyro.cli(Args))
