"""Run algorithm files on one config for several seeds and tabulate their evaluation curves.

    python results/learning_curves.py --algorithms crl_infonce crl_dpo --seeds 1 2 3 -- \
        --env-id simple_u_maze --episode-length 200 --unroll-length 50 --total-timesteps 640000 \
        --learning-starts 200 --num-evals 5 --num-eval-envs 256

Everything after `--` is passed to every run. Each (algorithm, seed) runs as its own subprocess
under `--run-root` (default: a new directory in runs/), the scalars are read back from the
TensorBoard event files, and a markdown table of `--tag` per evaluation step (mean and the
per-seed values) plus the mean training SPS is printed and, with `--output`, written to a file.
"""

from __future__ import annotations

import argparse
import glob
import os
import pathlib
import statistics
import subprocess
import sys
import time

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

ROOT = pathlib.Path(__file__).resolve().parent.parent


def read(run_dir: str, tag: str) -> dict[int, float]:
    events = EventAccumulator(run_dir)
    events.Reload()
    return {e.step: e.value for e in events.Scalars(tag)} if tag in events.Tags()["scalars"] else {}


def main() -> None:
    argv = sys.argv[1:]
    passthrough = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algorithms", nargs="+", default=["crl_infonce"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--tag", default="eval/success_rate")
    parser.add_argument("--run-root", default=os.path.join("runs", f"curves_{int(time.time())}"))
    parser.add_argument("--output", default="")
    args = parser.parse_args(own)

    curves, sps = {}, {}
    for algorithm in args.algorithms:
        for seed in args.seeds:
            root = os.path.join(args.run_root, algorithm, str(seed))
            command = [sys.executable, str(ROOT / "algorithms" / f"{algorithm}.py"), *passthrough,
                       f"--seed={seed}", f"--run-root={root}"]  # fmt: skip
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
    main()
