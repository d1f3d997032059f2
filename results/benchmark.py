"""Run a benchmark matrix (algorithms x envs x seeds at a budget) and tabulate it.

    python results/benchmark.py --preset cpu-smoke          # minutes on 2 CPU cores, tiny networks
    python results/benchmark.py --preset cpu-small          # about an hour on 2 CPU cores
    python results/benchmark.py --preset cpu-suite          # crl_infonce on 14 envs: hours on 2 CPU cores
    python results/benchmark.py --preset gpu-paper          # the benchmark's envs, 10M-50M steps (GPU)
    python results/benchmark.py --preset cpu-small --algorithms crl_infonce --seeds 1 2 --env-ids reacher

Each (algorithm, env, seed) is one subprocess `python algorithms/{algorithm}.py` with the
preset's flags for that env (plus `--extra` flags, one per `--extra=--flag=value`), writing its
TensorBoard run directory under `{out_dir}/runs`. The pseudo-algorithm `random` is
`python results/random_policy.py` instead: the same evaluation protocol (the run's
`--num-eval-envs` episodes of its episode length) with uniformly random actions, and the env-only
throughput at the run's `--num-envs`, written to `{out_dir}/random/`. A run whose event file
already holds its final evaluation is not repeated, so an interrupted benchmark continues where
it stopped; `--finished-only` starts no run and tabulates those that have finished (for a
preset that another invocation is still running). Afterwards the evaluation scalars are read
back with TensorBoard's reader and written to

* `{out_dir}/evals.csv`: one row per evaluation (algorithm, env_id, seed, env_steps,
  success_rate, time_at_goal, final_distance, episodic_return, steps_to_success, the same
  three measures with sampled actions, run_dir);
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
  `results/plots.py`) of success rate (the policy's mean, then sampled actions where the runs
  logged them) and time at goal per env, with the random policy's as a dashed line, unless
  `--no-plot`.

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
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field

import plots  # results/plots.py: a script's own folder is the first entry of its import path
import tyro

ROOT = pathlib.Path(__file__).resolve().parent.parent

ALGORITHMS = ("crl_infonce", "crl_dpo", "sac_her", "td3_her")
RANDOM = "random"  # the random-policy baseline: results/random_policy.py
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
}


@dataclass(frozen=True)
class Preset:
    algorithms: tuple[str, ...]
    env_flags: dict[str, tuple[str, ...]]  # env id -> flags of its runs (budget included)
    seeds: tuple[int, ...]
    common_flags: tuple[str, ...] = ()
    algorithm_flags: dict[str, tuple[str, ...]] = field(default_factory=dict)
    note: str = ""
    env_seeds: dict[str, tuple[int, ...]] = field(default_factory=dict)  # env id -> seeds, where not `seeds`


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
        common_flags=("--save-model",),  # the trained policy, to look into an env that did not rise
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
}


@dataclass(frozen=True)
class Args:
    preset: str = "cpu-smoke"
    """one of cpu-smoke, cpu-small, cpu-suite, cpu-research, gpu-paper"""
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
            for seed in args.seeds or preset.env_seeds.get(env_id, preset.seeds):
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
    episodes and number of training envs."""
    output = os.path.relpath(output, ROOT) if output.startswith(str(ROOT)) else output
    command = [
        f"--env-id={flag_value(flags, 'env-id')}",
        f"--seed={flag_value(flags, 'seed')}",
        f"--num-episodes={flag_value(flags, 'num-eval-envs') or 128}",
        f"--num-envs={flag_value(flags, 'num-envs') or 256}",
        f"--output={output}",
    ]
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
    return finished_run(os.path.join(out_dir, "runs"), algorithm, env_id, seed, flags) is not None


def run_random(env_id: str, seed: int, flags: list[str], out_dir: str, timings: dict) -> tuple[dict, str | None]:
    """The `random` row of one (env, seed); runs random_policy.py unless its JSON exists, and
    records its wall time in `timings`."""
    path = random_output(out_dir, env_id, seed)
    command = random_command(flags, path)
    shown = " ".join(["python", "results/random_policy.py", *command])
    wall, failure = None, None
    if not os.path.exists(path):
        start = time.perf_counter()
        program = str(ROOT / "results" / "random_policy.py")
        try:  # one evaluation and a throughput measurement: minutes, never hours
            result = subprocess.run(
                [sys.executable, program, *command], capture_output=True, text=True, cwd=ROOT, timeout=1800
            )
        except subprocess.TimeoutExpired:
            return {}, f"{shown}\ndid not finish in 1800 s (a hang?)"
        wall = time.perf_counter() - start
        if result.returncode != 0:
            return {}, f"{shown}\n{result.stderr.strip()[-2000:]}"
    else:
        print(f"  already done: {path}", flush=True)
    with open(path) as f:
        measured = json.load(f)
    run_dir = os.path.relpath(path, out_dir)
    row = dict(algorithm=RANDOM, env_id=env_id, seed=seed, env_steps=0)
    row.update({name: measured.get(name, "") for name in EVAL_TAGS})
    row.update(mean_sps=measured["env_only_sps"], run_dir=run_dir, command=shown)
    if wall is not None:
        timings[run_dir] = {"wall_s": round(wall, 1)}
    row["wall_s"] = timings.get(run_dir, {}).get("wall_s", "")
    return row, failure


def run_algorithm(
    algorithm: str, env_id: str, seed: int, flags: list[str], out_dir: str, timings: dict
) -> tuple[list[dict], dict, str | None]:
    """The evaluation rows and the final row of one algorithm run; runs it unless it finished,
    and records its wall, compile and training seconds in `timings`."""
    run_root = os.path.join(out_dir, "runs")
    command = [sys.executable, str(ROOT / "algorithms" / f"{algorithm}.py"), *flags, f"--run-root={run_root}"]
    shown = " ".join(["python", f"algorithms/{algorithm}.py", *flags])
    run_dir = finished_run(run_root, algorithm, env_id, seed, flags)
    timing = None
    if run_dir is None:
        interrupted = resumable_run(run_root, algorithm, env_id, seed, flags)
        if interrupted is not None:  # a run stopped part-way: continue it from its last checkpoint
            print(f"  resuming {interrupted}", flush=True)
            command = [sys.executable, str(ROOT / "algorithms" / f"{algorithm}.py"), f"--resume={interrupted}"]
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True)
        timing = {"wall_s": round(time.perf_counter() - start, 1), **printed_seconds(result.stdout)}
        if result.returncode != 0:
            return [], {}, f"{shown}\n{result.stderr.strip()[-2000:]}"
        run_dir = finished_run(run_root, algorithm, env_id, seed, flags)
        if run_dir is None:
            return [], {}, f"{shown}\nfinished without a final evaluation in {run_root}"
    else:
        print(f"  already done: {run_dir}", flush=True)
    relative = os.path.relpath(run_dir, out_dir)
    if timing is not None:
        timings[relative] = timing
    timing = {k: timings.get(relative, {}).get(k, "") for k in ("wall_s", "compile_s", "train_s")}
    scalars = plots.read_scalars(run_dir, (*EVAL_TAGS.values(), "charts/SPS"))
    evals = []
    for step in sorted(scalars.get("eval/success_rate", {})):
        row = dict(algorithm=algorithm, env_id=env_id, seed=seed, env_steps=step)
        row.update({name: scalars.get(tag, {}).get(step, "") for name, tag in EVAL_TAGS.items()})
        evals.append({**row, "run_dir": relative})
    sps = list(scalars.get("charts/SPS", {}).values())
    final = {
        **{k: evals[-1][k] for k in ("algorithm", "env_id", "seed", "env_steps", *EVAL_TAGS)},
        "mean_sps": round(statistics.mean(sps)) if sps else "",
        "run_dir": relative,
        "command": shown,
        **timing,
    }
    return evals, final, None


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
    listed = {(algorithm, env_id, seed) for algorithm, env_id, seed, _ in whole}
    return whole + [job for job in chosen if job[:3] not in listed]


def run_jobs(
    args: Args, jobs: list[tuple[str, str, int, list[str]]] | None = None
) -> tuple[list[dict], list[dict], str, dict[tuple[str, str, int], str]]:
    """Run the jobs (default: those args select) that have not finished, in order, and return
    the evaluation rows and final rows of every job that has, the output folder and the failures
    ((algorithm, env, seed) -> what went wrong). With --finished-only, run none."""
    if jobs is None:
        _, jobs = plan(args)
    out_dir = args.out_dir or str(ROOT / "results" / "benchmark" / args.preset)
    finals, evals, failures = [], [], {}
    # run dir -> the timings of the invocation that ran it, kept in timings.json after every run
    timings_path = os.path.join(out_dir, "timings.json")
    timings = {}
    if os.path.exists(timings_path):
        with open(timings_path) as f:
            timings = json.load(f)
    for n, (algorithm, env_id, seed, flags) in enumerate(jobs, 1):
        if algorithm == RANDOM:
            shown = ["results/random_policy.py", *random_command(flags, random_output(out_dir, env_id, seed))]
        else:
            shown = [f"algorithms/{algorithm}.py", *flags]
        print(f"[{n}/{len(jobs)}] python {' '.join(shown)}\n  {schedule_line(flags)}", flush=True)
        if args.dry_run:
            continue
        if args.finished_only and not finished(algorithm, env_id, seed, flags, out_dir):
            print("  not finished: skipped", flush=True)
            continue
        if algorithm == RANDOM:
            final, failure = run_random(env_id, seed, flags, out_dir, timings)
        else:
            run_evals, final, failure = run_algorithm(algorithm, env_id, seed, flags, out_dir, timings)
            evals.extend(run_evals)
        os.makedirs(out_dir, exist_ok=True)
        if not args.finished_only:  # nothing new to record; another invocation may be writing it
            with open(f"{timings_path}.tmp", "w") as f:
                json.dump(timings, f, indent=1, sort_keys=True)
            os.replace(f"{timings_path}.tmp", timings_path)
        if failure:
            failures[algorithm, env_id, seed] = failure
            print("  failed", flush=True)
            continue
        finals.append({k: final.get(k, "") for k in FINAL_COLUMNS})
        print(
            f"  success_rate {final['success_rate']:.3f} time_at_goal {final['time_at_goal']:.3f}"
            f" at {final['env_steps']:,} steps, {final['wall_s']} s",
            flush=True,
        )
    return evals, finals, out_dir, failures


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
    actions) and time at goal (IQM over seeds with a 95% bootstrap interval), mean training SPS
    (a `random` row: env-only SPS), mean wall time per run and, where the env has a `random`
    row, where that wall time went."""
    import numpy as np

    rng = np.random.default_rng(0)
    lines = [
        f"Preset `{preset}`. Final evaluation per run, IQM over seeds [95% bootstrap interval]. A `random` row is"
        " the random policy under the same evaluation, its SPS the env-only rate at the same number of envs.",
        "Time split, % of wall time: compile / env (env steps at the env-only rate) / rest of training (gradient"
        " steps, buffer) / outside training (evaluations, start-up).",
        "",
        "| env | algorithm | seeds | env steps | success rate | sampled success rate | time at goal | SPS"
        " | wall s / run | time split % |",
        "|---|---|---:|---:|---|---|---|---:|---:|---|",
    ]
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in finals:
        groups.setdefault((row["env_id"], row["algorithm"]), []).append(row)
    env_only = {env_id: float(rows[0]["mean_sps"]) for (env_id, a), rows in groups.items() if a == RANDOM}
    for (env_id, algorithm), rows in groups.items():
        cells = []
        for name in ("success_rate", "sampled_success_rate", "time_at_goal"):
            if algorithm == RANDOM:  # its actions are sampled in both modes: it has one success rate
                name = name.removeprefix("sampled_")
            if any(r[name] in ("", None) for r in rows):  # a run from before sampled actions were evaluated
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
            f"{cells[1]} | {cells[2]} | {statistics.mean(sps) if sps else float('nan'):,.0f} | "
            + (f"{statistics.mean(walls):.0f}" if walls else "")
            + f" | {shares} |"
        )
    return "\n".join(lines) + "\n"


def main(args: Args) -> str:
    evals, finals, out_dir, failures = run_jobs(args)
    if args.dry_run:
        return out_dir
    if args.algorithms or args.env_ids or args.seeds:
        # a restricted invocation: the tables still hold every finished run of the preset
        jobs = [job for job in tabulated_jobs(args) if job[:3] not in failures]
        with contextlib.redirect_stdout(io.StringIO()):  # its lines repeat what was printed
            evals, finals, _, _ = run_jobs(
                Args(preset=args.preset, extra=args.extra, out_dir=out_dir, finished_only=True), jobs
            )
        tabulated = {(r["algorithm"], r["env_id"], r["seed"]) for r in finals}
        waiting = [f"{e} {a} seed {s}" for a, e, s, _ in jobs if (a, e, s) not in tabulated]
        print(
            f"tabulating the {len(tabulated)} finished runs of the preset's {len(jobs)}"
            + (f"; not finished: {', '.join(waiting)}" if waiting else ""),
            flush=True,
        )
    os.makedirs(out_dir, exist_ok=True)
    plots.write_csv(evals, os.path.join(out_dir, "evals.csv"))
    plots.write_csv(finals, os.path.join(out_dir, "final.csv"))
    table = summary_table(finals, args.preset)
    pathlib.Path(out_dir, "summary.md").write_text(table)
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
        tags = ("eval/success_rate", "eval/sampled_success_rate", "eval/time_at_goal")
        rows = plots.aggregate(runs, tags)
        tags = tuple(tag for tag in tags if any(r["tag"] == tag for r in rows))
        baselines = {}  # (env, tag) -> the random policy's mean over seeds
        for tag in tags:
            # the random policy's actions are sampled in both modes: it has one success rate
            name = tag.split("/")[1].removeprefix("sampled_")
            for env_id in {r["env_id"] for r in finals if r["algorithm"] == RANDOM}:
                values = [float(r[name]) for r in finals if r["algorithm"] == RANDOM and r["env_id"] == env_id]
                baselines[env_id, tag] = statistics.mean(values)
        plots.plot(rows, tags, os.path.join(out_dir, "curves.png"), "iqm", 0.95, baselines)
    print(f"wrote {out_dir}/evals.csv, final.csv, summary.md" + (", curves.png" if args.plot and evals else ""))
    if failures:
        raise BenchmarkError("run(s) failed (the tables hold the others):\n\n" + "\n\n".join(failures.values()))
    return out_dir


if __name__ == "__main__":
    try:
        main(tyro.cli(Args))
    except BenchmarkError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
