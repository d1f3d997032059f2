"""A runnable env demo: random actions in a batch of envs, with statistics and an optional GIF.

    python -m envs --env-id simple_u_maze
    python -m envs --env-id ant_u_maze --num-envs 64 --steps 500 --video runs/ant_u_maze.gif
    python -m envs --env-id simple_big_maze --task task1 --video runs/task1.gif
    python -m envs --list-tasks

Prints the compile time, env steps per second, the number of episodes finished and the
fraction of steps that were at the goal under the random policy. `--task` starts every env's
first episode on one of the env's named evaluation tasks (docs/environments.md) instead of a
random start and goal (later episodes draw random ones, as in training).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

import jax
import numpy as np
import tyro

import envs


@dataclass(frozen=True)
class Args:
    env_id: str = "simple_u_maze"
    """environment id (see envs.ENV_IDS)"""
    backend: str | None = None
    """physics backend; default: the env's own"""
    num_envs: int = 16
    """parallel envs"""
    steps: int = 200
    """steps per env"""
    seed: int = 0
    """random seed"""
    video: str = ""
    """write the first env's rollout as a GIF to this path (needs MUJOCO_GL=osmesa or egl)"""
    task: str | None = None
    """start every env's first episode on this named task (task1 ... task5) instead of a random one"""
    list_tasks: bool = False
    """print every env's named evaluation tasks as the Markdown tables of docs/environments.md, and stop"""


def tasks_markdown() -> str:
    """Every env's five named evaluation tasks as Markdown: one table for the mazes (by layout,
    in cells: the same for every body) and one for the other envs (in numbers)."""
    from envs.maze import TASKS, Maze

    lines = [
        "| maze layout (env ids) | task | start cell | goal cell | shortest path (cells) |",
        "|---|---|---|---|---:|",
    ]
    for layout in TASKS:
        ids = ", ".join(f"`{i}`" for i in envs.ENV_IDS if i.endswith(f"_{layout}_maze"))
        maze = Maze(layout, 1.0)
        for name, (start, goal) in zip((t.name for t in maze.tasks()), TASKS[layout]):
            lines.append(f"| {layout} ({ids}) | {name} | {start} | {goal} | {maze.path_length(start, goal)} |")
    lines += ["", "| env id | task | goal | start | why |", "|---|---|---|---|---|"]
    for env_id in envs.ENV_IDS:
        if env_id.endswith("_maze"):
            continue
        for task in envs.make(env_id).tasks:
            start = str(task.start) if task.start else "the env's own"
            lines.append(f"| `{env_id}` | {task.name} | {task.goal} | {start} | {task.why} |")
    return "\n".join(lines)


def main(args: Args) -> int:
    if args.list_tasks:
        print(tasks_markdown())
        return 0
    try:
        env = envs.make(args.env_id, backend=args.backend)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.num_envs < 1 or args.steps < 1:
        print("error: --num-envs and --steps must be at least 1.", file=sys.stderr)
        return 2
    try:
        task = None if args.task is None else env.task_index(args.task)
    except ValueError as error:
        print(f"error: --task: {error}", file=sys.stderr)
        return 2
    vec = envs.VecEnv(env, args.num_envs)

    def reset(key):
        state = vec.reset(key)
        if task is None:
            return state
        on_task = jax.vmap(env.reset_to_task, (0, None))(jax.random.split(key, args.num_envs), task)
        return state.replace(
            pipeline_state=on_task.pipeline_state, obs=on_task.obs, info={**state.info, "goal": on_task.info["goal"]}
        )

    @jax.jit
    def rollout(key):
        reset_key, action_key = jax.random.split(key)

        def body(state, k):
            action = jax.random.uniform(k, (args.num_envs, env.action_size), minval=-1.0, maxval=1.0)
            nxt = vec.step(state, action)
            ended = (nxt.done > 0) | (nxt.info["truncation"] > 0)
            first = jax.tree.map(lambda x: x[0], state.pipeline_state)
            return nxt, (nxt.metrics["success"], ended, first, state.info["goal"][0])

        return jax.lax.scan(body, reset(reset_key), jax.random.split(action_key, args.steps))[1]

    key = jax.random.PRNGKey(args.seed)
    start = time.perf_counter()
    jax.block_until_ready(rollout(key))
    compile_and_run = time.perf_counter() - start
    start = time.perf_counter()
    success, ended, states, goals = jax.block_until_ready(rollout(jax.random.fold_in(key, 1)))
    run = time.perf_counter() - start
    steps = args.num_envs * args.steps
    print(
        f"{env.env_id} ({env.backend}): obs {env.observation_size} = state {env.state_dim} + goal {env.goal_dim}, "
        f"actions {env.action_size}, episode length {env.episode_length}, threshold {env.goal_reach_thresh}\n"
        f"compile {compile_and_run - run:.1f} s, {steps / run:,.0f} env steps/s on {jax.devices()[0].platform}, "
        f"{int(np.asarray(ended).sum())} episodes finished, random policy at the goal on "
        f"{float(np.asarray(success).mean()):.1%} of steps"
    )
    if args.video:
        frames = envs.render(env, states, np.asarray(goals), height=240, width=320)
        os.makedirs(os.path.dirname(os.path.abspath(args.video)), exist_ok=True)
        envs.save_gif(frames, args.video, fps=1.0 / float(env.dt))
        print(f"wrote {len(frames)} frames to {args.video}")
    return 0


if __name__ == "__main__":
    sys.exit(main(tyro.cli(Args)))
