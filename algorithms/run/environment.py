"""The environment a run's flags name (--env-id, --backend, --episode-length, --maze-start).

env = make_env(args)    # before anything starts JAX: an arm or pusher sets XLA's flags
"""

from __future__ import annotations

import envs
from algorithms.run.flags import ConfigError, RunArgs, require


def make_env(args: RunArgs):
    """The env of --env-id, --backend, --episode-length and --maze-start; one that cannot be made is a
    ConfigError."""
    maze = {}
    if args.maze_start != "fixed":
        require(
            envs.ALIASES.get(args.env_id, args.env_id).endswith("_maze"),
            f"--maze-start {args.maze_start} applies to the maze envs only (ids ending in _maze), not {args.env_id}.",
        )
        maze = {"maze_start": args.maze_start}
    try:
        return envs.make(args.env_id, backend=args.backend, episode_length=args.episode_length, **maze)
    except ValueError as error:
        raise ConfigError(f"--maze-start: {error}." if "maze_start" in str(error) else str(error)) from None
