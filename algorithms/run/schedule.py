"""A run's schedule: its flags checked and turned into the sizes every algorithm needs, in
Python, before anything is traced.

    schedule = make_schedule(args, env)   # args: an algorithm's Args (the run flags)
    schedule.training_steps, schedule.eval_boundaries, schedule.final_env_steps

An algorithm's `make_train` gives `init(key) -> Carry` and `training_step(carry) -> Step`,
both named pytrees defined here: what a fork adds to its train state travels through the
devices, checkpoints and resume with no other edit.

A training step is `num_envs` envs stepped `unroll_length` times, the rollout inserted into the
buffer, then `updates_per_rollout` gradient steps once the buffer holds `learning_start_rows`
rows per env. The run is `training_steps` of them; evaluations and checkpoints fall between
training steps, at the counts in `eval_boundaries` and `checkpoint_boundaries`.

Bad flags raise `ConfigError` (algorithms/run/flags.py) with a message that names the flags to change.
The training steps between two boundaries run through the algorithm file's compiled
`make_chunk` loop, in calls of 1, 2, 4, ... steps so that a stop request is seen within about
two seconds; `train_until` makes those calls.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import numpy as np

import envs
from algorithms.run.flags import ConfigError, RunArgs, require
from buffers.trajectory import rows_per_env


class Carry(NamedTuple):
    """What one training step hands the next: the algorithm's train state (an eqx.Module with
    at least `actor` and `grad_steps`), the batched env states, the buffer state and a key."""

    train_state: Any
    env_state: Any
    buffer_state: Any
    key: jax.Array


class Step(NamedTuple):
    """What a training step returns: the next carry, the update's metrics (a dict of scalars,
    each logged as losses/<name>), whether it learned (0 or 1: not before the buffer holds
    `learning_start_rows`), and the (sum, count) of the returns of the episodes that ended."""

    carry: Carry
    metrics: dict
    learned: jax.Array
    finished: tuple[jax.Array, jax.Array]


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


def make_schedule(args: RunArgs, env) -> Schedule:
    """Check the run's flags in `args` (an algorithm's Args; the algorithm's own flags are
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


def train_until(chunk_fn, carry, start: int, end: int, stop) -> tuple[Carry, dict, int, float]:
    """Training steps `start` to `end` through the compiled loop `chunk_fn(carry, num_steps)`,
    in calls of 1, 2, 4, ... steps (doubling while a call takes under a second, so that a stop
    request waits at most about two seconds), asking `stop.poll` after each call. Returns the
    carry, the summed stats, the training step reached (`end` unless a stop was requested)
    and the seconds spent."""
    total, step, num_steps, seconds = None, start, 1, 0.0
    while step < end:
        num_steps = min(num_steps, end - step)
        begin = time.perf_counter()
        carry, stats = chunk_fn(carry, np.int32(num_steps))
        stats = jax.device_get(stats)
        took = time.perf_counter() - begin
        seconds += took
        total = stats if total is None else jax.tree.map(np.add, total, stats)
        step += num_steps
        stopping, faster = stop.poll(faster=took < 1.0)
        if stopping:
            break
        num_steps = 2 * num_steps if faster else num_steps
    return carry, total, step, seconds
