"""A run's schedule: its flags checked and turned into the sizes every algorithm needs, in
Python, before anything is traced.

    schedule = make_schedule(args, env)   # args: an algorithm's Args
    schedule.training_steps, schedule.eval_boundaries, schedule.final_env_steps

A training step is `num_envs` envs stepped `unroll_length` times, the rollout inserted into the
buffer, then `updates_per_rollout` gradient steps once the buffer holds `learning_start_rows`
rows per env. The run is `training_steps` of them; evaluations and checkpoints fall between
training steps, at the counts in `eval_boundaries` and `checkpoint_boundaries`.

Bad flags raise `ConfigError` (algorithms/run/flags.py) with a message that names the flags to
change. The flags are `ScheduleArgs`'s (algorithms/run/contract.py): the run's and the schedule's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import envs
from algorithms.run.contract import ScheduleArgs
from algorithms.run.flags import ConfigError, require
from buffers.trajectory import rows_per_env


@dataclass(frozen=True)
class Schedule:
    """Sizes decided in Python before anything is traced."""

    episode_length: int
    buffer_rows: int
    learning_start_rows: int
    updates_per_rollout: int
    steps_per_training_step: int
    training_steps: int
    eval_boundaries: tuple[int, ...]  # training-step counts at which to evaluate
    checkpoint_boundaries: tuple[int, ...]  # training-step counts after which to write a checkpoint

    @property
    def final_env_steps(self) -> int:
        return self.training_steps * self.steps_per_training_step


def make_schedule(args: ScheduleArgs, env) -> Schedule:
    """Check the run's and the schedule's flags in `args` (an algorithm's Args; its own flags are
    checked in its `Args.__post_init__`) and turn them into the schedule of a run on `env`; the
    gradient steps per training step are the algorithm's (`Args.updates_per_training_step`)."""
    require(
        args.eval_only == (args.load_model is not None),
        "--eval-only and --load-model go together: --eval-only --load-model PATH evaluates a model.",
    )
    require(not args.track or args.num_seeds == 1, "--track logs one run per process: drop --track or --num-seeds.")
    if args.capture_video:
        try:
            envs.check_rendering()
        except envs.RenderingUnavailable as error:
            raise ConfigError(f"--capture-video: {error}") from None
    if args.eval_tasks:
        require(
            args.eval_task_episodes >= 1,
            f"--eval-task-episodes must be at least 1 (got {args.eval_task_episodes}); --no-eval-tasks runs none.",
        )
        require(
            len(env.tasks) > 0,
            f"--eval-tasks: {args.env_id} has no named evaluation tasks (an env lists them in its `tasks`); "
            "run with --no-eval-tasks.",
        )
    episode_length = env.episode_length
    at_least_one = "num_envs num_eval_envs unroll_length batch_size buffer_size num_evals total_timesteps"
    for name in (at_least_one + " video_every num_seeds").split():
        value = getattr(args, name)
        require(value >= 1, f"--{name.replace('_', '-')} must be at least 1 (got {value}).")
    require(args.learning_starts >= 0, f"--learning-starts must be >= 0 (got {args.learning_starts}).")
    updates = args.updates_per_rollout
    require(updates is None or updates >= 0, f"--updates-per-rollout must be >= 0 (got {updates}).")
    every = args.checkpoint_every
    require(every >= 0, f"--checkpoint-every must be >= 0 env steps (got {every}; 0 turns it off).")
    require(episode_length >= 2, "--episode-length must be at least 2: a future goal needs a later step.")
    try:
        buffer_rows, start_rows = rows_per_env(
            args.buffer_size, args.learning_starts, args.batch_size, args.num_envs, args.unroll_length
        )
    except ValueError as error:
        raise ConfigError(str(error)) from None
    updates = args.updates_per_training_step(episode_length)  # the algorithm's Args: its update ratio
    per_step = args.num_envs * args.unroll_length
    steps = math.ceil(args.total_timesteps / per_step)
    prefill = start_rows * args.num_envs
    require(
        steps * args.unroll_length >= start_rows or updates == 0,
        f"--total-timesteps ({args.total_timesteps:,}) ends before learning starts: --learning-starts "
        f"{args.learning_starts} rows per env (whole rollouts: {start_rows}) x --num-envs {args.num_envs} = "
        f"{prefill:,} env steps are collected first. Raise --total-timesteps above {prefill:,}, or lower "
        "--learning-starts or --num-envs.",
    )
    require(
        args.num_evals <= steps,
        f"--num-evals ({args.num_evals}) is more than the number of training steps ({steps} steps of --num-envs x "
        f"--unroll-length = {per_step} env steps): lower --num-evals to at most {steps} or raise --total-timesteps.",
    )
    evals = tuple(round(i * steps / args.num_evals) for i in range(args.num_evals + 1))
    every = math.ceil(every / per_step)
    checkpoints = tuple(range(every, steps, every)) + (steps,) if every else ()
    return Schedule(episode_length, buffer_rows, start_rows, updates, per_step, steps, evals, checkpoints)
