"""What LLVM's optimisation level costs and buys on CPU: trace, compile and run times of one env's
batched step, at XLA's default and at `--xla_backend_optimization_level=0` (what the test suite
uses, tests/conftest.py).

    python results/notes/compile_opt_level.py --env-ids reacher pusher_easy arm_reach

Each (env, setting) runs in a fresh process with its own empty compilation cache, so every
compile is a real one: it builds the env, lowers `VecEnv.step` for `--num-envs` envs, compiles
it, then times `--steps` calls after a first one. Prints one markdown row per pair.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass

import tyro

FLAG = "--xla_backend_optimization_level=0"

# Runs in the fresh process: argv = env_id, num_envs, steps; prints one JSON line.
CHILD = """
import json, sys, time
import jax, jax.numpy as jnp
import envs

env_id, num_envs, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
vec = envs.VecEnv(envs.make(env_id), num_envs)
state = jax.jit(vec.reset)(jax.random.PRNGKey(0))
action = jnp.zeros((num_envs, vec.env.action_size))
start = time.perf_counter()
lowered = jax.jit(vec.step).lower(state, action)
traced = time.perf_counter() - start
start = time.perf_counter()
step = lowered.compile()
compiled = time.perf_counter() - start
state = jax.block_until_ready(step(state, action))
start = time.perf_counter()
for _ in range(steps):
    state = step(state, action)
jax.block_until_ready(state)
ran = time.perf_counter() - start
print(json.dumps({"trace": traced, "compile": compiled, "ms_per_step": 1000 * ran / steps}))
"""


@dataclass(frozen=True)
class Args:
    env_ids: tuple[str, ...] = ("reacher", "pusher_easy", "arm_reach")
    """envs to measure"""
    num_envs: int = 4
    """envs in the batch (the test suite's size)"""
    steps: int = 50
    """timed calls of the compiled step"""


def measure(env_id: str, args: Args, optimise: bool) -> dict:
    flags = os.environ.get("XLA_FLAGS", "").split()
    flags = [f for f in flags if f != FLAG] + ([] if optimise else [FLAG])
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "XLA_FLAGS": " ".join(flags), "JAX_COMPILATION_CACHE_DIR": cache}
        result = subprocess.run(
            [sys.executable, "-c", CHILD, env_id, str(args.num_envs), str(args.steps)],
            capture_output=True,
            text=True,
            env=env,
        )
    if result.returncode != 0:
        sys.exit(f"{env_id}: the measuring process failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(args: Args) -> None:
    print(f"{args.num_envs} envs, {args.steps} timed steps; times in seconds unless noted")
    print("| env | LLVM optimisation | trace + lower | compile | ms per step |")
    print("|---|---|---:|---:|---:|")
    for env_id in args.env_ids:
        for optimise in (True, False):
            row = measure(env_id, args, optimise)
            setting = "default" if optimise else "level 0"
            print(
                f"| {env_id} | {setting} | {row['trace']:.1f} | {row['compile']:.1f} | {row['ms_per_step']:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main(tyro.cli(Args))
