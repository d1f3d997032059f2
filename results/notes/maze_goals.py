"""Which goals of a point maze a saved policy reaches: for every goal cell, the success rate,
time at goal and final distance of the policy's mean over episodes that differ only in the
start's small random velocity, beside the cell's shortest path from the start (in cells, through
free cells) and its straight-line distance.

    python results/notes/maze_goals.py --model runs/simple_big_maze__crl_infonce__1__<time>/crl_infonce.eqx

Prints a markdown table per goal cell and one per path length. Written for the question of
`benchmark/cpu-research/README.md`: does a policy whose success equals the random policy's
reach only the goals next to its start?
"""

from __future__ import annotations

import collections
import importlib
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import tyro


@dataclass(frozen=True)
class Args:
    model: str
    """a file written by --save-model for a point-maze env (simple_u_maze, simple_big_maze, ...)"""
    algorithm: str = "crl_infonce"
    """the algorithm file that wrote it"""
    episodes: int = 8
    """episodes per goal cell"""
    seed: int = 0


def path_lengths(grid: tuple[str, ...], start: tuple[int, int]) -> dict[tuple[int, int], int]:
    """Shortest path in cells from `start` to every free cell (breadth-first, 4 neighbours)."""
    lengths, queue = {start: 0}, collections.deque([start])
    while queue:
        i, j = queue.popleft()
        for cell in ((i + 1, j), (i - 1, j), (i, j + 1), (i, j - 1)):
            if grid[cell[0]][cell[1]] != "1" and cell not in lengths:
                lengths[cell] = lengths[(i, j)] + 1
                queue.append(cell)
    return lengths


def main(args: Args) -> None:
    module = importlib.import_module(f"algorithms.{args.algorithm}")
    act, env = module.load_policy(args.model)
    maze = env.maze
    cells = [tuple(int(x) for x in cell) for cell in maze.cells("G")]
    start = tuple(int(x) for x in maze.cells("R")[0])
    lengths = path_lengths(maze.grid, start)
    goals = jnp.repeat(jnp.asarray(maze.goal_xys), args.episodes, axis=0)
    keys = jax.random.split(jax.random.PRNGKey(args.seed), goals.shape[0])

    @jax.jit
    def episodes(keys, goals):
        states = jax.vmap(env.with_goal)(jax.vmap(env.reset)(keys), goals)

        def step(states, _):
            states = jax.vmap(env.step)(states, act(states.obs[:, : env.state_dim], goals))
            return states, states.metrics["success"]

        states, success = jax.lax.scan(step, states, None, env.episode_length)
        return success.max(0), success.mean(0), states.metrics["dist"]

    reached, time_at_goal, final = (np.asarray(x).reshape(len(cells), args.episodes) for x in episodes(keys, goals))
    print(f"{args.model}: {type(env).__name__}, layout {maze.layout}, {args.episodes} episodes per goal cell")
    print("\n| goal cell | path (cells) | straight line (m) | success | time at goal | final distance (m) |")
    print("|---|---:|---:|---:|---:|---:|")
    unreachable = 10**6  # a goal cell walled off from the start
    path = {cell: lengths.get(cell, unreachable) for cell in cells}
    rows = sorted(zip(cells, reached, time_at_goal, final), key=lambda row: (path[row[0]], row[0]))
    for cell, r, t, d in rows:
        line = float(np.linalg.norm((np.array(cell) - np.array(start)) * maze.cell_size))
        shown = "walled off" if path[cell] == unreachable else path[cell]
        print(f"| {cell} | {shown} | {line:.1f} | {r.mean():.2f} | {t.mean():.3f} | {d.mean():.2f} |")
    print("\n| path (cells) | goal cells | success | time at goal |")
    print("|---:|---:|---:|---:|")
    for length in sorted(set(path.values())):
        picked = [k for k, cell in enumerate(cells) if path[cell] == length]
        shown = "walled off" if length == unreachable else length
        print(f"| {shown} | {len(picked)} | {reached[picked].mean():.2f} | {time_at_goal[picked].mean():.3f} |")
    print(f"\nall goal cells: success {reached.mean():.3f}, time at goal {time_at_goal.mean():.3f}")


if __name__ == "__main__":
    main(tyro.cli(Args))
