"""Env-only throughput: steps per second of random-action rollouts, per env and physics backend.

    python results/tools/env_throughput.py                          # default families, all backends
    python results/tools/env_throughput.py --env-ids ant reacher --backends spring mjx --num-envs 1024

For each (env, backend): build `envs.VecEnv(env, num_envs)` (auto-reset included, as training
runs it), jit one function that `lax.scan`s `steps_per_call` steps of uniform random actions in
[-1, 1], time its first call (compile + run) separately, then report the median steps/second
over `repeats` further calls. Prints a markdown table; `--output` also writes it to a file.
"""

from __future__ import annotations

import platform
import statistics
import time
from dataclasses import dataclass

import jax
import numpy as np
import tyro

import envs


@dataclass(frozen=True)
class Args:
    env_ids: tuple[str, ...] = ("reacher", "simple_u_maze", "ant", "ant_u_maze")
    """env ids to measure"""
    backends: tuple[str, ...] = ("generalized", "spring", "positional", "mjx")
    """physics backends to measure ('default' = each env's own default)"""
    num_envs: int = 256
    """parallel envs"""
    steps_per_call: int = 100
    """env steps per env in one jitted call"""
    repeats: int = 3
    """timed calls after the compile; the median is reported"""
    output: str = ""
    """also write the markdown table to this file"""


def measure(env_id: str, backend: str | None, num_envs: int, steps: int, repeats: int) -> dict:
    env = envs.make(env_id, backend=backend)
    vec = envs.VecEnv(env, num_envs)

    @jax.jit
    def rollout(state, key):
        def body(state, k):
            action = jax.random.uniform(k, (num_envs, env.action_size), minval=-1.0, maxval=1.0)
            state = vec.step(state, action)
            return state, state.metrics["success"].mean()

        return jax.lax.scan(body, state, jax.random.split(key, steps))

    key = jax.random.PRNGKey(0)
    state = jax.block_until_ready(jax.jit(vec.reset)(key))
    start = time.perf_counter()
    state, _ = jax.block_until_ready(rollout(state, key))
    first_call = time.perf_counter() - start
    rates = []
    for r in range(repeats):
        start = time.perf_counter()
        state, success = jax.block_until_ready(rollout(state, jax.random.PRNGKey(r + 1)))
        rates.append(num_envs * steps / (time.perf_counter() - start))
        if not np.isfinite(np.asarray(state.obs)).all():
            raise FloatingPointError("non-finite observation")
    sps = statistics.median(rates)
    return dict(backend=env.backend, sps=sps, compile=first_call - num_envs * steps / sps)


def main(args: Args) -> None:
    lines = [
        f"| env | backend | env-only SPS ({args.num_envs} envs) | compile (s) |",
        "|---|---|---:|---:|",
    ]
    print(lines[0], lines[1], sep="\n", flush=True)
    for env_id in args.env_ids:
        for backend in args.backends:
            try:
                r = measure(
                    env_id, None if backend == "default" else backend, args.num_envs, args.steps_per_call, args.repeats
                )
                line = f"| {env_id} | {r['backend']} | {r['sps']:,.0f} | {r['compile']:.1f} |"
            except Exception as error:  # a backend that cannot run this model is reported, not fatal
                line = f"| {env_id} | {backend} | failed: {type(error).__name__}: {str(error).splitlines()[0][:80]} | |"
            print(line, flush=True)
            lines.append(line)
    footer = (
        f"\njax {jax.__version__}, device {jax.devices()[0].device_kind}, {platform.processor() or platform.machine()}, "
        f"steps_per_call {args.steps_per_call}, median of {args.repeats}"
    )
    print(footer)
    if args.output:
        with open(args.output, "w") as f:
            f.write("\n".join(lines) + "\n" + footer + "\n")


if __name__ == "__main__":
    main(tyro.cli(Args))
