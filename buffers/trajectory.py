"""The on-device trajectory replay buffer, with future-state goal sampling.

    buffer = TrajectoryBuffer(capacity=10_000, num_envs=256, unroll_length=62,
                              episode_length=1000, goal_indices=env.goal_indices,
                              state_dim=env.state_dim, gamma=0.99)
    buffer.check_memory(example_transition)       # prints bytes, clear error if it will not fit
    state = buffer.init(example_transition)       # one env's Transition, no leading axes
    state = buffer.insert(state, rollout)         # rollout leaves: (unroll_length, num_envs, ...)
    batch = buffer.sample(state, key, 256)        # Batch with a future goal per transition
    batch = buffer.sample_her(state, key, 256, relabel_ratio=0.8, goal_reach_thresh=0.5)

Storage is a pytree of preallocated arrays, time-major per env, `(capacity, num_envs, ...)`, each
field in its own dtype. `insert` writes a whole rollout at the ring index with
`lax.dynamic_update_slice` (so `capacity` must be a multiple of `unroll_length`; `rows_per_env`
rounds a run's flags up to that and checks that learning can start); `init`, `insert` and the
samplers are pure functions of a `BufferState` and jit as they are. `shardings` splits the env
columns over a device mesh.

Future goals. A sampled transition t (uniform over the written rows and envs) gets the achieved
goal of s_{t+k}, k >= 1, with P(k) proportional to gamma^(k-1) over the steps t+k of the same
episode that are in the buffer (a truncated geometric, renormalised). Row j stores s_j and the
true next state s_{j+1} (`next_obs`, taken before any auto-reset), so s_{t+k} is `next_obs` of
row t+k-1 and the last state of an episode is reachable too. Rows of one episode share an
`episode_id`, and the search runs over at most `episode_length` rows forward in time order,
never past the newest row (the ring's seam), so goals never come from another episode, from
an unwritten row or from across the seam. Since an env's episode ids only grow, the rows of
an episode are contiguous in time: a binary search counts them (O(B log episode_length) per
batch), and k is drawn by inverting the truncated geometric's CDF.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class Transition(NamedTuple):
    """One env step as stored: s_t (with its commanded goal), a_t, s_{t+1} (pre-reset)."""

    obs: jax.Array
    action: jax.Array
    next_obs: jax.Array
    terminated: jax.Array  # the episode ended by termination at this step (no bootstrap)
    truncated: jax.Array  # the episode hit its time limit at this step (bootstrap)
    episode_id: jax.Array  # per-env episode counter; rows of one episode share it

    @classmethod
    def example(cls, observation_size: int, action_size: int) -> Transition:
        """One env's all-zero transition: the shapes and dtypes `init` and `check_memory` take."""
        obs, flag = jnp.zeros(observation_size), jnp.zeros(())
        return cls(obs, jnp.zeros(action_size), obs, flag, flag, jnp.zeros((), jnp.int32))


class Batch(NamedTuple):
    obs: jax.Array  # (B, state_dim + goal_dim); `sample_her` relabels its goal part
    action: jax.Array
    next_obs: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    future_goal: jax.Array  # (B, goal_dim): achieved goal of s_{t+k}, k >= 1, same episode
    reward: jax.Array  # (B,): success of s_{t+1} under the batch's goal (set by `sample_her`)
    relabelled: jax.Array  # (B,) bool: the goal was replaced by `future_goal`


class BufferState(NamedTuple):
    data: Transition  # leaves: (capacity, num_envs, ...)
    insert_index: jax.Array  # next row to write
    size: jax.Array  # rows written so far, at most capacity

    # the fields that follow the schedule, not the seed: one value for every seed of a
    # --num-seeds run (the harness keeps them out of the seed vmap, algorithms/run/devices.py)
    shared_over_seeds = ("insert_index", "size")


class BufferMemoryError(ValueError):
    """The buffer would not fit in the device's free memory."""


@dataclass(frozen=True)
class TrajectoryBuffer:
    capacity: int  # time rows per env
    num_envs: int
    unroll_length: int  # rows written per insert
    episode_length: int  # longest possible episode: the future-goal search window
    goal_indices: tuple[int, ...]  # achieved goal = state[goal_indices]
    state_dim: int
    gamma: float = 0.99

    def __post_init__(self):
        if self.unroll_length < 1 or self.capacity < self.unroll_length:
            raise ValueError(f"buffer capacity ({self.capacity}) must be at least unroll_length ({self.unroll_length})")
        if self.capacity % self.unroll_length:
            rounded = math.ceil(self.capacity / self.unroll_length) * self.unroll_length
            raise ValueError(
                f"buffer capacity ({self.capacity}) must be a multiple of unroll_length "
                f"({self.unroll_length}); use {rounded}"
            )
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")

    @property
    def window(self) -> int:
        return min(self.episode_length, self.capacity)

    # ------------------------------------------------------------------ memory
    def nbytes(self, example: Transition) -> int:
        """Bytes the storage takes for one env's example transition."""
        row = sum(np.dtype(x.dtype).itemsize * math.prod(np.shape(x)) for x in jax.tree.leaves(example))
        return int(row) * self.capacity * self.num_envs

    def check_memory(
        self,
        example: Transition,
        device: Any = None,
        verbose: bool = True,
        copies: int = 1,
        devices: int = 1,
        batch_bytes: int = 0,
    ) -> int:
        """Print the footprint and raise `BufferMemoryError` when it exceeds free memory.
        `copies` buffers of this size are needed (one per seed with --num-seeds), their env
        columns split evenly over `devices` devices; the check is per device. `batch_bytes` are
        drawn at once beside each copy (--presample: a training step's batches), split over
        the devices too."""
        row = self.nbytes(example) // (self.capacity * self.num_envs)
        buffers = self.nbytes(example) * copies // devices
        batches = batch_bytes * copies // devices
        need = buffers + batches
        free = _free_device_memory(device or jax.devices()[0])
        seeds = f" x {copies} seeds" if copies > 1 else ""
        per_device = f", {need / 2**20:.1f} MiB on each of {devices} devices" if devices > 1 else ""
        if verbose:
            drawn = f", and {batches * devices / 2**20:.1f} MiB of batches drawn at once" if batches else ""
            print(
                f"replay buffer: {buffers * devices / 2**20:.1f} MiB ({self.capacity} rows x {self.num_envs} envs "
                f"x {row} B{seeds}){drawn}{per_device}"
            )
        if free is not None and batch_bytes // devices >= free:  # one seed's batches alone do not fit
            raise BufferMemoryError(
                f"A training step's batches, drawn at once (--presample), need {batch_bytes // devices / 2**30:.2f} GiB per device "
                f"but only {free / 2**30:.2f} GiB of device memory is free. Pass --no-presample to draw them one "
                "by one, or lower --num-envs or --updates-per-rollout."
            )
        if free is not None and need > free:
            fits = max(
                self.unroll_length,
                int((free - batches) // (buffers // self.capacity)) // self.unroll_length * self.unroll_length,
            )
            seeds_fit = int(free // (need // copies))
            fewer_seeds = f", --num-seeds (at most {seeds_fit} fit)" if copies > 1 and seeds_fit >= 1 else ""
            drawn = f" beside {batches / 2**30:.2f} GiB of batches drawn at once (--no-presample frees them)"
            raise BufferMemoryError(
                f"The replay buffer needs {buffers / 2**30:.2f} GiB per device ({self.capacity} rows x {self.num_envs} "
                f"envs{seeds}{f' over {devices} devices' if devices > 1 else ''}){drawn if batches else ''} "
                f"but only {free / 2**30:.2f} GiB of device memory is free. Lower --buffer-size "
                f"(at most {fits} fits with this --num-envs{' and --num-seeds' if copies > 1 else ''}){fewer_seeds} "
                "or --num-envs."
            )
        return need

    def shardings(self, mesh: jax.sharding.Mesh, state: BufferState, lead: int = 0) -> BufferState:
        """Shardings for a buffer state (or its `jax.eval_shape`) with `lead` leading axes (a
        seed axis): the env columns split over the mesh's "data" axis, the indices replicated."""
        P = jax.sharding.PartitionSpec
        split = jax.sharding.NamedSharding(mesh, P(*[None] * (lead + 1), "data"))
        replicated = jax.sharding.NamedSharding(mesh, P())
        return BufferState(jax.tree.map(lambda _: split, state.data), replicated, replicated)

    def init(self, example: Transition) -> BufferState:
        data = jax.tree.map(
            lambda x: jnp.zeros((self.capacity, self.num_envs) + jnp.shape(x), jnp.asarray(x).dtype), example
        )
        return BufferState(data, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))

    def insert(self, state: BufferState, rollout: Transition) -> BufferState:
        """Write a rollout with leaves (unroll_length, num_envs, ...) at the ring index."""
        for x in jax.tree.leaves(rollout):
            if x.shape[:2] != (self.unroll_length, self.num_envs):
                raise ValueError(f"rollout leaves must start with {(self.unroll_length, self.num_envs)}, got {x.shape}")

        def write(buf, x):
            start = (state.insert_index,) + (0,) * (buf.ndim - 1)
            return jax.lax.dynamic_update_slice(buf, x.astype(buf.dtype), start)

        data = jax.tree.map(write, state.data, rollout)
        return BufferState(
            data,
            (state.insert_index + self.unroll_length) % self.capacity,
            jnp.minimum(state.size + self.unroll_length, self.capacity),
        )

    # ------------------------------------------------------------------ sampling
    def _sample_rows(self, state: BufferState, key: jax.Array, batch_size: int):
        """Rows, env columns and future-goal rows of `batch_size` transitions."""
        position_key, env_key, future_key = jax.random.split(key, 3)
        oldest = (state.insert_index - state.size) % self.capacity
        position = jax.random.randint(position_key, (batch_size,), 0, jnp.maximum(state.size, 1))
        env = jax.random.randint(env_key, (batch_size,), 0, self.num_envs)
        episode = state.data.episode_id[(oldest + position) % self.capacity, env]

        def same_episode(offset):  # rows of one episode are contiguous in time (ids only grow)
            later = position + offset
            row = (oldest + later) % self.capacity
            return (later < state.size) & (state.data.episode_id[row, env] == episode)

        # count = how many rows, from the sampled one on, belong to its episode (at most the
        # window): a binary search, O(B log window) instead of reading the whole window
        low, high = jnp.ones(batch_size, jnp.int32), jnp.full(batch_size, self.window, jnp.int32)
        for _ in range(max(1, math.ceil(math.log2(self.window)))):
            mid = (low + high + 1) // 2
            inside = same_episode(mid - 1)
            low, high = jnp.where(inside, mid, low), jnp.where(inside, high, mid - 1)
        # offset = k - 1 with P(offset) ~ gamma^offset on 0..count-1, by inverting its CDF
        # F(o) = (1 - gamma^(o+1)) / (1 - gamma^count); gamma = 1 is the uniform limit
        u = jax.random.uniform(future_key, (batch_size,))
        if self.gamma == 1.0:
            offset = jnp.floor(u * low).astype(jnp.int32)
        else:
            log_gamma = math.log(self.gamma)
            offset = jnp.floor(jnp.log1p(-u * -jnp.expm1(low * log_gamma)) / log_gamma).astype(jnp.int32)
        offset = jnp.clip(offset, 0, low - 1)
        row = (oldest + position) % self.capacity
        return row, env, (oldest + position + offset) % self.capacity

    def sample(self, state: BufferState, key: jax.Array, batch_size: int) -> Batch:
        """`batch_size` transitions with a future goal each (reward left as zeros)."""
        row, env, future_row = self._sample_rows(state, key, batch_size)
        picked = jax.tree.map(lambda x: x[row, env], state.data)
        future_state = state.data.next_obs[future_row, env]
        return Batch(
            obs=picked.obs,
            action=picked.action,
            next_obs=picked.next_obs,
            terminated=picked.terminated,
            truncated=picked.truncated,
            future_goal=future_state[:, jnp.array(self.goal_indices)],
            reward=jnp.zeros(batch_size, jnp.float32),
            relabelled=jnp.zeros(batch_size, bool),
        )

    def sample_her(
        self,
        state: BufferState,
        key: jax.Array,
        batch_size: int,
        relabel_ratio: float,
        goal_reach_thresh: float,
        success_fn: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
    ) -> Batch:
        """Hindsight relabelling ("future" strategy): with probability `relabel_ratio` the
        commanded goal of obs and next_obs becomes the future goal; the reward is the success
        of s_{t+1} under the (possibly new) goal: ||achieved(s_{t+1}) - g|| < goal_reach_thresh,
        or `success_fn(next_state_part, goal)` (batched) for envs with composite goals."""
        sample_key, relabel_key = jax.random.split(key)
        batch = self.sample(state, sample_key, batch_size)
        relabel = jax.random.uniform(relabel_key, (batch_size,)) < relabel_ratio
        goal = jnp.where(relabel[:, None], batch.future_goal, batch.obs[:, self.state_dim :])
        obs = batch.obs.at[:, self.state_dim :].set(goal)
        next_obs = batch.next_obs.at[:, self.state_dim :].set(goal)
        next_state = batch.next_obs[:, : self.state_dim]
        if success_fn is None:
            achieved = next_state[:, jnp.array(self.goal_indices)]
            reward = (jnp.linalg.norm(achieved - goal, axis=-1) < goal_reach_thresh).astype(jnp.float32)
        else:
            reward = success_fn(next_state, goal).astype(jnp.float32)
        return batch._replace(obs=obs, next_obs=next_obs, reward=reward, relabelled=relabel)


def rows_per_env(
    buffer_size: int, learning_starts: int, batch_size: int, num_envs: int, unroll_length: int
) -> tuple[int, int]:
    """(capacity, learning_start_rows): a run's --buffer-size and --learning-starts rounded up to
    whole rollouts of `unroll_length` rows, after checking that learning can start. Raises
    ValueError naming the flags to change."""
    capacity = math.ceil(buffer_size / unroll_length) * unroll_length
    start = math.ceil(learning_starts / unroll_length) * unroll_length
    if start > capacity:
        raise ValueError(
            f"--learning-starts ({learning_starts}) exceeds the buffer ({capacity} rows per env): "
            f"lower --learning-starts or raise --buffer-size to at least {start}."
        )
    rows = max(start, unroll_length)
    if batch_size > rows * num_envs:
        raise ValueError(
            f"--batch-size ({batch_size}) is larger than what the buffer holds when learning starts "
            f"({rows} rows x {num_envs} envs = {rows * num_envs} transitions): lower "
            f"--batch-size or raise --learning-starts / --num-envs."
        )
    return capacity, start


def _free_device_memory(device: Any) -> int | None:
    """Free bytes on `device`: the allocator's figure on accelerators, MemAvailable on CPU."""
    stats = None
    try:
        stats = device.memory_stats()
    except Exception:  # some backends do not implement it
        stats = None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    if os.path.exists("/proc/meminfo"):
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    return None
