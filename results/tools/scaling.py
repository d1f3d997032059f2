"""What network depth costs crl_infonce: compile time, ms per gradient step and training SPS.

    python results/tools/scaling.py --depths 4 8 16 32 64 -- --env-id reacher --episode-length 51 \
        --unroll-length 50 --backend generalized

Each depth D runs crl_infonce with `--residual --layer-norm --critic-depth D --actor-depth D`
(an input layer, then D / 4 residual blocks of four layers; see the algorithm's MLP) plus the
flags after `--`, all in this one process, with XLA's persistent compilation cache off:

* compile: seconds to compile the training chunk (lowering excluded);
* gradient step: the algorithm's update alone on a fixed synthetic batch, ms per step (median of
  `--repeats` timed scans of `--steps` training steps' worth of updates);
* training SPS: the compiled chunk after the buffer holds `learning_starts` rows, median of
  `--repeats` timed chunks of `--steps` training steps, next to the env-only SPS of the same
  config (random actions, same envs and unroll).

Prints a markdown table (and writes it with `--output`). `--dtypes` instead times the matmuls
of a 16-layer stack in float32 against bfloat16:

    python results/tools/scaling.py --dtypes
"""

from __future__ import annotations

import pathlib
import platform
import statistics
import sys
import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import tyro
from throughput import synthetic_batch  # results/tools/throughput.py: a script's own folder is on its path

from algorithms import crl_infonce as crl
from algorithms import run

ROOT = pathlib.Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Args:
    depths: tuple[int, ...] = (4, 8, 16, 32, 64)
    """critic and actor depths to measure (multiples of 4)"""
    steps: int = 2
    """training steps per timed call"""
    repeats: int = 3
    """timed calls per figure (the median is reported)"""
    output: str = ""
    """also write the table to this markdown file"""
    dtypes: bool = False
    """instead: time a 16-layer stack's forward and backward pass (batch 256, width 256) in float32
    and bfloat16, three interleaved rounds (what bfloat16 matmuls would buy)"""


def median_seconds(fn, *inputs, repeats: int) -> float:
    jax.block_until_ready(fn(*inputs))  # compile and warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*inputs))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(depth: int, passthrough: list[str], args: Args) -> dict:
    deep = ["--residual", "--layer-norm", f"--critic-depth={depth}", f"--actor-depth={depth}", f"--depth={depth}"]
    flags = tyro.cli(crl.Args, args=[*passthrough, *deep])
    env = run.make_env(flags)
    schedule = run.make_schedule(flags, env)
    init, training_step, vec, _ = crl.make_train(flags, env, schedule)

    chunk = jax.jit(crl.make_chunk(training_step))
    carry = jax.jit(init)(jax.random.PRNGKey(flags.seed))
    lowered = chunk.lower(carry, jnp.int32(0))
    start = time.perf_counter()
    compiled = lowered.compile()
    compile_s = time.perf_counter() - start
    prefill = max(1, schedule.learning_start_rows // flags.unroll_length)
    carry, _ = jax.block_until_ready(compiled(carry, jnp.int32(prefill)))
    train_times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        carry, stats = jax.block_until_ready(compiled(carry, jnp.int32(args.steps)))
        train_times.append(time.perf_counter() - start)
    assert float(stats.updated_steps) == args.steps, "every timed training step must run its gradient steps"
    train_s = statistics.median(train_times)

    _, update = crl.make_update(flags, env)
    batch = synthetic_batch(env, flags.batch_size, jax.random.PRNGKey(1))
    num_updates = args.steps * schedule.updates_per_rollout

    @jax.jit
    def updates(ts, key):
        return jax.lax.scan(lambda ts, k: (update(ts, batch, k)[0], ()), ts, jax.random.split(key, num_updates))[0]

    update_s = median_seconds(updates, carry.train_state, jax.random.PRNGKey(2), repeats=args.repeats)

    @jax.jit
    def env_only(state, key):
        def body(state, k):
            action = jax.random.uniform(k, (flags.num_envs, env.action_size), minval=-1.0, maxval=1.0)
            return vec.step(state, action), ()

        return jax.lax.scan(body, state, jax.random.split(key, args.steps * flags.unroll_length))[0]

    env_s = median_seconds(env_only, vec.reset(jax.random.PRNGKey(3)), jax.random.PRNGKey(4), repeats=args.repeats)
    env_steps = args.steps * schedule.steps_per_training_step
    return dict(
        depth=depth,
        compile_s=compile_s,
        ms_per_update=1000 * update_s / num_updates,
        sps=env_steps / train_s,
        env_sps=env_steps / env_s,
        updates=schedule.updates_per_rollout,
        env_id=flags.env_id,
    )


def compare_dtypes(rounds: int = 3, calls: int = 10) -> None:
    """Median ms of a jitted gradient through 16 swish layers, float32 and bfloat16 interleaved."""

    def stack(x, weights):
        return jax.lax.scan(lambda h, w: (jax.nn.swish(h @ w), None), x, weights)[0].sum()

    gradient = jax.jit(jax.grad(stack, argnums=1))
    medians = {"float32": [], "bfloat16": []}
    for _ in range(rounds):
        for dtype in medians:
            x, weights = jnp.ones((256, 256), dtype), jnp.full((16, 256, 256), 0.01, dtype)
            medians[dtype].append(1000 * median_seconds(gradient, x, weights, repeats=calls))
    for dtype, values in medians.items():
        print(f"{dtype}: " + ", ".join(f"{v:.1f}" for v in values) + " ms per forward and backward pass")


def main(args: Args, passthrough: list[str]) -> None:
    if args.dtypes:
        return compare_dtypes()
    jax.config.update("jax_enable_compilation_cache", False)  # every depth compiles for real
    rows = []
    for depth in args.depths:
        row = measure(depth, passthrough, args)
        print(row, file=sys.stderr, flush=True)
        rows.append(row)
    lines = [
        f"jax {jax.__version__}, {jax.devices()[0].device_kind}, {platform.processor() or platform.machine()}; "
        f"crl_infonce {' '.join(passthrough)} --residual --layer-norm, critic and actor depth D",
        "",
        "| depth | compile s | ms per gradient step | training SPS | env-only SPS | gradient steps per training step |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['depth']} | {r['compile_s']:.1f} | {r['ms_per_update']:.1f} | {r['sps']:,.0f} | "
            f"{r['env_sps']:,.0f} | {r['updates']} |"
        )
    table = "\n".join(lines) + "\n"
    print(table)
    if args.output:
        pathlib.Path(args.output).write_text(table)


if __name__ == "__main__":
    # this script's flags come before `--`, crl_infonce's flags for every depth after it
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    main(tyro.cli(Args, args=argv[:split], description=__doc__), argv[split + 1 :])
