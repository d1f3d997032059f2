"""What the named evaluation tasks cost: one evaluation's wall time with and without them.

    python results/notes/eval_tasks.py --env-ids reacher ant_u_maze --repeats 3

Builds the evaluation exactly as the algorithm files do (`crl_infonce.make_evaluate`: the
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
import time
from dataclasses import dataclass, replace

import jax

import envs

REPO = pathlib.Path(__file__).resolve().parents[2]


def load_crl_infonce():
    spec = importlib.util.spec_from_file_location("crl_infonce", REPO / "algorithms" / "crl_infonce.py")
    module = importlib.util.module_from_spec(spec)
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
