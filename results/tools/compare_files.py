"""Training SPS of two versions of an algorithm file, timed in one process, alternating: the
check that a change is not slower, with the noise of a shared machine cancelled in the ratio.

    git worktree add /tmp/old HEAD~1
    python results/tools/compare_files.py --a /tmp/old/algorithms/crl_infonce.py --b algorithms/crl_infonce.py \
        --flags="--env-id reacher --episode-length 51 --unroll-length 50 --backend generalized" --rounds 7
    python results/tools/compare_files.py --a algorithms/crl_infonce.py --b algorithms/crl_infonce.py \
        --a-flags=--no-presample --flags="--env-id reacher --episode-length 51 --unroll-length 50"

(A value that starts with `--` is given with `=`.)

Both files are loaded as modules of this checkout, so they run on its harness (`algorithms/run/`),
envs and buffer: a file from another commit must fit them. (Run by path, a script in another
git worktree would import this checkout's `algorithms` through the editable install unless
`PYTHONPATH` names the worktree; loading the files by path avoids that.) Each version's training
chunk (the file's own `make_train` and `make_chunk`, its carry donated as in a run) is compiled,
run until the buffer holds `learning_starts` rows, then timed for `--steps` training steps per
call. A round times both once, starting with the other one each round; the ratio (b's SPS over
a's) is the median of the rounds' ratios. Each version also gets its own median SPS and the
seconds of its first call (compile and warm-up).
"""

from __future__ import annotations

import importlib.util
import pathlib
import shlex
import statistics
import sys
import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import tyro

from algorithms import run


@dataclass(frozen=True)
class Args:
    a: str
    """the first algorithm file (the reference of the ratio)"""
    b: str
    """the second algorithm file"""
    flags: str = ""
    """flags of both versions' Args, as on a command line"""
    a_flags: str = ""
    """flags for the first version only"""
    b_flags: str = ""
    """flags for the second version only"""
    steps: int = 4
    """training steps per timed call"""
    rounds: int = 5
    """rounds of one timed call of each version"""


def load(path: str, name: str):
    """An algorithm file as a module named `name`."""
    spec = importlib.util.spec_from_file_location(name, pathlib.Path(path).resolve())
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def prepare(module, flags: list[str], steps: int):
    """(a call of `steps` training steps on the carry it keeps, env steps per call, seconds of the
    first call: compile and the warm-up training steps)."""
    args = tyro.cli(module.Args, args=flags)
    env = run.make_env(args)
    schedule = run.make_schedule(args, env)
    init, training_step, _, _ = module.make_train(args, env, schedule)
    chunk = jax.jit(module.make_chunk(training_step), donate_argnums=0)  # as the harness runs it
    carry = jax.jit(init)(jax.random.PRNGKey(args.seed))
    warmup = max(1, -(-schedule.learning_start_rows // args.unroll_length))
    start = time.perf_counter()
    carry = jax.block_until_ready(chunk(carry, jnp.int32(warmup)))[0]
    compile_s = time.perf_counter() - start
    state = {"carry": carry}

    def call() -> float:
        start = time.perf_counter()
        state["carry"], stats = jax.block_until_ready(chunk(state["carry"], jnp.int32(steps)))
        assert int(stats.updated_steps) == steps, "a timed training step ran no gradient steps"
        return time.perf_counter() - start

    return call, steps * schedule.steps_per_training_step, compile_s


def main(args: Args) -> None:
    versions = {}
    for name, path, own in (("a", args.a, args.a_flags), ("b", args.b, args.b_flags)):
        flags = shlex.split(args.flags) + shlex.split(own)
        call, env_steps, compile_s = prepare(load(path, f"version_{name}"), flags, args.steps)
        versions[name] = dict(
            call=call, env_steps=env_steps, compile_s=compile_s, sps=[], label=f"{path} {' '.join(flags)}"
        )
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}; {args.steps} training steps per call")
    for name, version in versions.items():
        print(f"{name}: {version['label']} (first call, compile and warm-up: {version['compile_s']:.1f} s)")
    print("\n| round | a SPS | b SPS | b / a |\n|---:|---:|---:|---:|")
    ratios = []
    for round_index in range(args.rounds):
        order = ("a", "b") if round_index % 2 == 0 else ("b", "a")
        for name in order:
            version = versions[name]
            version["sps"].append(version["env_steps"] / version["call"]())
        ratios.append(versions["b"]["sps"][-1] / versions["a"]["sps"][-1])
        print(
            f"| {round_index + 1} | {versions['a']['sps'][-1]:,.0f} | {versions['b']['sps'][-1]:,.0f} | {ratios[-1]:.3f} |"
        )
    a_sps, b_sps = (statistics.median(versions[name]["sps"]) for name in ("a", "b"))
    print(
        f"\nmedian SPS: a {a_sps:,.0f}, b {b_sps:,.0f}; b / a, the median of the rounds' ratios: {statistics.median(ratios):.3f}"
    )


if __name__ == "__main__":
    main(tyro.cli(Args))
