"""Run a benchmark matrix (algorithms x envs x seeds at a budget) and tabulate it.

    python results/benchmark.py --preset cpu-smoke          # minutes on 2 CPU cores, tiny networks
    python results/benchmark.py --preset cpu-small          # about an hour on 2 CPU cores
    python results/benchmark.py --preset gpu-paper          # the benchmark's envs, 10M-50M steps (GPU)
    python results/benchmark.py --preset cpu-small --algorithms crl_infonce --seeds 1 2 --env-ids reacher

Each (algorithm, env, seed) is one subprocess `python algorithms/{algorithm}.py` with the
preset's flags for that env (plus `--extra` flags, given as `--extra=--flag=value`), writing its
TensorBoard run directory under `{out_dir}/runs`. A run whose event file already holds its
final evaluation is not repeated, so an interrupted benchmark continues where it stopped.
Afterwards the evaluation scalars are read back with TensorBoard's reader and written to

* `{out_dir}/evals.csv`: one row per evaluation (algorithm, env_id, seed, env_steps,
  success_rate, time_at_goal, final_distance, episodic_return, run_dir);
* `{out_dir}/final.csv`: one row per run (its last evaluation, the mean training SPS, the
  wall time of the subprocess, kept from the invocation that ran it, and the exact command);
* `{out_dir}/summary.md`: per (env, algorithm) the final success rate and time at goal (IQM
  over seeds, 95% bootstrap interval), training SPS and wall time;
* `{out_dir}/curves.png`: learning curves (IQM over seeds with a 95% bootstrap interval, see
  `results/plots.py`), unless `--no-plot`.
"""

from __future__ import annotations

import csv
import os
import pathlib
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "results"))

import plots  # noqa: E402

ALGORITHMS = ("crl_infonce", "crl_dpo", "sac_her", "td3_her")
EVAL_TAGS = {
    "success_rate": "eval/success_rate",
    "time_at_goal": "eval/time_at_goal",
    "final_distance": "eval/final_distance",
    "episodic_return": "eval/episodic_return",
}


@dataclass(frozen=True)
class Preset:
    algorithms: tuple[str, ...]
    env_flags: dict[str, tuple[str, ...]]  # env id -> flags of its runs (budget included)
    seeds: tuple[int, ...]
    common_flags: tuple[str, ...] = ()
    algorithm_flags: dict[str, tuple[str, ...]] = field(default_factory=dict)
    note: str = ""


_TINY = (
    "--num-envs=4",
    "--num-eval-envs=2",
    "--unroll-length=10",
    "--batch-size=16",
    "--buffer-size=100",
    "--learning-starts=10",
    "--width=16",
    "--depth=1",
    "--updates-per-rollout=2",
    "--total-timesteps=400",
    "--num-evals=2",
)
_MAZE_200 = ("--episode-length=200", "--unroll-length=50", "--learning-starts=200", "--num-eval-envs=256")
# JaxGCRL's run default: episodes of 1001 steps for every env (its docs recommend 100 for arm
# reach and 150 for arm push and binpick, used here). The default update ratio,
# num_envs * (episode_length - 1) / batch_size gradient steps per training step, follows it;
# `--dry-run` prints both for every run.
_EP_1001 = ("--episode-length=1001",)
_PAPER_50M = ("--total-timesteps=50000000", "--num-evals=50", "--num-envs=512", *_EP_1001)
_PAPER_10M = ("--total-timesteps=10000000", "--num-evals=50", "--num-envs=256", *_EP_1001)

PRESETS = {
    "cpu-smoke": Preset(
        algorithms=ALGORITHMS,
        env_flags={"reacher": ()},
        seeds=(1,),
        common_flags=_TINY,
        algorithm_flags={"crl_infonce": ("--repr-dim=8",), "crl_dpo": ("--repr-dim=8",)},
        note="tiny networks and 400 env steps: checks the pipeline end to end, learns nothing",
    ),
    "cpu-small": Preset(
        algorithms=ALGORITHMS,
        env_flags={
            "reacher": ("--unroll-length=50", "--total-timesteps=3000000", "--num-evals=6", "--num-eval-envs=256"),
            "simple_u_maze": (*_MAZE_200, "--total-timesteps=640000", "--num-evals=5"),
        },
        seeds=(1, 2, 3),
        note="the two cheapest envs that show learning, default networks, 3 seeds",
    ),
    "gpu-paper": Preset(
        algorithms=ALGORITHMS,
        env_flags={
            "reacher": _PAPER_10M,
            "cheetah": _PAPER_10M,
            "pusher_easy": _PAPER_10M,
            "pusher_hard": _PAPER_50M,
            "ant": _PAPER_50M,
            "ant_ball": _PAPER_50M,
            "ant_push": _PAPER_50M,
            "ant_u_maze": _PAPER_50M,
            "ant_big_maze": _PAPER_50M,
            "ant_hardest_maze": _PAPER_50M,
            "humanoid": _PAPER_50M,
            "humanoid_u_maze": _PAPER_50M,
            "simple_u_maze": _PAPER_10M,
            "arm_reach": (*_PAPER_10M, "--episode-length=100"),
            "arm_push_easy": (*_PAPER_50M, "--episode-length=150"),
            "arm_binpick_easy": (*_PAPER_50M, "--episode-length=150"),
        },
        seeds=(1, 2, 3, 4, 5),
        note="the benchmark's envs at its budgets (10M-50M env steps) and episode lengths: a GPU job",
    ),
}


@dataclass(frozen=True)
class Args:
    preset: str = "cpu-smoke"
    """one of cpu-smoke, cpu-small, gpu-paper"""
    algorithms: tuple[str, ...] = ()
    """restrict to these algorithms (default: the preset's)"""
    env_ids: tuple[str, ...] = ()
    """restrict to these envs (default: the preset's)"""
    seeds: tuple[int, ...] = ()
    """use these seeds (default: the preset's)"""
    extra: tuple[str, ...] = ()
    """flags added to every run, e.g. --extra=--backend=mjx"""
    out_dir: str = ""
    """where runs/, the CSVs and the PNG go (default: results/benchmark/{preset})"""
    plot: bool = True
    """draw curves.png"""
    dry_run: bool = False
    """print the commands and stop"""


class BenchmarkError(Exception):
    pass


def plan(args: Args) -> tuple[Preset, list[tuple[str, str, int, list[str]]]]:
    if args.preset not in PRESETS:
        raise BenchmarkError(f"unknown preset '{args.preset}'; choose one of {', '.join(PRESETS)}")
    preset = PRESETS[args.preset]
    algorithms = args.algorithms or preset.algorithms
    env_ids = args.env_ids or tuple(preset.env_flags)
    unknown = [a for a in algorithms if a not in ALGORITHMS]
    if unknown:
        raise BenchmarkError(f"unknown algorithm(s) {unknown}; choose from {', '.join(ALGORITHMS)}")
    missing = [e for e in env_ids if e not in preset.env_flags]
    if missing:
        raise BenchmarkError(
            f"preset '{args.preset}' has no budget for {missing}; its envs are {', '.join(preset.env_flags)}"
        )
    jobs = []
    for env_id in env_ids:
        for algorithm in algorithms:
            for seed in args.seeds or preset.seeds:
                flags = [
                    f"--env-id={env_id}",
                    f"--seed={seed}",
                    f"--exp-name={algorithm}",
                    *preset.common_flags,
                    *preset.env_flags[env_id],
                    *preset.algorithm_flags.get(algorithm, ()),
                    *args.extra,
                ]
                jobs.append((algorithm, env_id, seed, flags))
    return preset, jobs


def flag_value(flags: list[str], name: str) -> str | None:
    """The last `--name=value` among flags (later flags override earlier ones, as in tyro)."""
    value = None
    for f in flags:
        if f.startswith(f"--{name}="):
            value = f.split("=", 1)[1]
    return value


def schedule_line(flags: list[str]) -> str:
    """The episode length and the update ratio a run's flags give (algorithm defaults: 256 envs,
    batch 256)."""
    length = flag_value(flags, "episode-length")
    if length is None:
        return "episode length: the env's default"
    num_envs = int(flag_value(flags, "num-envs") or 256)
    batch = int(flag_value(flags, "batch-size") or 256)
    updates = flag_value(flags, "updates-per-rollout") or max(1, round(num_envs * (int(length) - 1) / batch))
    return f"episode length {length}, {updates} gradient steps per training step"


def finished_run(run_root: str, algorithm: str, env_id: str, seed: int, total: int) -> str | None:
    """A run directory of this job whose last evaluation reached the budget, if any."""
    runs = plots.find_runs(run_root).get((env_id, algorithm), {})
    run_dir = runs.get(seed)
    if run_dir is None:
        return None
    evals = plots.read_scalars(run_dir, ("eval/success_rate",)).get("eval/success_rate", {})
    return run_dir if evals and max(evals) >= total else None


def run_jobs(args: Args) -> tuple[list[dict], list[dict], str]:
    preset, jobs = plan(args)
    out_dir = args.out_dir or str(ROOT / "results" / "benchmark" / args.preset)
    run_root = os.path.join(out_dir, "runs")
    finals, evals, failures = [], [], []
    earlier = {}  # wall times of runs made by an earlier invocation, from its final.csv
    if os.path.exists(os.path.join(out_dir, "final.csv")):
        with open(os.path.join(out_dir, "final.csv")) as f:
            earlier = {row["run_dir"]: row.get("wall_s", "") for row in csv.DictReader(f)}
    for n, (algorithm, env_id, seed, flags) in enumerate(jobs, 1):
        command = [sys.executable, str(ROOT / "algorithms" / f"{algorithm}.py"), *flags, f"--run-root={run_root}"]
        shown = " ".join(["python", f"algorithms/{algorithm}.py", *flags])
        print(f"[{n}/{len(jobs)}] {shown}\n  {schedule_line(flags)}", flush=True)
        if args.dry_run:
            continue
        total = int(flag_value(flags, "total-timesteps") or 1_000_000)
        run_dir = finished_run(run_root, algorithm, env_id, seed, total)
        wall = None
        if run_dir is None:
            start = time.perf_counter()
            result = subprocess.run(command, capture_output=True, text=True)
            wall = time.perf_counter() - start
            if result.returncode != 0:
                failures.append(f"{shown}\n{result.stderr.strip()[-2000:]}")
                print(f"  failed (exit {result.returncode})", flush=True)
                continue
            run_dir = finished_run(run_root, algorithm, env_id, seed, total)
            if run_dir is None:
                failures.append(f"{shown}\nfinished without a final evaluation in {run_root}")
                continue
        else:
            print(f"  already done: {run_dir}", flush=True)
        scalars = plots.read_scalars(run_dir, (*EVAL_TAGS.values(), "charts/SPS"))
        steps = sorted(scalars.get("eval/success_rate", {}))
        for step in steps:
            row = dict(algorithm=algorithm, env_id=env_id, seed=seed, env_steps=step)
            row.update({name: scalars.get(tag, {}).get(step, "") for name, tag in EVAL_TAGS.items()})
            evals.append({**row, "run_dir": os.path.relpath(run_dir, out_dir)})
        last = evals[-1]
        sps = list(scalars.get("charts/SPS", {}).values())
        finals.append(
            {
                **{k: last[k] for k in ("algorithm", "env_id", "seed", "env_steps", *EVAL_TAGS)},
                "mean_sps": round(statistics.mean(sps)) if sps else "",
                "wall_s": round(wall, 1) if wall is not None else earlier.get(last["run_dir"], ""),
                "run_dir": last["run_dir"],
                "command": shown,
            }
        )
        print(
            f"  success_rate {last['success_rate']:.3f} time_at_goal {last['time_at_goal']:.3f}"
            f" at {last['env_steps']:,} steps" + (f", {wall:.0f} s" if wall is not None else ""),
            flush=True,
        )
    if failures:
        raise BenchmarkError("run(s) failed:\n\n" + "\n\n".join(failures))
    return evals, finals, out_dir


def summary_table(finals: list[dict], preset: str, samples: int = 2000) -> str:
    """Markdown: per (env, algorithm), the final success rate and time at goal (IQM over seeds
    with a 95% bootstrap interval), mean training SPS and mean wall time per run."""
    import numpy as np

    rng = np.random.default_rng(0)
    lines = [
        f"Preset `{preset}`. Final evaluation per run, IQM over seeds [95% bootstrap interval].",
        "",
        "| env | algorithm | seeds | env steps | success rate | time at goal | training SPS | wall s / run |",
        "|---|---|---:|---:|---|---|---:|---:|",
    ]
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in finals:
        groups.setdefault((row["env_id"], row["algorithm"]), []).append(row)
    for (env_id, algorithm), rows in groups.items():
        cells = []
        for name in ("success_rate", "time_at_goal"):
            values = np.array([float(r[name]) for r in rows])
            low, high = plots.bootstrap_interval(values, plots.iqm, samples, 0.95, rng)
            cells.append(f"{plots.iqm(values):.3f} [{low:.3f}, {high:.3f}]")
        sps = [float(r["mean_sps"]) for r in rows if r["mean_sps"] != ""]
        walls = [float(r["wall_s"]) for r in rows if r["wall_s"] != ""]
        lines.append(
            f"| {env_id} | {algorithm} | {len(rows)} | {max(int(r['env_steps']) for r in rows):,} | {cells[0]} | "
            f"{cells[1]} | {statistics.mean(sps) if sps else float('nan'):,.0f} | "
            + (f"{statistics.mean(walls):.0f}" if walls else "")
            + " |"
        )
    return "\n".join(lines) + "\n"


def main(args: Args) -> str:
    evals, finals, out_dir = run_jobs(args)
    if args.dry_run:
        return out_dir
    os.makedirs(out_dir, exist_ok=True)
    plots.write_csv(evals, os.path.join(out_dir, "evals.csv"))
    plots.write_csv(finals, os.path.join(out_dir, "final.csv"))
    table = summary_table(finals, args.preset)
    pathlib.Path(out_dir, "summary.md").write_text(table)
    print(table)
    if args.plot:
        wanted = {(r["env_id"], r["algorithm"], r["seed"]) for r in finals}  # this invocation's runs only
        runs = {
            key: {seed: d for seed, d in by_seed.items() if (*key, seed) in wanted}
            for key, by_seed in plots.find_runs(os.path.join(out_dir, "runs")).items()
        }
        runs = {key: by_seed for key, by_seed in runs.items() if by_seed}
        rows = plots.aggregate(runs, plots.DEFAULT_TAGS)
        plots.plot(rows, plots.DEFAULT_TAGS, os.path.join(out_dir, "curves.png"), "iqm", 0.95)
    print(f"wrote {out_dir}/evals.csv, final.csv, summary.md" + (", curves.png" if args.plot else ""))
    return out_dir


if __name__ == "__main__":
    import tyro

    try:
        main(tyro.cli(Args))
    except BenchmarkError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
