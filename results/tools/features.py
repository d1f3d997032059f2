"""What checkpointing and video capture cost: the same training run plain, with
--checkpoint-every and with --capture-video, measured in one invocation, runs interleaved.

    python results/tools/features.py --repeats 3 > results/notes/features.md

Each run is a subprocess of `algorithms/{algorithm}.py`. Reported per variant: the median
training SPS (the compiled chunks alone, as charts/SPS) and the median wall time of the whole
training loop (training, evaluations, checkpoint writes, video rendering), each also as a
ratio to the plain run.
"""

from __future__ import annotations

import pathlib
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import jax
import tyro

ROOT = pathlib.Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Args:
    algorithm: str = "crl_infonce"
    """algorithm file under algorithms/"""
    flags: tuple[str, ...] = (
        "--env-id=reacher",
        "--unroll-length=50",
        "--total-timesteps=1000000",
        "--num-evals=10",
    )
    """the run's flags (shared by every variant)"""
    checkpoint_every: int = 100_000
    """--checkpoint-every of the checkpoint variant, env steps"""
    repeats: int = 3
    """runs per variant (interleaved)"""


def measure(args: Args, extra: list[str], root: str) -> tuple[float, float]:
    cmd = [sys.executable, str(ROOT / "algorithms" / f"{args.algorithm}.py"), *args.flags, f"--run-root={root}", *extra]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    sps = float(re.search(r"([\d,]+) SPS per seed", out).group(1).replace(",", ""))
    loop = float(re.search(r"training loop: ([\d.]+) s", out).group(1))
    return sps, loop


def main(args: Args) -> None:
    variants = {
        "plain": [],
        f"--checkpoint-every {args.checkpoint_every}": [f"--checkpoint-every={args.checkpoint_every}"],
        "--capture-video --video-every 1": ["--capture-video", "--video-every=1"],
    }
    results = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as root:
        for _ in range(args.repeats):
            for name, extra in variants.items():
                results[name].append(measure(args, extra, root))
    base_sps = statistics.median(r[0] for r in results["plain"])
    base_loop = statistics.median(r[1] for r in results["plain"])
    print(
        f"`python results/tools/features.py --repeats {args.repeats}` on {time.strftime('%Y-%m-%d')}, "
        f"{platform.processor() or platform.machine()}, jax {jax.__version__} on {jax.default_backend()}; "
        f"{args.algorithm} with {' '.join(args.flags)}. Medians of {args.repeats} interleaved runs.\n"
    )
    print("| variant | training SPS | ratio | training loop wall s | ratio |\n|---|---:|---:|---:|---:|")
    for name in variants:
        sps = statistics.median(r[0] for r in results[name])
        loop = statistics.median(r[1] for r in results[name])
        print(f"| {name} | {sps:,.0f} | {sps / base_sps:.2f} | {loop:.1f} | {loop / base_loop:.2f} |")


if __name__ == "__main__":
    main(tyro.cli(Args))
