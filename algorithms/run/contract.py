"""The contract between an algorithm file and the run harness: everything the harness reads of an
algorithm file, and everything it hands back, named and typed here. The harness reads no other
key, field or flag of an algorithm.

An algorithm file ends by describing itself and handing that to the harness:

    ALGORITHM = run.Algorithm(name, Args, make_train, make_chunk, make_evaluate, model_of)
    if __name__ == "__main__":
        run.cli(ALGORITHM)        # parse the flags, train; exit 2 on a flag that cannot run

What each part must be:

* `Args`: a frozen dataclass extending `ScheduleArgs`. Its fields are the command-line flags:
  the run's (`RunArgs`, algorithms/run/flags.py: seeds, env, budget, files, devices), then the
  schedule's (`ScheduleArgs`, below), then the algorithm's own, checked in its
  `__post_init__` with `run.require`. A file sets a schedule default by declaring the field
  again, type and default only (its help stays the one below). `updates_per_training_step`
  is the update ratio; `resume_may_change` names the flags a `--resume` may change.
* `make_train(args, env, schedule, spread) -> (init, training_step, vec_env, buffer)`:
  * `init(key) -> Carry` and `training_step(carry) -> Step` (below), traced under the seed vmap;
  * the carry's train state is any pytree with `actor` (an `evaluate`-able actor) and
    `grad_steps` (gradient steps taken, the summary line's count);
  * `vec_env` is an `envs.VecEnv` and `buffer` a `buffers.TrajectoryBuffer` (the harness uses
    their `shardings` to split a run over devices, and the buffer's `init`, `sample` and
    `check_memory` to size it before anything compiles);
  * the buffer state names, in its class attribute `shared_over_seeds`, the fields that follow
    the schedule and not the seed (one value for every seed; see algorithms/run/devices.py);
  * `spread(batch)` places a gradient step's batch on the devices (identity on one device).
* `make_chunk(training_step) -> chunk(carry, num_steps) -> (carry, ChunkStats)`: the compiled
  loop over training steps (compiled once: a second trace is an error), summing `ChunkStats`.
* `make_evaluate(args, env) -> evaluate(actor, key) -> (metrics, episode)`: `metrics` a dict of
  scalars logged as eval/<name> (`success_rate`, and `sampled_success_rate` and
  `tasks/overall_success` where the progress line shows them), `episode` env 0's states for
  --capture-video.
* `model_of(train_state) -> (actor, ...)`: what --save-model writes, `load_policy` reads and
  every evaluation runs, the actor first.

What the harness gives back: the run directories (one per seed) with their TensorBoard logs,
checkpoints and saved models, `--resume` of the whole carry, and the flags checked and turned
into a `Schedule` (algorithms/run/schedule.py) before anything is traced.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, is_dataclass
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from algorithms.run.flags import RunArgs


@dataclass(frozen=True)
class ScheduleArgs(RunArgs):
    """The schedule's flags: how env steps and gradient steps interleave. An algorithm's `Args`
    extends this class and may set other defaults."""

    unroll_length: int = 62
    """env steps per env collected in one training step"""
    batch_size: int = 256
    """transitions per gradient step"""
    buffer_size: int = 10_000
    """replay capacity in time rows per env (rounded up to a multiple of --unroll-length)"""
    learning_starts: int = 1_000
    """time rows per env collected before gradient steps start (whole rollouts)"""
    updates_per_rollout: int | None = None
    """gradient steps per training step; default: the algorithm's update ratio"""
    presample: bool = True
    """draw a training step's batches at once before its gradient steps (the same batches, more memory)"""

    # flags a --resume may give again with another value: its results do not depend on them
    resume_may_change: ClassVar[tuple[str, ...]] = ("num_devices", "distributed", "checkpoint_on_stop", "presample")

    def updates_per_training_step(self, episode_length: int) -> int:
        """--updates-per-rollout, or JaxGCRL's ratio: num_envs * (episode_length - 1) / batch_size
        gradient steps per training step, so that every transition of a rollout is sampled
        about once. An algorithm with another ratio overrides this method."""
        if self.updates_per_rollout is not None:
            return self.updates_per_rollout
        return max(1, round(self.num_envs * (episode_length - 1) / self.batch_size))


class Carry(NamedTuple):
    """What one training step hands the next: the algorithm's train state (with at least `actor`
    and `grad_steps`), the batched env states, the buffer state and a key. What a file adds to
    its train state travels through the devices, checkpoints and resume with no other edit."""

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


class ChunkStats(NamedTuple):
    """What a chunk of training steps sums for the logs: each update metric over the steps that
    learned, their count, and the returns and count of the training episodes that ended."""

    losses: dict
    updated_steps: jax.Array
    return_sum: jax.Array
    episodes: jax.Array

    @classmethod
    def zeros(cls, metrics: dict) -> ChunkStats:
        """Zero sums for an update whose metrics have the shapes of `metrics` (jax.eval_shape's)."""
        zeros = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), metrics)
        return cls(zeros, jnp.zeros(()), jnp.zeros(()), jnp.zeros((), jnp.int32))

    def add(self, step: Step) -> ChunkStats:
        """These sums with one more training step's."""
        return_sum, episodes = step.finished
        return ChunkStats(
            jax.tree.map(lambda s, m: s + step.learned * m, self.losses, step.metrics),
            self.updated_steps + step.learned,
            self.return_sum + return_sum,
            self.episodes + episodes,
        )

    def mean_losses(self, seed: int, where: str) -> dict[str, float]:
        """One seed's mean of each metric over the steps that learned (host values); a
        non-finite one stops the run (FloatingPointError, exit 2) naming it and `where`."""
        updated = float(self.updated_steps[seed])
        losses = {name: float(v[seed]) / updated for name, v in self.losses.items()}
        bad = [f"losses/{name}" for name, v in losses.items() if not np.isfinite(v)]
        if bad:
            raise FloatingPointError(
                f"non-finite {', '.join(bad)} {where}; lower the learning rates or try --layer-norm."
            )
        return losses


@dataclass(frozen=True)
class Algorithm:
    """An algorithm file as the harness takes it (the module docstring says what each part is)."""

    name: str
    Args: type
    make_train: Callable
    make_chunk: Callable
    make_evaluate: Callable
    model_of: Callable[[Any], Any]

    def __post_init__(self):
        if not (is_dataclass(self.Args) and issubclass(self.Args, ScheduleArgs)):
            raise TypeError(
                f"{self.name}: Args must be a frozen dataclass extending run.ScheduleArgs "
                "(algorithms/run/contract.py), so that the harness finds the run's and the schedule's flags."
            )
