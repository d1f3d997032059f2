"""Run a benchmark matrix (algorithms x envs x seeds at a budget) and tabulate it.

    python results/tools/benchmark.py --preset cpu-smoke          # minutes on 2 CPU cores, tiny networks
    python results/tools/benchmark.py --preset cpu-small          # about an hour on 2 CPU cores
    python results/tools/benchmark.py --preset cpu-suite          # crl_infonce on 14 envs: hours on 2 CPU cores
    python results/tools/benchmark.py --preset gpu-paper          # the benchmark's envs, 10M-50M steps (GPU)
    python results/tools/benchmark.py --preset cpu-small --algorithms crl_infonce --seeds 1 2 --env-ids reacher

    # one GPU window: the jobs of gpu-crl that fit in 420 s, then what must leave the machine
    python results/tools/benchmark.py --preset gpu-crl --time-budget 420 --pack $OUT
    python results/tools/benchmark.py --preset gpu-crl --unpack FOLDER   # back here: merge and tabulate

Each (algorithm, env, seed) is one subprocess `python algorithms/{algorithm}.py` with the
preset's flags for that env (plus `--extra` flags, one per `--extra=--flag=value`), writing its
TensorBoard run directory under `{out_dir}/runs`. The pseudo-algorithm `random` is
`python results/tools/random_policy.py` instead: the same evaluation protocol (the run's
`--num-eval-envs` episodes of its episode length) with uniformly random actions, and the env-only
throughput at the run's `--num-envs`, written to `{out_dir}/random/`. A run whose event file
already holds its final evaluation is not repeated, so an interrupted benchmark continues where
it stopped; `--finished-only` starts no run and tabulates those that have finished (for a
preset that another invocation is still running). Afterwards the evaluation scalars are read
back with TensorBoard's reader and written to

* `{out_dir}/evals.csv`: one row per evaluation (algorithm, env_id, seed, env_steps,
  success_rate, time_at_goal, final_distance, episodic_return, steps_to_success, the same
  three measures with sampled actions, the named tasks' overall success and each task's success
  (`tasks_overall_success`, `task1_success` ... `task5_success`, and
  `sampled_tasks_overall_success`; blank for runs from before the tasks), run_dir);
* `{out_dir}/final.csv`: one row per run (its last evaluation, the mean training SPS, the
  wall time of the subprocess, its compile and training seconds as the run printed them, and
  the exact command); a `random` row has env_steps 0 and, as mean_sps, the env-only rate.
  The timings of the invocation that ran each run are kept in `{out_dir}/timings.json`,
  written after every run. A resumed run's wall and compile seconds are those of its last
  segment (the invocation that finished it), and its training seconds its env steps over the
  SPS it printed last, so they do not add up as a single run's do;
* `{out_dir}/summary.md`: per (env, algorithm) the final success rate (the policy's mean, and
  sampled actions) and time at goal (IQM over seeds, 95% bootstrap interval), training SPS
  and wall time; where the env has a `random` row, the share of the wall time spent
  compiling, in the env (env steps / env-only rate, an estimate: the env runs fused with the
  rest), in the rest of training (gradient steps and the buffer) and outside training
  (evaluations, start-up);
* `{out_dir}/curves.png`: learning curves (IQM over seeds with a 95% bootstrap interval, see
  `results/tools/plots.py`) of success rate (the policy's mean, then sampled actions where the runs
  logged them) and time at goal per env, with the random policy's as a dashed line, unless
  `--no-plot`.

A preset with `seeds_per_process` K (gpu-crl: 5) trains K consecutive seeds in one process
through one compile (`--num-seeds K`): such a job is named by its first seed, has one run
directory per seed, and is finished when each of them is; its rows share the process's wall,
compile and training seconds.

`--time-budget SECONDS` starts a job only if its expected time, plus 15%, fits in what is left
of the budget, and stops (SIGTERM, then SIGKILL 30 s later) one still running when none is: the expected time is
the job's measured wall time when it finished before, otherwise the preset's estimate for its env
scaled by how the finished jobs compared with theirs (`estimate_seconds`). Each job's wall time
and whether it finished go into `{out_dir}/jobs.json`. `--pack FOLDER` ends the invocation by
writing what a GPU job hands back (at most --pack-max-files files of at most --pack-max-mb MB,
8 and 16 by default): summary.md,
final.csv, evals.csv, curves.png, timings.json, jobs.json and runs.tgz (the tabulated runs'
event files and args.json, no model or checkpoint). `--unpack FOLDER` on this side merges such a
folder into `{out_dir}` (results/benchmark/{preset}/, committed) and tabulates every finished run:
each GPU window adds rows.

A run is a job's when the arguments it recorded (its `args.json`) are the job's flags and,
where the flags say nothing, the algorithm's defaults; so a run made with other `--extra` flags
in the same `--out-dir` is neither resumed nor tabulated as this job's (arguments that do not
change what is learned, such as `--checkpoint-every`, are not compared). The tables and the
curves hold every finished run of the preset, also when an invocation is restricted to some
of its runs (`--env-ids ant --seeds 2`); runs outside the preset (other seeds) only while an
invocation names them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import io
import json
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field

import plots  # results/tools/plots.py: a script's own folder is the first entry of its import path
import tyro

ROOT = pathlib.Path(__file__).resolve().parents[2]

ALGORITHMS = ("crl_infonce", "crl_dpo", "sac_her", "td3_her")
RANDOM = "random"  # the random-policy baseline: results/tools/random_policy.py
EVAL_TAGS = {
    "success_rate": "eval/success_rate",
    "time_at_goal": "eval/time_at_goal",
    "final_distance": "eval/final_distance",
    "episodic_return": "eval/episodic_return",
    "steps_to_success": "eval/steps_to_success",
    # the same goals with sampled actions (the policy that collects the training data)
    "sampled_success_rate": "eval/sampled_success_rate",
    "sampled_time_at_goal": "eval/sampled_time_at_goal",
    "sampled_final_distance": "eval/sampled_final_distance",
    # the env's five named tasks (--eval-tasks; blank for runs from before them)
    "tasks_overall_success": "eval/tasks/overall_success",
    **{f"task{k}_success": f"eval/tasks/task{k}_success" for k in range(1, 6)},
    "sampled_tasks_overall_success": "eval/tasks/sampled_overall_success",
}
COLUMN_OF_TAG = {tag: name for name, tag in EVAL_TAGS.items()}


@dataclass(frozen=True)
class Preset:
    algorithms: tuple[str, ...]
    env_flags: dict[str, tuple[str, ...]]  # env id -> flags of its runs (budget included)
    seeds: tuple[int, ...]
    common_flags: tuple[str, ...] = ()
    algorithm_flags: dict[str, tuple[str, ...]] = field(default_factory=dict)
    note: str = ""
    env_seeds: dict[str, tuple[int, ...]] = field(default_factory=dict)  # env id -> seeds, where not `seeds`
    # Seeds trained together by one process through one compile (--num-seeds): a job is then
    # consecutive seeds, named by its first, and finished when each of its runs is.
    seeds_per_process: int = 1
    # env id -> the expected wall seconds of one job (one process) on the machine the preset is
    # for, before any was measured: what --time-budget plans with until jobs.json holds a
    # measurement (see estimate_seconds).
    estimate_s: dict[str, float] = field(default_factory=dict)


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
_SUITE_1M = ("--total-timesteps=1000000", "--num-evals=10")
_PAPER_50M = ("--total-timesteps=50000000", "--num-evals=50", "--num-envs=512", *_EP_1001)
_PAPER_10M = ("--total-timesteps=10000000", "--num-evals=50", "--num-envs=256", *_EP_1001)
# Research scale on a CPU: 10M env steps at the defaults (256 envs) and JaxGCRL's episode
# length, an evaluation every 500k steps, a checkpoint every 1M (an interrupted run resumes from
# it). About 1,900 training SPS on ant on 2 CPU cores: 90 minutes per run with the cores to itself.
_RESEARCH_10M = ("--total-timesteps=10000000", "--num-evals=20", "--checkpoint-every=1000000", *_EP_1001)

# The headline configuration on a GPU: JaxGCRL's ant run (1024 envs, 1001-step episodes) for
# 10M env steps, 10 evaluations.
_HEADLINE_10M = ("--num-envs=1024", "--episode-length=1001", "--total-timesteps=10000000", "--num-evals=10")
_GPU_10M = ("--num-envs=1024", "--total-timesteps=10000000", "--num-evals=10")
# JaxGCRL's CRL set and the episode length of its runs: 1001 steps (its run default), except the
# arm, for which its docs recommend 100 (reach) and 150 (push, binpick).
_CRL_SET = {
    "reacher": 1001,
    "cheetah": 1001,
    "pusher_easy": 1001,
    "pusher_hard": 1001,
    "ant": 1001,
    "ant_ball": 1001,
    "ant_push": 1001,
    "ant_u_maze": 1001,
    "ant_big_maze": 1001,
    "ant_hardest_maze": 1001,
    "humanoid": 1001,
    "humanoid_u_maze": 1001,
    "simple_u_maze": 1001,
    "simple_big_maze": 1001,
    "simple_hardest_maze": 1001,
    "arm_reach": 100,
    "arm_push_easy": 150,
    "arm_binpick_easy": 150,
}
# Expected H200 seconds of one gpu-crl job (5 seeds of 10M env steps, compile and evaluations
# included), before any was measured. From ant's single seed (170 s: 29 s compile, 102 s of
# 568,000 gradient steps, 9 s in the env at 1.13M env-only SPS): about 300 s for five seeds if
# the update stays latency-bound; the other bodies scaled by their env cost. The arm's short
# episodes mean a tenth of the gradient steps, but its env is the slowest. Guesses until
# measured: the runner records each job's time in jobs.json and scales these by what it finds.
_GPU_CRL_ESTIMATE_S = {
    **dict.fromkeys(("reacher", "simple_u_maze", "simple_big_maze", "simple_hardest_maze"), 240.0),
    **dict.fromkeys(("cheetah", "ant", "ant_ball", "ant_push"), 300.0),
    **dict.fromkeys(("ant_u_maze", "ant_big_maze", "ant_hardest_maze", "pusher_easy", "pusher_hard"), 330.0),
    **dict.fromkeys(("humanoid", "humanoid_u_maze"), 360.0),
    **dict.fromkeys(("arm_reach", "arm_push_easy", "arm_binpick_easy"), 400.0),
}

PRESETS = {
    "cpu-smoke": Preset(
        algorithms=(*ALGORITHMS, RANDOM),
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
    "cpu-suite": Preset(
        algorithms=(RANDOM, "crl_infonce"),
        env_flags={
            # crl_infonce at its defaults: 256 envs, each env's default episode length and the
            # default update ratio (episode_length - 1 gradient steps per training step of
            # 256 x 62 env steps). With 1000-step episodes that is about 1,500 training SPS on
            # 2 CPU cores (measured on cheetah: 1,100-1,500 SPS while the cores were shared),
            # so 1M env steps is 10-15 minutes. cheetah ran first, at 2M.
            "cheetah": ("--total-timesteps=2000000", "--num-evals=10"),
            "pusher_easy": _SUITE_1M,
            "ant": _SUITE_1M,
            "ant_ball": _SUITE_1M,
            "ant_push": _SUITE_1M,
            "ant_u_maze": _SUITE_1M,
            "ant_big_maze": _SUITE_1M,
            "humanoid": _SUITE_1M,
            "humanoid_u_maze": _SUITE_1M,
            "simple_big_maze": _SUITE_1M,
            # The arm runs at 300-1,100 env-only SPS on this CPU: the default prefill of 1,000
            # steps per env (256,000 env steps) would be half or more of these budgets, so
            # it is 200 steps (two episodes of arm_reach) here.
            "arm_reach": ("--total-timesteps=600000", "--num-evals=10", "--learning-starts=200"),
            "arm_push_easy": ("--total-timesteps=500000", "--num-evals=10", "--learning-starts=200"),
            "arm_grasp": ("--total-timesteps=500000", "--num-evals=10", "--learning-starts=200"),
            "arm_binpick_easy": ("--total-timesteps=300000", "--num-evals=10", "--learning-starts=200"),
        },
        seeds=(1,),
        common_flags=("--save-model",),  # the trained policy, to look into an env that did not rise (kept out of git)
        note="crl_infonce at its defaults on every env family, one seed, 10-15 CPU minutes per env, beside a random policy",
    ),
    "cpu-research": Preset(
        algorithms=("crl_infonce",),
        env_flags={
            env_id: _RESEARCH_10M
            for env_id in ("ant", "ant_u_maze", "humanoid", "cheetah", "simple_big_maze", "pusher_easy")
        },
        seeds=(1,),
        env_seeds={"ant": (1, 2)},
        common_flags=("--save-model",),
        note="crl_infonce at 10M env steps on six envs (two seeds on ant): hours per run on 2 CPU cores",
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
    "gpu-headline": Preset(
        algorithms=("crl_infonce",),
        env_flags={"ant": _HEADLINE_10M},
        seeds=(1, 2),
        common_flags=("--save-model",),
        note="ant at 10M env steps in JaxGCRL's headline configuration (1024 envs, 1001-step episodes), one seed"
        " per process: the first runs on an H200 (results/benchmark/gpu-headline/README.md)",
    ),
    "gpu-crl": Preset(
        algorithms=("crl_infonce",),
        env_flags={env_id: (*_GPU_10M, f"--episode-length={length}") for env_id, length in _CRL_SET.items()},
        seeds=(1, 2, 3, 4, 5),
        seeds_per_process=5,
        # No checkpoint when a job is stopped at the end of --time-budget: five seeds' buffers are
        # 14 GB to write, and the machine is gone before it could be resumed; the job runs again.
        common_flags=("--no-checkpoint-on-stop",),
        estimate_s=_GPU_CRL_ESTIMATE_S,
        note="crl_infonce on JaxGCRL's 18 CRL envs at 10M env steps, 1024 envs, 5 seeds per compile: one GPU"
        " command at a time with --time-budget and --pack",
    ),
}


@dataclass(frozen=True)
class Args:
    preset: str = "cpu-smoke"
    """one of cpu-smoke, cpu-small, cpu-suite, cpu-research, gpu-paper, gpu-headline, gpu-crl"""
    algorithms: tuple[str, ...] = ()
    """restrict to these algorithms (default: the preset's)"""
    env_ids: tuple[str, ...] = ()
    """restrict to these envs (default: the preset's)"""
    seeds: tuple[int, ...] = ()
    """use these seeds (default: the preset's)"""
    extra: tyro.conf.UseAppendAction[tuple[str, ...]] = ()
    """flags added to every run, one per --extra: --extra=--backend=mjx --extra=--fixed-goals"""
    out_dir: str = ""
    """where runs/, the CSVs and the PNG go (default: results/benchmark/{preset})"""
    plot: bool = True
    """draw curves.png"""
    dry_run: bool = False
    """print the commands and stop"""
    finished_only: bool = False
    """start no run: tabulate and plot the runs that have finished (a long preset can be
    tabulated while another invocation is still running it)"""
    time_budget: float | None = None
    """seconds this invocation may run jobs for: a job starts only if its measured or estimated
    time (jobs.json, the preset's estimates) fits in what is left, and is stopped when none is"""
    pack: str = ""
    """afterwards, write what must leave the machine into this folder: the tables, the curves,
    timings.json, jobs.json and runs.tgz (the finished runs' event files and args.json), within
    --pack-max-files and --pack-max-mb"""
    pack_max_files: int = 8
    """--pack: the most files the job may hand back"""
    pack_max_mb: float = 16.0
    """--pack: the largest file the job may hand back, in MB (2^20 bytes)"""
    unpack: str = ""
    """a folder written by --pack on another machine: merge its runs and timings into --out-dir,
    then tabulate the finished runs (starts no run)"""


class BenchmarkError(Exception):
    pass


def plan(args: Args) -> tuple[Preset, list[tuple[str, str, int, list[str]]]]:
    if args.preset not in PRESETS:
        raise BenchmarkError(f"unknown preset '{args.preset}'; choose one of {', '.join(PRESETS)}")
    preset = PRESETS[args.preset]
    algorithms = args.algorithms or preset.algorithms
    env_ids = args.env_ids or tuple(preset.env_flags)
    unknown = [a for a in algorithms if a not in (*ALGORITHMS, RANDOM)]
    if unknown:
        raise BenchmarkError(f"unknown algorithm(s) {unknown}; choose from {', '.join(ALGORITHMS)}, {RANDOM}")
    missing = [e for e in env_ids if e not in preset.env_flags]
    if missing:
        raise BenchmarkError(
            f"preset '{args.preset}' has no budget for {missing}; its envs are {', '.join(preset.env_flags)}"
        )
    jobs = []
    for env_id in env_ids:
        for algorithm in algorithms:
            seeds = args.seeds or preset.env_seeds.get(env_id, preset.seeds)
            together = 1 if algorithm == RANDOM else preset.seeds_per_process
            for first, count in seed_groups(seeds, together):
                flags = [
                    f"--env-id={env_id}",
                    f"--seed={first}",
                    *([f"--num-seeds={count}"] if count > 1 else []),
                    f"--exp-name={algorithm}",
                    *preset.common_flags,
                    *preset.env_flags[env_id],
                    *preset.algorithm_flags.get(algorithm, ()),
                    *args.extra,
                ]
                jobs.append((algorithm, env_id, first, flags))
    return preset, jobs


def seed_groups(seeds: tuple[int, ...], size: int) -> list[tuple[int, int]]:
    """(first seed, count) of each process: runs of consecutive seeds (--num-seeds trains seed,
    seed + 1, ...), at most `size` each, in the order given."""
    groups = []
    for seed in seeds:
        if groups and groups[-1][0] + groups[-1][1] == seed and groups[-1][1] < size:
            groups[-1] = (groups[-1][0], groups[-1][1] + 1)
        else:
            groups.append((seed, 1))
    return groups


def job_seeds(flags: list[str]) -> range:
    """The seeds a job's process trains: --seed and the --num-seeds after it."""
    first = int(flag_value(flags, "seed"))
    return range(first, first + int(flag_value(flags, "num-seeds") or 1))


def flag_value(flags: list[str], name: str) -> str | None:
    """The last `--name=value` among flags (later flags override earlier ones, as in tyro)."""
    value = None
    for f in flags:
        if f.startswith(f"--{name}="):
            value = f.split("=", 1)[1]
    return value


def budget(flags: list[str]) -> int:
    """A run's env steps: its --total-timesteps, or the algorithms' default."""
    return int(flag_value(flags, "total-timesteps") or 1_000_000)


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


# Arguments that do not change what a run learns or measures: a run recorded with other values
# of these is still the job's (the runner's own --run-root, a later --resume, logging, saving).
NOT_COMPARED = {
    "presample",
    "run_root",
    "resume",
    "track",
    "wandb_project_name",
    "capture_video",
    "video_every",
    "save_model",
    "checkpoint_every",
    "eval_only",
    "load_model",
}


@functools.cache
def default_args(algorithm: str) -> dict:
    """An algorithm file's argument defaults, as its args.json would record them."""
    module = importlib.import_module(f"algorithms.{algorithm}")
    defaults = {}
    for f in dataclasses.fields(module.Args):
        value = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        defaults[f.name] = json.loads(json.dumps(value))  # tuples as lists, as in args.json
    return defaults


def same_value(recorded, given: str) -> bool:
    """Whether a flag's text gives the value args.json recorded."""
    if isinstance(recorded, bool):
        return given.lower() == str(recorded).lower()
    if recorded is None:
        return given.lower() == "none"
    if isinstance(recorded, (int, float)):
        try:
            return float(given) == float(recorded)
        except ValueError:
            return False
    return str(recorded) == given


def recorded_args_agree(run_dir: str, algorithm: str, flags: list[str]) -> bool:
    """Whether a run's recorded arguments (its args.json) are the job's: each argument its flags
    set (`--name=value`, or boolean `--name` / `--no-name`) has that value, and each other one
    the algorithm's default, so that a run made with other `--extra` flags is neither resumed nor
    tabulated as this job's. Arguments in NOT_COMPARED, and those a run older than them did not
    record, are not compared; a run without args.json cannot be checked and agrees."""
    path = os.path.join(run_dir, "args.json")
    if not os.path.exists(path):
        return True
    with open(path) as f:
        recorded = json.load(f)["args"]
    given = {}
    for flag in flags:
        name, equals, text = flag.removeprefix("--").partition("=")
        key = name.replace("-", "_")
        if not equals:  # a boolean flag
            key, text = (key[3:], "false") if key not in recorded and key.startswith("no_") else (key, "true")
        if key not in recorded:
            return False  # a flag the run could not have had
        given[key] = text
    for key, value in recorded.items():
        if key in NOT_COMPARED:
            continue
        if key in given:
            if not same_value(value, given[key]):
                return False
        elif key in default_args(algorithm) and value != default_args(algorithm)[key]:
            return False
    return True


def job_run(run_root: str, algorithm: str, env_id: str, seed: int, flags: list[str]) -> str | None:
    """The newest run directory of this (algorithm, env, seed) whose recorded arguments agree
    with the job's flags, if any."""
    candidates = []
    for directory, _, files in os.walk(run_root):
        match = plots.RUN_NAME.match(os.path.basename(directory))
        if match is None or not any(f.startswith("events.out.tfevents") for f in files):
            continue
        if (match["env_id"], match["exp_name"], int(match["seed"])) == (env_id, algorithm, seed):
            candidates.append((int(match["time"]), directory))
    for _, directory in sorted(candidates, reverse=True):
        if recorded_args_agree(directory, algorithm, flags):
            return directory
    return None


def finished_run(run_root: str, algorithm: str, env_id: str, seed: int, flags: list[str]) -> str | None:
    """This job's run directory (see job_run) if its last evaluation reached the budget."""
    run_dir = job_run(run_root, algorithm, env_id, seed, flags)
    if run_dir is None:
        return None
    evals = plots.read_scalars(run_dir, ("eval/success_rate",)).get("eval/success_rate", {})
    return run_dir if evals and max(evals) >= budget(flags) else None


def resumable_run(run_root: str, algorithm: str, env_id: str, seed: int, flags: list[str]) -> str | None:
    """This job's run directory (see job_run) if it holds a checkpoint (written with
    --checkpoint-every) but not its final evaluation: an interrupted run to resume."""
    run_dir = job_run(run_root, algorithm, env_id, seed, flags)
    checkpoints = os.path.join(run_dir, "checkpoints") if run_dir else ""
    has_checkpoint = os.path.isdir(checkpoints) and any(f.endswith(".ckpt") for f in os.listdir(checkpoints))
    return run_dir if has_checkpoint else None


def random_command(flags: list[str], output: str) -> list[str]:
    """random_policy.py's flags for a run's flags: its env, seed, episode length, evaluation
    episodes (random goals and named tasks), maze start and number of training envs."""
    output = os.path.relpath(output, ROOT) if output.startswith(str(ROOT)) else output
    command = [
        f"--env-id={flag_value(flags, 'env-id')}",
        f"--seed={flag_value(flags, 'seed')}",
        f"--num-episodes={flag_value(flags, 'num-eval-envs') or 128}",
        f"--num-envs={flag_value(flags, 'num-envs') or 256}",
        f"--output={output}",
    ]
    tasks = 0 if "--no-eval-tasks" in flags else flag_value(flags, "eval-task-episodes") or 8
    command.append(f"--task-episodes={tasks}")
    maze_start = flag_value(flags, "maze-start")
    command += [f"--maze-start={maze_start}"] if maze_start else []
    length = flag_value(flags, "episode-length")
    return command + ([f"--episode-length={length}"] if length else [])


def printed_seconds(stdout: str) -> dict:
    """Compile and training seconds from an algorithm's output: its 'compiled ... in X s' line and
    its last line's env steps over its SPS."""
    compiled = re.search(r"compiled training chunk and evaluation in ([0-9.]+) s", stdout)
    trained = re.search(r"trained ([0-9,]+) env steps .*?([0-9,]+) SPS per seed", stdout)
    return {
        "compile_s": round(float(compiled.group(1)), 1) if compiled else "",
        "train_s": round(int(trained.group(1).replace(",", "")) / int(trained.group(2).replace(",", "")), 1)
        if trained
        else "",
    }


def random_output(out_dir: str, env_id: str, seed: int) -> str:
    return os.path.join(out_dir, RANDOM, f"{env_id}__{RANDOM}__{seed}.json")


def finished(algorithm: str, env_id: str, seed: int, flags: list[str], out_dir: str) -> bool:
    """Whether a job's output is complete: the random policy's JSON, or a run directory whose
    last evaluation reached the budget."""
    if algorithm == RANDOM:
        return os.path.exists(random_output(out_dir, env_id, seed))
    run_root = os.path.join(out_dir, "runs")
    return all(finished_run(run_root, algorithm, env_id, s, flags) is not None for s in job_seeds(flags))


def run_random(
    env_id: str, seed: int, flags: list[str], out_dir: str, timings: dict, left: float | None = None
) -> tuple[dict, str | None]:
    """The `random` row of one (env, seed); runs random_policy.py unless its JSON exists, and
    records its wall time in `timings`. It is stopped after `left` seconds (--time-budget's
    remainder) or 1800, the most such a row takes (a hang)."""
    path = random_output(out_dir, env_id, seed)
    command = random_command(flags, path)
    shown = " ".join(["python", "results/tools/random_policy.py", *command])
    wall, failure = None, None
    if not os.path.exists(path):
        start = time.perf_counter()
        program = str(ROOT / "results" / "tools" / "random_policy.py")
        timeout = 1800.0 if left is None else max(1.0, min(1800.0, left))
        try:  # one evaluation and a throughput measurement: minutes, never hours
            result = subprocess.run(
                [sys.executable, program, *command], capture_output=True, text=True, cwd=ROOT, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            return {}, f"{shown}\ndid not finish in {timeout:.0f} s (--time-budget, or a hang)"
        wall = time.perf_counter() - start
        if result.returncode != 0:
            return {}, f"{shown}\n{result.stderr.strip()[-2000:]}"
    else:
        print(f"  already done: {path}", flush=True)
    with open(path) as f:
        measured = json.load(f)
    run_dir = os.path.relpath(path, out_dir)
    row = dict(algorithm=RANDOM, env_id=env_id, seed=seed, env_steps=0)
    # random_policy.py's keys are the tags without "eval/" (its tasks/* only where it ran them)
    row.update({name: measured.get(tag.removeprefix("eval/"), "") for name, tag in EVAL_TAGS.items()})
    row.update(mean_sps=measured["env_only_sps"], run_dir=run_dir, command=shown)
    if wall is not None:
        timings[run_dir] = {"wall_s": round(wall, 1)}
    row["wall_s"] = timings.get(run_dir, {}).get("wall_s", "")
    return row, failure


def run_process(command: list[str], timeout: float | None) -> tuple[int | None, str, str]:
    """Run a job's process: (exit code, or None when it was stopped at `timeout` seconds, stdout,
    stderr). A process that reaches its time is sent SIGTERM (a run stops after its training
    step) and, STOP_GRACE_S later, SIGKILL."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = process.communicate(timeout=timeout)
        return process.returncode, out, err
    except subprocess.TimeoutExpired:
        process.terminate()
        try:
            out, err = process.communicate(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
        return None, out, err


def run_algorithm(
    algorithm: str, env_id: str, seed: int, flags: list[str], out_dir: str, timings: dict, timeout: float | None = None
) -> tuple[list[dict], list[dict], str | None]:
    """The evaluation rows and the final rows (one per seed of the job) of one algorithm job; runs
    it unless every run of it finished, stopped after `timeout` seconds, and records the wall,
    compile and training seconds of its process in `timings` (under each of its run directories)."""
    run_root = os.path.join(out_dir, "runs")
    command = [sys.executable, str(ROOT / "algorithms" / f"{algorithm}.py"), *flags, f"--run-root={run_root}"]
    shown = " ".join(["python", f"algorithms/{algorithm}.py", *flags])
    seeds = job_seeds(flags)
    run_dirs = [finished_run(run_root, algorithm, env_id, s, flags) for s in seeds]
    timing = None
    if None in run_dirs:
        interrupted = resumable_run(run_root, algorithm, env_id, seed, flags)
        if interrupted is not None:  # a run stopped part-way: continue it from its last checkpoint
            print(f"  resuming {interrupted}", flush=True)
            command = [sys.executable, str(ROOT / "algorithms" / f"{algorithm}.py"), f"--resume={interrupted}"]
        start = time.perf_counter()
        code, stdout, stderr = run_process(command, timeout)
        timing = {"wall_s": round(time.perf_counter() - start, 1), **printed_seconds(stdout)}
        if code is None:
            return [], [], f"{shown}\nstopped at the time budget after {timing['wall_s']} s"
        if code != 0:
            return [], [], f"{shown}\n{stderr.strip()[-2000:]}"
        run_dirs = [finished_run(run_root, algorithm, env_id, s, flags) for s in seeds]
        if None in run_dirs:
            return [], [], f"{shown}\nfinished without a final evaluation in {run_root}"
    else:
        print("  already done: " + ", ".join(run_dirs), flush=True)
    evals, finals = [], []
    for s, run_dir in zip(seeds, run_dirs):
        relative = os.path.relpath(run_dir, out_dir)
        if timing is not None:
            timings[relative] = {**timing, **({"seeds_per_process": len(seeds)} if len(seeds) > 1 else {})}
        recorded = {k: timings.get(relative, {}).get(k, "") for k in ("wall_s", "compile_s", "train_s")}
        scalars = plots.read_scalars(run_dir, (*EVAL_TAGS.values(), "charts/SPS"))
        rows = []
        for step in sorted(scalars.get("eval/success_rate", {})):
            row = dict(algorithm=algorithm, env_id=env_id, seed=s, env_steps=step)
            row.update({name: scalars.get(tag, {}).get(step, "") for name, tag in EVAL_TAGS.items()})
            rows.append({**row, "run_dir": relative})
        sps = list(scalars.get("charts/SPS", {}).values())
        finals.append(
            {
                **{k: rows[-1][k] for k in ("algorithm", "env_id", "seed", "env_steps", *EVAL_TAGS)},
                "mean_sps": round(statistics.mean(sps)) if sps else "",
                "run_dir": relative,
                "command": shown,
                **recorded,
            }
        )
        evals.extend(rows)
    return evals, finals, None


FINAL_COLUMNS = (
    "algorithm",
    "env_id",
    "seed",
    "env_steps",
    *EVAL_TAGS,
    "mean_sps",
    "wall_s",
    "compile_s",
    "train_s",
    "run_dir",
    "command",
)


def tabulated_jobs(args: Args) -> list[tuple[str, str, int, list[str]]]:
    """The jobs whose finished runs the tables hold: the whole preset's (with this invocation's
    --extra flags), then any of this invocation's that the preset does not list (other seeds or
    algorithms), so an invocation restricted to one run does not drop the runs that finished
    before it."""
    _, whole = plan(Args(preset=args.preset, extra=args.extra))
    _, chosen = plan(args)
    listed = {(algorithm, env_id, tuple(job_seeds(flags))) for algorithm, env_id, _, flags in whole}
    return whole + [job for job in chosen if (job[0], job[1], tuple(job_seeds(job[3]))) not in listed]


def job_name(algorithm: str, env_id: str, flags: list[str]) -> str:
    seeds = job_seeds(flags)
    return f"{env_id} {algorithm} seed{f's {seeds[0]}-{seeds[-1]}' if len(seeds) > 1 else f' {seeds[0]}'}"


# --time-budget starts a job only if its expected time, with this margin, fits in what is left
BUDGET_MARGIN = 1.15
# seconds between the SIGTERM that stops a job at the end of --time-budget and its SIGKILL
STOP_GRACE_S = 30


def job_key(algorithm: str, env_id: str, seeds: range) -> str:
    """A job's name in jobs.json: its algorithm, env and seeds (first-last for several)."""
    return f"{algorithm}/{env_id}/{seeds[0]}" + (f"-{seeds[-1]}" if len(seeds) > 1 else "")


def read_json(path: str) -> dict:
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def write_json(data: dict, path: str) -> None:
    """`data` into `path` whole or not at all (a temporary file renamed over it)."""
    plots.write_atomically(path, lambda tmp: pathlib.Path(tmp).write_text(json.dumps(data, indent=1, sort_keys=True)))


def update_json(entries: dict, path: str) -> None:
    """`entries` added to the JSON object in `path` as it is now on disk, so that the entries
    another invocation of the same preset wrote since this one read it are kept."""
    write_json({**read_json(path), **entries}, path)


def estimate_seconds(preset: Preset, measured: dict, algorithm: str, env_id: str, flags: list[str]) -> float | None:
    """The expected wall seconds of a job, for --time-budget. A job that finished before: its
    measured time. Otherwise the preset's estimate for its env, scaled by the median ratio of
    measured to estimated time over the jobs that finished (the machine and flags as they are,
    not as guessed), or without an estimate the median time of those jobs; a job stopped
    part-way before takes longer than it ran then. None: nothing to go by."""
    own = measured.get(job_key(algorithm, env_id, job_seeds(flags)))
    if own and own["finished"]:
        return own["wall_s"]
    done = [(key.split("/")[1], record["wall_s"]) for key, record in measured.items() if record["finished"]]
    ratios = [wall / preset.estimate_s[env] for env, wall in done if env in preset.estimate_s]
    if env_id in preset.estimate_s:
        guess = preset.estimate_s[env_id] * (statistics.median(ratios) if ratios else 1.0)
    else:
        guess = statistics.median(wall for _, wall in done) if done else None
    if own:  # stopped at the end of an earlier budget
        guess = max(guess or 0.0, 1.25 * own["wall_s"])
    return guess


def run_jobs(
    args: Args, jobs: list[tuple[str, str, int, list[str]]] | None = None
) -> tuple[list[dict], list[dict], str, dict[tuple[str, str, int], str], list[str]]:
    """Run the jobs (default: those args select) that have not finished, in order, within
    --time-budget, and return the evaluation rows and final rows of every job that has, the
    output folder, the failures ((algorithm, env, first seed) -> what went wrong) and the jobs
    not started for lack of time. With --finished-only, run none."""
    preset, planned = plan(args)  # an unknown preset or env stops here
    jobs = planned if jobs is None else jobs
    out_dir = args.out_dir or str(ROOT / "results" / "benchmark" / args.preset)
    finals, evals, failures, not_started = [], [], {}, []
    # run dir -> the timings of the invocation that ran it; job -> its process's wall time and
    # whether it finished (what --time-budget estimates from); both kept after every job
    timings_path, jobs_path = os.path.join(out_dir, "timings.json"), os.path.join(out_dir, "jobs.json")
    timings, measured = read_json(timings_path), read_json(jobs_path)
    read_before = dict(timings)  # what this invocation adds is what it writes back (update_json)
    began = time.perf_counter()
    for n, (algorithm, env_id, seed, flags) in enumerate(jobs, 1):
        if algorithm == RANDOM:
            shown = ["results/tools/random_policy.py", *random_command(flags, random_output(out_dir, env_id, seed))]
        else:
            shown = [f"algorithms/{algorithm}.py", *flags]
        print(f"[{n}/{len(jobs)}] python {' '.join(shown)}\n  {schedule_line(flags)}", flush=True)
        if args.dry_run:
            continue
        done = finished(algorithm, env_id, seed, flags, out_dir)
        if args.finished_only and not done:
            print("  not finished: skipped", flush=True)
            continue
        left = None if args.time_budget is None else args.time_budget - (time.perf_counter() - began)
        if left is not None and not done:
            expected = estimate_seconds(preset, measured, algorithm, env_id, flags)
            if left <= 0 or (expected is not None and BUDGET_MARGIN * expected > left):
                guess = "no estimate" if expected is None else f"estimated {expected:.0f} s"
                print(f"  not started: {guess}, {max(left, 0):.0f} s of --time-budget left", flush=True)
                not_started.append(job_name(algorithm, env_id, flags))
                continue
        started = time.perf_counter()
        if algorithm == RANDOM:
            final, failure = run_random(env_id, seed, flags, out_dir, timings, left)
            job_finals = [final] if not failure else []
        else:
            run_evals, job_finals, failure = run_algorithm(algorithm, env_id, seed, flags, out_dir, timings, left)
            evals.extend(run_evals)
        os.makedirs(out_dir, exist_ok=True)
        if not done and not args.finished_only:  # nothing new to record; another invocation may be writing it
            key = job_key(algorithm, env_id, job_seeds(flags))
            measured[key] = {"wall_s": round(time.perf_counter() - started, 1), "finished": failure is None}
            update_json({k: v for k, v in timings.items() if read_before.get(k) != v}, timings_path)
            update_json({key: measured[key]}, jobs_path)
            read_before = dict(timings)
        if failure:
            failures[algorithm, env_id, seed] = failure
            print("  failed", flush=True)
            continue
        for final in job_finals:
            finals.append({k: final.get(k, "") for k in FINAL_COLUMNS})
            print(
                f"  seed {final['seed']}: success_rate {final['success_rate']:.3f} time_at_goal"
                f" {final['time_at_goal']:.3f} at {final['env_steps']:,} steps, {final['wall_s']} s",
                flush=True,
            )
    return evals, finals, out_dir, failures, not_started


def time_shares(rows: list[dict], env_only_sps: float | None) -> str:
    """'compile / env / rest of training / outside training' as % of the mean wall time, or ''."""
    timed = [r for r in rows if all(r.get(k) not in ("", None) for k in ("wall_s", "compile_s", "train_s"))]
    if not timed or not env_only_sps:
        return ""
    wall, compile_s, train = (statistics.mean(float(r[k]) for r in timed) for k in ("wall_s", "compile_s", "train_s"))
    env = min(statistics.mean(int(r["env_steps"]) for r in timed) / env_only_sps, train)
    shares = (compile_s, env, train - env, wall - compile_s - train)
    return " / ".join(f"{100 * x / wall:.0f}" for x in shares)


def summary_table(finals: list[dict], preset: str, samples: int = 2000) -> str:
    """Markdown: per (env, algorithm), the final success rate (the policy's mean, and sampled
    actions), time at goal and the named tasks' overall success (IQM over seeds with a 95% bootstrap interval), mean training SPS
    (a `random` row: env-only SPS), mean wall time per run and, where the env has a `random`
    row, where that wall time went."""
    import numpy as np

    rng = np.random.default_rng(0)
    lines = [
        f"Preset `{preset}`. Final evaluation per run, IQM over seeds [95% bootstrap interval]. A `random` row is"
        " the random policy under the same evaluation, its SPS the env-only rate at the same number of envs.",
        "Time split, % of wall time: compile / env (env steps at the env-only rate) / rest of training (gradient"
        " steps, buffer) / outside training (evaluations, start-up). Seeds trained in one process (--num-seeds)"
        " share its wall time.",
        "",
        "| env | algorithm | seeds | env steps | success rate | sampled success rate | time at goal"
        " | named tasks' success | SPS | wall s / run | time split % |",
        "|---|---|---:|---:|---|---|---|---|---:|---:|---|",
    ]
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in finals:
        groups.setdefault((row["env_id"], row["algorithm"]), []).append(row)
    env_only = {env_id: float(rows[0]["mean_sps"]) for (env_id, a), rows in groups.items() if a == RANDOM}
    for (env_id, algorithm), rows in groups.items():
        cells = []
        for name in ("success_rate", "sampled_success_rate", "time_at_goal", "tasks_overall_success"):
            if algorithm == RANDOM:  # its actions are sampled in both modes: it has one success rate
                name = name.removeprefix("sampled_")
            if any(r.get(name) in ("", None) for r in rows):  # a run from before that was evaluated
                cells.append("")
                continue
            values = np.array([float(r[name]) for r in rows])
            low, high = plots.bootstrap_interval(values, plots.iqm, samples, 0.95, rng)
            cells.append(f"{plots.iqm(values):.3f} [{low:.3f}, {high:.3f}]")
        sps = [float(r["mean_sps"]) for r in rows if r["mean_sps"] != ""]
        walls = [float(r["wall_s"]) for r in rows if r["wall_s"] != ""]
        shares = "" if algorithm == RANDOM else time_shares(rows, env_only.get(env_id))
        lines.append(
            f"| {env_id} | {algorithm} | {len(rows)} | {max(int(r['env_steps']) for r in rows):,} | {cells[0]} | "
            f"{cells[1]} | {cells[2]} | {cells[3]} | {statistics.mean(sps) if sps else float('nan'):,.0f} | "
            + (f"{statistics.mean(walls):.0f}" if walls else "")
            + f" | {shares} |"
        )
    return "\n".join(lines) + "\n"


PACKED_TABLES = ("summary.md", "final.csv", "evals.csv", "curves.png", "timings.json", "jobs.json")


def write_runs_archive(path: str, out_dir: str, finals: list[dict]) -> None:
    """A gzipped tar of the tabulated runs' event files and args.json (the random policy's JSON
    files too), named relative to `out_dir`."""
    with tarfile.open(path, "w:gz") as tar:
        for row in finals:
            run = os.path.join(out_dir, row["run_dir"])
            if os.path.isfile(run):  # the random policy's JSON
                kept = [run]
            else:  # a run directory: no model, checkpoint, video or lock file
                names = sorted(os.listdir(run))
                kept = [os.path.join(run, n) for n in names if n == "args.json" or n.startswith("events.out.tfevents")]
            for file in kept:
                tar.add(file, arcname=os.path.relpath(file, out_dir))


def pack(out_dir: str, finals: list[dict], folder: str, max_files: int = 8, max_mb: float = 16.0) -> list[str]:
    """--pack: the tables, the curves, timings.json and jobs.json of `out_dir`, and runs.tgz with
    the event files and args.json of every tabulated run (and the random policy's JSON files),
    into `folder`. The limits (`max_files` files of at most `max_mb` MB each: what a GPU job may
    hand back) are checked before a file lands there: a pack over them writes nothing. Returns
    the paths."""
    limit = int(max_mb * 2**20)
    sources = [os.path.join(out_dir, name) for name in PACKED_TABLES if os.path.exists(os.path.join(out_dir, name))]
    too_big = [f"{path} ({os.path.getsize(path) / 2**20:.1f} MB)" for path in sources if os.path.getsize(path) > limit]
    if len(sources) + 1 > max_files or too_big:
        over = f"{len(sources) + 1} files (at most {max_files}); over {max_mb:g} MB: {', '.join(too_big) or 'none'}"
        raise BenchmarkError(f"--pack {folder}: {over}")
    os.makedirs(folder, exist_ok=True)
    archive = os.path.join(folder, "runs.tgz")

    def write_archive(tmp):
        write_runs_archive(tmp, out_dir, finals)
        if os.path.getsize(tmp) > limit:  # raised before the rename: nothing lands in the folder
            size = os.path.getsize(tmp) / 2**20
            raise BenchmarkError(
                f"--pack {folder}: runs.tgz would be {size:.1f} MB, over {max_mb:g} MB; nothing written"
            )

    plots.write_atomically(archive, write_archive)
    written = [archive]
    for source in sources:
        target = os.path.join(folder, os.path.basename(source))
        plots.write_atomically(target, lambda tmp, source=source: shutil.copyfile(source, tmp))
        written.append(target)
    return written


def unpack(folder: str, out_dir: str) -> None:
    """--unpack: a folder written by --pack merged into `out_dir`: its runs.tgz extracted (only
    runs/ and random/ files, nothing outside out_dir, no file replaced by a different one), its
    timings.json and jobs.json entries added to out_dir's."""
    archive = os.path.join(folder, "runs.tgz")
    if not os.path.exists(archive):
        raise BenchmarkError(f"--unpack {folder}: no runs.tgz there (a folder written by --pack holds one)")
    os.makedirs(out_dir, exist_ok=True)
    try:
        tar = tarfile.open(archive, "r:gz")
        members = tar.getmembers()
    except (tarfile.TarError, EOFError) as error:
        raise BenchmarkError(f"--unpack {archive}: not a whole archive ({error}); nothing unpacked") from None
    with tar:
        for member in members:
            parts = pathlib.PurePosixPath(member.name).parts
            if not member.isfile() or parts[0] not in ("runs", RANDOM) or ".." in parts or member.name.startswith("/"):
                raise BenchmarkError(f"--unpack {archive}: {member.name} is not a run's file")
            target = os.path.join(out_dir, *parts)
            data = tar.extractfile(member).read()
            if os.path.exists(target) and pathlib.Path(target).read_bytes() != data:
                raise BenchmarkError(f"--unpack {archive}: {target} exists and differs; nothing replaced")
            os.makedirs(os.path.dirname(target), exist_ok=True)
            plots.write_atomically(target, lambda tmp, data=data: pathlib.Path(tmp).write_bytes(data))
    for name in ("timings.json", "jobs.json"):
        merged = {**read_json(os.path.join(out_dir, name)), **read_json(os.path.join(folder, name))}
        write_json(merged, os.path.join(out_dir, name))
    print(f"unpacked {archive} into {out_dir}", flush=True)


def main(args: Args) -> str:
    if args.unpack:
        plan(args)  # an unknown preset or env stops before anything is written
        unpack(args.unpack, args.out_dir or str(ROOT / "results" / "benchmark" / args.preset))
        args = dataclasses.replace(args, finished_only=True)
    evals, finals, out_dir, failures, not_started = run_jobs(args)
    if args.dry_run:
        return out_dir
    if args.algorithms or args.env_ids or args.seeds:
        # a restricted invocation: the tables still hold every finished run of the preset
        jobs = [job for job in tabulated_jobs(args) if job[:3] not in failures]
        with contextlib.redirect_stdout(io.StringIO()):  # its lines repeat what was printed
            evals, finals, _, _, _ = run_jobs(
                Args(preset=args.preset, extra=args.extra, out_dir=out_dir, finished_only=True), jobs
            )
        tabulated = {(r["algorithm"], r["env_id"], r["seed"]) for r in finals}
        waiting = [job_name(a, e, f) for a, e, _, f in jobs if any((a, e, s) not in tabulated for s in job_seeds(f))]
        print(
            f"tabulating the {len(tabulated)} finished runs of the preset's {len(jobs)} jobs"
            + (f"; not finished: {', '.join(waiting)}" if waiting else ""),
            flush=True,
        )
    os.makedirs(out_dir, exist_ok=True)
    plots.write_csv(evals, os.path.join(out_dir, "evals.csv"))
    plots.write_csv(finals, os.path.join(out_dir, "final.csv"))
    table = summary_table(finals, args.preset)
    plots.write_atomically(os.path.join(out_dir, "summary.md"), lambda tmp: pathlib.Path(tmp).write_text(table))
    print(table)
    if args.plot and evals:
        runs = {}  # (env, algorithm) -> {seed: run directory}: the tabulated runs
        for row in finals:
            if row["algorithm"] != RANDOM:
                runs.setdefault((row["env_id"], row["algorithm"]), {})[row["seed"]] = os.path.join(
                    out_dir, row["run_dir"]
                )
        # success rate with the policy's mean and with sampled actions (where the runs logged it),
        # and time at goal: where learning shows first
        # and the named tasks' overall success, where the runs logged it
        tags = ("eval/success_rate", "eval/sampled_success_rate", "eval/time_at_goal", "eval/tasks/overall_success")
        rows = plots.aggregate(runs, tags)
        tags = tuple(tag for tag in tags if any(r["tag"] == tag for r in rows))
        baselines = {}  # (env, tag) -> the random policy's mean over seeds
        for tag in tags:
            # the random policy's actions are sampled in both modes: it has one success rate
            name = COLUMN_OF_TAG[tag].removeprefix("sampled_")
            for env_id in {r["env_id"] for r in finals if r["algorithm"] == RANDOM}:
                values = [r[name] for r in finals if r["algorithm"] == RANDOM and r["env_id"] == env_id]
                if all(v != "" for v in values):
                    baselines[env_id, tag] = statistics.mean(float(v) for v in values)
        plots.plot(rows, tags, os.path.join(out_dir, "curves.png"), "iqm", 0.95, baselines)
    print(f"wrote {out_dir}/evals.csv, final.csv, summary.md" + (", curves.png" if args.plot and evals else ""))
    if not_started:
        print(f"not started within --time-budget: {', '.join(not_started)}", flush=True)
    if args.pack:
        written = pack(out_dir, finals, args.pack, args.pack_max_files, args.pack_max_mb)
        print(f"packed {len(written)} files into {args.pack}: " + ", ".join(map(os.path.basename, written)))
    if failures:
        raise BenchmarkError("run(s) failed (the tables hold the others):\n\n" + "\n\n".join(failures.values()))
    return out_dir


if __name__ == "__main__":
    try:
        main(tyro.cli(Args))
    except BenchmarkError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except OSError as error:  # a full or read-only disk: the runs that finished are kept
        print(
            f"error: could not write {error.filename or 'a file'}: {error.strerror or error}. The runs that finished are"
            " kept: free space (or make the folder writable) and run the same command again to write the tables.",
            file=sys.stderr,
        )
        sys.exit(2)
