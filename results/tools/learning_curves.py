"""Run algorithm files on one config for several seeds and tabulate their evaluation curves.

    python results/tools/learning_curves.py --algorithms crl_infonce crl_dpo --seeds 1 2 3 -- \
        --env-id simple_u_maze --episode-length 200 --unroll-length 50 --total-timesteps 640000 \
        --learning-starts 200 --num-evals 5 --num-eval-envs 256

Everything after `--` is passed to every run. Each (algorithm, seed) runs as its own subprocess
under `--run-root` (default: a new directory in runs/), the scalars are read back from the
TensorBoard event files, and a markdown table of `--tag` per evaluation step (mean and the
per-seed values) plus the mean training SPS is printed and, with `--output`, written to a file.
"""

from __future__ import annotations

import glob
import os
import pathlib
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field

import tyro
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

ROOT = pathlib.Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Args:
    algorithms: tuple[str, ...] = ("crl_infonce",)
    """algorithm files to run (names in algorithms/)"""
    seeds: tuple[int, ...] = (1, 2, 3)
    """seeds, one run each per algorithm"""
    tag: str = "eval/success_rate"
    """the scalar tabulated per evaluation step"""
    run_root: str = field(default_factory=lambda: os.path.join("runs", f"curves_{int(time.time())}"))
    """directory for the runs (default: a new directory in runs/)"""
    output: str = ""
    """also write the table to this markdown file"""


def read(run_dir: str, tag: str) -> dict[int, float]:
    events = EventAccumulator(run_dir)
    events.Reload()
    return {e.step: e.value for e in events.Scalars(tag)} if tag in events.Tags()["scalars"] else {}


def main(args: Args, passthrough: list[str]) -> None:
    curves, sps = {}, {}
    for algorithm in args.algorithms:
        for seed in args.seeds:
            root = os.path.join(args.run_root, algorithm, str(seed))
            script = str(ROOT / "algorithms" / f"{algorithm}.py")
            command = [sys.executable, script, *passthrough, f"--seed={seed}", f"--run-root={root}"]
            print("$", " ".join(command[1:]), flush=True)
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            (run_dir,) = glob.glob(os.path.join(root, "*"))
            curves[algorithm, seed] = read(run_dir, args.tag)
            sps[algorithm, seed] = statistics.mean(read(run_dir, "charts/SPS").values())

    steps = sorted(set().union(*(c.keys() for c in curves.values())))
    header = "| env steps | " + " | ".join(
        f"{a} (mean; seeds {', '.join(map(str, args.seeds))})" for a in args.algorithms
    )
    lines = [header + " |", "|---:|" + "---|" * len(args.algorithms)]
    for step in steps:
        cells = []
        for a in args.algorithms:
            values = [curves[a, s].get(step) for s in args.seeds]
            values = [v for v in values if v is not None]
            cells.append(f"{statistics.mean(values):.3f} ({', '.join(f'{v:.3f}' for v in values)})" if values else "")
        lines.append(f"| {step:,} | " + " | ".join(cells) + " |")
    lines.append(
        "| training SPS (mean) | "
        + " | ".join(f"{statistics.mean(sps[a, s] for s in args.seeds):,.0f}" for a in args.algorithms)
        + " |"
    )
    table = "\n".join(lines) + f"\n\n{args.tag}; run args: {' '.join(passthrough)}\n"
    print(table)
    if args.output:
        pathlib.Path(args.output).write_text(table)


if __name__ == "__main__":
    # this script's flags come before `--`, the algorithm flags every run gets after it
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    main(tyro.cli(Args, args=argv[:split], description=__doc__), argv[split + 1 :])
