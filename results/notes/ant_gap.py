"""The ant investigation's table: each run's evaluations with deterministic and sampled actions.

    python results/notes/ant_gap.py                                   # the runs of results/notes/ant_gap.md
    python results/notes/ant_gap.py --run-roots runs --every 1000000  # any runs

Reads every run directory under `--run-roots` (TensorBoard's reader) whose env is `--env-id`
and prints, per run (its exp_name names the variant), one row per evaluation nearest to each
multiple of `--every` env steps and its last: success rate and time at goal with the policy's mean
(tanh(mean), what eval/success_rate logs) and with sampled actions (eval/sampled_*), the final
distance in both modes, and steps to success. `--output` also writes the table to a file.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import pathlib
import re
import sys
from dataclasses import dataclass

import tyro

ROOT = pathlib.Path(__file__).resolve().parents[2]


def load_tool(name: str):
    """results/tools/{name}.py as a module: the tools sit in a folder beside this one."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "results" / "tools" / f"{name}.py")
    module = sys.modules[name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


plots = load_tool("plots")
TAGS = {
    "success": "eval/success_rate",
    "sampled success": "eval/sampled_success_rate",
    "time at goal": "eval/time_at_goal",
    "sampled time at goal": "eval/sampled_time_at_goal",
    "final distance": "eval/final_distance",
    "sampled final distance": "eval/sampled_final_distance",
    "steps to success": "eval/steps_to_success",
    "sampled steps to success": "eval/sampled_steps_to_success",
}


@dataclass(frozen=True)
class Args:
    run_roots: tuple[str, ...] = ("results/notes/ant_gap/runs", "results/benchmark/cpu-research/runs")
    """folders that hold run directories (relative to the repository or absolute)"""
    env_id: str = "ant"
    """the env whose runs are tabulated"""
    peer_logs: tuple[str, ...] = ("results/notes/ant_gap/jaxgcrl/*.log",)
    """JaxGCRL run logs to add (glob patterns, relative to the repository or absolute)"""
    every: int = 1_000_000
    """tabulate the evaluations at multiples of this many env steps (and each run's last)"""
    output: str = ""
    """also write the table to this file"""


def read_peer_log(path: str) -> tuple[int, int, dict[str, dict[int, float]]]:
    """A JaxGCRL log's seed, episode length and metrics by env step."""
    text = pathlib.Path(path).read_text()
    seed, episode_length = (re.search(rf"'{name}': (\d+)", text) for name in ("seed", "episode_length"))
    if seed is None or episode_length is None:
        print(f"error: {path} does not start with JaxGCRL's printed arguments (seed, episode_length)", file=sys.stderr)
        sys.exit(2)
    seed, episode_length = int(seed.group(1)), int(episode_length.group(1))
    metrics: dict[str, dict[int, float]] = {}
    for step, name, value in re.findall(r"step: (\d+), (eval/\w+): (\S+) \+/-", text):
        metrics.setdefault(name, {})[int(step)] = float(value)
    return seed, episode_length, metrics


def shown_steps(steps: list[int], every: int) -> list[int]:
    """The evaluation nearest to each multiple of `every`, and the last one."""
    multiples = range(every, steps[-1] + every, every)
    return sorted({min(steps, key=lambda s, m=m: abs(s - m)) for m in multiples} | {steps[-1]})


def table(args: Args) -> str:
    lines = [
        "| run (variant, seed) | env steps | " + " | ".join(TAGS) + " |",
        "|---|---:|" + "---:|" * len(TAGS),
    ]
    for root in args.run_roots:
        found = plots.find_runs(os.path.join(ROOT, root) if not os.path.isabs(root) else root)
        for (env_id, variant), by_seed in sorted(found.items()):
            if env_id != args.env_id:
                continue
            for seed, run_dir in sorted(by_seed.items()):
                scalars = plots.read_scalars(run_dir, tuple(TAGS.values()))
                steps = sorted(scalars.get("eval/success_rate", {}))
                if not steps:
                    continue
                for step in shown_steps(steps, args.every):
                    cells = []
                    for tag in TAGS.values():
                        value = scalars.get(tag, {}).get(step)
                        steps_to = tag.endswith("steps_to_success")
                        cells.append("-" if value is None else f"{value:.0f}" if steps_to else f"{value:.3f}")
                    lines.append(f"| {variant}, {seed} | {step:,} | " + " | ".join(cells) + " |")
    for pattern in args.peer_logs:
        for path in sorted(glob.glob(os.path.join(ROOT, pattern) if not os.path.isabs(pattern) else pattern)):
            seed, episode_length, metrics = read_peer_log(path)
            success, at_goal = metrics.get("eval/episode_success_any", {}), metrics.get("eval/episode_success", {})
            if not success:
                continue
            for step in shown_steps(sorted(success), args.every):
                cells = ["-"] * len(TAGS)
                cells[0] = f"{success[step]:.3f}"
                if step in at_goal:
                    cells[2] = f"{at_goal[step] / episode_length:.3f}"
                name = pathlib.Path(path).stem
                lines.append(f"| JaxGCRL 6dccab2 crl ({name}), {seed} | {step:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(args: Args) -> str:
    text = table(args)
    print(text)
    if args.output:
        pathlib.Path(args.output).write_text(text)
    return text


if __name__ == "__main__":
    main(tyro.cli(Args, description=__doc__))
