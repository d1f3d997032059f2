"""What the named evaluation tasks cost, and what they show beside random goals.

    python results/notes/eval_tasks.py --env-ids reacher ant_u_maze --repeats 3
    python results/notes/eval_tasks.py --runs results/notes/eval_tasks/runs/*   # curves, no timing

With `--runs`: per run directory, a table of every evaluation's random-goal success and the
named tasks' success (each task and overall; the policy's mean, and sampled actions), read back
from its event files with TensorBoard's reader.

Without:

it builds the evaluation exactly as the algorithm files do (`crl_infonce.make_evaluate`: the
policy's mean and sampled actions from the same goals, `--num-eval-envs` episodes each), once
with `--eval-tasks` (`--eval-task-episodes` episodes of each of the five tasks, in both modes)
and once without, with a freshly initialised actor of the default width and depth (the time
does not depend on its weights). Both are compiled first; then the two run alternately,
`--repeats` times each, so that a noisy shared machine slows both alike, and the page reports
each one's median wall time and their ratio. Prints a Markdown table; `--output` also writes it.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import statistics
import sys
import time
from dataclasses import dataclass, replace

import jax

import envs

REPO = pathlib.Path(__file__).resolve().parents[2]


def load_crl_infonce():
    spec = importlib.util.spec_from_file_location("crl_infonce", REPO / "algorithms" / "crl_infonce.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while it runs
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Args:
    env_ids: tuple[str, ...] = ("reacher", "ant_u_maze")
    """env ids to time"""
    repeats: int = 3
    """timed evaluations of each variant, alternating"""
    num_eval_envs: int = 128
    """random-goal episodes per evaluation (the algorithms' default)"""
    eval_task_episodes: int = 8
    """episodes of each task (the algorithms' default)"""
    output: str = ""
    """also write the Markdown table to this file"""
    runs: tuple[str, ...] = ()
    """run directories to tabulate (random goals against named tasks, per evaluation) instead of timing"""


def curves(run_dir: str) -> str:
    """One run's evaluations: random-goal success and the named tasks' success, both modes."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(run_dir, size_guidance={"scalars": 0})
    events.Reload()

    def series(tag):
        return {e.step: e.value for e in events.Scalars(tag)} if tag in events.Tags()["scalars"] else {}

    columns = {
        "random goals": "eval/success_rate",
        "(sampled)": "eval/sampled_success_rate",
        "tasks overall": "eval/tasks/overall_success",
        "(sampled)_": "eval/tasks/sampled_overall_success",
        **{f"task{k}": f"eval/tasks/task{k}_success" for k in range(1, 6)},
        **{f"task{k} (sampled)": f"eval/tasks/sampled_task{k}_success" for k in range(1, 6)},
    }
    values = {name: series(tag) for name, tag in columns.items()}
    steps = sorted(values["random goals"])
    header = [name.rstrip("_") for name in columns]
    lines = [
        f"`{os.path.basename(run_dir.rstrip('/'))}`:",
        "",
        "| env steps | " + " | ".join(header) + " |",
        "|---:|" + "---:|" * len(columns),
    ]
    for step in steps:
        cells = [f"{values[name][step]:.3f}" if step in values[name] else "" for name in columns]
        lines.append(f"| {step:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def time_env(crl, env_id: str, args: Args) -> dict:
    env = envs.make(env_id)
    base = crl.Args(env_id=env_id, num_eval_envs=args.num_eval_envs, eval_task_episodes=args.eval_task_episodes)
    actor = crl.Actor(env.observation_size, env.action_size, base, jax.random.PRNGKey(0))
    variants = {
        "without": jax.jit(crl.make_evaluate(replace(base, eval_tasks=False), env)),
        "with": jax.jit(crl.make_evaluate(replace(base, eval_tasks=True), env)),
    }
    compile_s = {}
    for name, evaluate in variants.items():
        start = time.perf_counter()
        jax.block_until_ready(evaluate(actor, jax.random.PRNGKey(1)))
        compile_s[name] = time.perf_counter() - start
    times = {name: [] for name in variants}
    for repeat in range(args.repeats):
        for name, evaluate in variants.items():
            start = time.perf_counter()
            jax.block_until_ready(evaluate(actor, jax.random.PRNGKey(2 + repeat)))
            times[name].append(time.perf_counter() - start)
    without, with_tasks = statistics.median(times["without"]), statistics.median(times["with"])
    return {
        "env_id": env_id,
        "episode_length": env.episode_length,
        "without_s": without,
        "with_s": with_tasks,
        "ratio": with_tasks / without,
        "first_call_s": compile_s,
        "all_s": times,
    }


def main(args: Args) -> str:
    if args.runs:
        text = "\n\n".join(curves(run_dir) for run_dir in args.runs)
        print(text)
        return text
    crl = load_crl_infonce()
    envs_per_mode = args.num_eval_envs + 5 * args.eval_task_episodes
    lines = [
        "| env | episode length | evaluation without tasks (s) | with tasks (s) | ratio | episodes per mode |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for env_id in args.env_ids:
        row = time_env(crl, env_id, args)
        lines.append(
            f"| `{env_id}` | {row['episode_length']} | {row['without_s']:.2f} | {row['with_s']:.2f} | "
            f"{row['ratio']:.2f} | {args.num_eval_envs} / {envs_per_mode} |"
        )
        print(f"{env_id}: every timed call, s: {row['all_s']}; first calls (compile + run): {row['first_call_s']}")
    table = "\n".join(lines)
    print(table)
    if args.output:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        pathlib.Path(args.output).write_text(table + "\n")
    return table


if __name__ == "__main__":
    import tyro

    main(tyro.cli(Args))
