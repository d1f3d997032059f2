"""What `--num-seeds K` costs: K seeds trained by one process through one compile.

    python results/tools/seed_cost.py                  # a GPU: ant, 2M env steps at 1024 envs, K = 1, 4, 8 (about 3 minutes)
    python results/tools/seed_cost.py --tiny           # the same steps at a toy scale: checks the command on a CPU
    python results/tools/seed_cost.py --env-id reacher --num-envs 128 --total-timesteps 200000 --seeds 1 2 4   # a CPU

First the compiled program is checked (`sequential_loops`): the training chunk compiled for one
seed and for several (at a toy size of the same env, on the same backend) must have the same
loops with the same trip counts, so that the seeds run batched in each kernel and nothing runs
once per seed in sequence. Then, for each K, `algorithms/crl_infonce.py --num-seeds K` runs in a
subprocess with a time limit, and its printed lines give the compile seconds, the training
loop's seconds and its SPS per seed. The table ends with each K's process wall time over that
of K = 1: K seeds for the price of one would be 1.0, seeds run one after another K.

Before compiling, a run refuses a K whose replay buffers do not fit in the device's free memory
(`TrajectoryBuffer.check_memory`, about 2.9 GB per seed for ant at 1024 envs, plus 0.3 GB of
batches drawn at once with crl_infonce's default `--presample`), with exit code 2
and the largest --buffer-size that fits; the table shows that row as refused.
"""

from __future__ import annotations

import importlib
import json
import os
import pathlib
import re
import subprocess
import sys
import time
from dataclasses import dataclass

import tyro

ROOT = pathlib.Path(__file__).resolve().parents[2]

# a toy size of any env: what the program check compiles, and every run with --tiny
TINY = (
    "--num-envs=4 --num-eval-envs=2 --unroll-length=10 --batch-size=16 --buffer-size=100 --learning-starts=10"
    " --width=16 --depth=1 --repr-dim=8 --updates-per-rollout=2 --episode-length=20"
).split()


@dataclass(frozen=True)
class Args:
    env_id: str = "ant"
    """the env of every run"""
    seeds: tuple[int, ...] = (1, 4, 8)
    """the values of --num-seeds to time, the first the reference (normally 1)"""
    num_envs: int = 1024
    """training envs per seed"""
    episode_length: int = 1001
    """steps per episode (JaxGCRL's 1001 for ant)"""
    total_timesteps: int = 2_000_000
    """env steps per seed of each run"""
    learning_starts: int = 62
    """rows per env before gradient steps start: one rollout, so that the runs time the updates"""
    tiny: bool = False
    """a toy scale of every run (a few envs, tiny networks): checks the command on a CPU"""
    timeout: int = 240
    """seconds each run may take before it is stopped"""
    check_program: bool = True
    """check the compiled training chunk for loops run once per seed"""
    output: str = ""
    """also write the rows as JSON here"""


def loops_of_compiled_chunk(env_id: str, num_seeds: int) -> dict:
    """The loops of crl_infonce's training chunk compiled for `num_seeds` seeds at a toy size of
    `env_id`: their number, their trip counts where XLA knows them, and the number of
    conditionals (at one seed: the gate that skips the gradient steps before learning starts,
    and the env's reset, skipped on steps where no episode ends)."""
    import jax
    import numpy as np

    from algorithms import run
    from algorithms.run import devices

    module = importlib.import_module("algorithms.crl_infonce")
    args = tyro.cli(module.Args, args=[f"--env-id={env_id}", *TINY, f"--num-seeds={num_seeds}"])
    env = run.make_env(args)
    init, training_step, _, _ = module.make_train(args, env, run.make_schedule(args, env))
    init = devices.seed_axis(init, num_seeds)
    chunk = devices.seed_axis(module.make_chunk(training_step), num_seeds, in_axes=(0, None))
    carry = jax.eval_shape(init, jax.random.split(jax.random.PRNGKey(0), num_seeds))
    text = jax.jit(chunk).lower(carry, np.int32(0)).compile().as_text()
    return {
        "loops": len(re.findall(r"\bwhile\(", text)),
        "trip_counts": sorted(int(n) for n in re.findall(r'"known_trip_count":\{"n":"(\d+)"', text)),
        "conditionals": len(re.findall(r"\bconditional\(", text)),
    }


def sequential_loops(env_id: str, num_seeds: int) -> tuple[bool, str]:
    """(whether the chunk for `num_seeds` seeds has the loops of the one for a single seed, a
    line that says what was compared)."""
    one, many = loops_of_compiled_chunk(env_id, 1), loops_of_compiled_chunk(env_id, num_seeds)
    same = (one["loops"], one["trip_counts"]) == (many["loops"], many["trip_counts"])
    gate = (
        f"{many['conditionals']} conditionals, as at 1 seed"
        if many["conditionals"] == one["conditionals"]
        else f"{many['conditionals']} conditionals against {one['conditionals']} at 1 seed (a conditional on a"
        " value that differs between seeds becomes a select: both branches run for every seed)"
    )
    what = f"{many['loops']} loops at {num_seeds} seeds against {one['loops']} at 1, trip counts "
    what += "equal" if same else f"{many['trip_counts']} against {one['trip_counts']}"
    return same, f"{what}; {gate}"


def run_one(args: Args, num_seeds: int) -> dict:
    """One run of crl_infonce with --num-seeds `num_seeds`: what it printed, as numbers."""
    flags = [
        f"--env-id={args.env_id}",
        f"--num-seeds={num_seeds}",
        f"--num-envs={args.num_envs}",
        f"--episode-length={args.episode_length}",
        f"--total-timesteps={args.total_timesteps}",
        f"--learning-starts={args.learning_starts}",
        "--num-evals=1",
        "--no-checkpoint-on-stop",
        *(TINY + ["--total-timesteps=400"] if args.tiny else []),
        f"--run-root={ROOT / 'runs' / 'seed_cost'}",
    ]
    command = [sys.executable, str(ROOT / "algorithms" / "crl_infonce.py"), *flags]
    print(f"[K={num_seeds}] python algorithms/crl_infonce.py {' '.join(flags)}", flush=True)
    start = time.perf_counter()
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"seeds": num_seeds, "status": f"stopped at its {args.timeout} s limit"}
    wall = time.perf_counter() - start
    out = result.stdout
    if result.returncode != 0:
        refused = "replay buffer needs" in result.stderr
        reason = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit {result.returncode}"
        return {"seeds": num_seeds, "status": ("refused: " if refused else "failed: ") + reason[:300]}
    compiled = re.search(r"compiled training chunk and evaluation in ([0-9.]+) s", out)
    trained = re.search(r"trained ([0-9,]+) env steps .*?([0-9,]+) SPS per seed", out)
    loop = re.search(r"training loop: ([0-9.]+) s wall", out)
    buffer = re.search(r"replay buffer: ([0-9.]+) MiB", out)
    if not (compiled and trained and loop and buffer):
        return {"seeds": num_seeds, "status": "failed: the run's output lacks its compile, SPS or buffer line"}
    sps = max(int(trained.group(2).replace(",", "")), 1)
    return {
        "seeds": num_seeds,
        "status": "ok",
        "wall_s": round(wall, 1),
        "compile_s": float(compiled.group(1)),
        "loop_s": float(loop.group(1)),
        "train_s": int(trained.group(1).replace(",", "")) / sps,
        "sps_per_seed": sps,
        "sps_all_seeds": sps * num_seeds,
        "buffer_mib": float(buffer.group(1)),
    }


def table(rows: list[dict]) -> str:
    reference = next((r for r in rows if r["status"] == "ok"), None)
    lines = [
        "| seeds K | process wall s | compile s | training s | SPS per seed | SPS, all seeds | buffer MiB"
        " | wall / first K's | training s / first K's |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['seeds']} | {r['status']} | | | | | | | |")
            continue
        lines.append(
            f"| {r['seeds']} | {r['wall_s']:.1f} | {r['compile_s']:.1f} | {r['train_s']:.1f} | {r['sps_per_seed']:,} | "
            f"{r['sps_all_seeds']:,} | {r['buffer_mib']:,.0f} | {r['wall_s'] / reference['wall_s']:.2f} | "
            f"{r['train_s'] / max(reference['train_s'], 1e-9):.2f} |"
        )
    return "\n".join(lines) + "\n"


def device_line() -> str:
    """The device and jax version, from a short subprocess (this process starts JAX only for the
    program check, which a run's own process must not share)."""
    probe = "import jax; d = jax.devices()[0]; print(f'{d.device_kind} ({d.platform}), jax {jax.__version__}')"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    return result.stdout.strip() or "unknown device"


def main(args: Args) -> list[dict]:
    print(device_line(), flush=True)
    if args.check_program:
        # this process's JAX must not hold the device memory that the runs' processes measure
        # and need: no preallocation (XLA's default takes 75% of a GPU at start)
        os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
        start = time.perf_counter()
        same, line = sequential_loops(args.env_id, max(args.seeds))
        print(f"compiled program ({time.perf_counter() - start:.0f} s): {line}", flush=True)
        if not same:
            print("error: the seeds' program has loops that a single seed's has not", file=sys.stderr)
            sys.exit(1)
    rows = []
    for k in args.seeds:  # each row as it ends: a run stopped at a time limit keeps the rows before it
        rows.append(run_one(args, k))
        print(table(rows).splitlines()[-1], flush=True)
    print()
    scale = "a toy scale (checks the command)" if args.tiny else f"{args.total_timesteps:,} env steps per seed"
    print(f"crl_infonce on {args.env_id}, {args.num_envs} envs per seed, {scale}\n")
    print(table(rows))
    if args.output:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        pathlib.Path(args.output).write_text(json.dumps(rows, indent=1) + "\n")
    return rows


if __name__ == "__main__":
    main(tyro.cli(Args, description=__doc__))
