"""How a run spreads over seeds, devices and hosts: the seed axis, the mesh, the batch split,
gathering to the host.

    init = seed_axis(init, num_seeds)         # a leading seed axis on inputs and outputs

    start_distributed("auto")                 # multi-host, before JAX touches a device
    mesh = make_mesh(num_devices, num_envs, batch_size)   # None on one device
    spread = spread_over(mesh)                # spread(batch): split each gradient step's batch
    shardings = carry_shardings(mesh, carry, vec_env, buffer)   # where a training carry lives
    host_tree = fetch(tree)                   # the whole tree on this host (every process)

With a mesh (1-D, axis "data"), the env states and the buffer's env columns are split over the
devices (`VecEnv.shardings`, `TrajectoryBuffer.shardings`) and each gradient step's batch too,
so XLA computes the loss data-parallel and all-reduces the gradients. Bad flags raise
`ConfigError` with a message that names the flags to change.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from algorithms.run.contract import Carry
from algorithms.run.flags import ConfigError


def start_distributed(spec: str) -> None:
    """--distributed: join the other processes of a multi-host run, before JAX touches a device.
    `spec` is "auto" (SLURM, Open MPI, Kubernetes, ... as JAX detects them) or
    HOST:PORT,NUM_PROCESSES,PROCESS_ID."""
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU hosts; GPUs use NCCL
    if spec == "auto":
        return jax.distributed.initialize()
    try:
        address, num_processes, process_id = spec.split(",")
        jax.distributed.initialize(address, int(num_processes), int(process_id))
    except ValueError as error:
        raise ConfigError(f"--distributed {spec}: {error} (use auto or HOST:PORT,NUM_PROCESSES,PROCESS_ID).") from None


def make_mesh(num_devices: int | None, num_envs: int, batch_size: int) -> jax.sharding.Mesh | None:
    """A 1-D mesh (axis "data") over `num_devices` devices (None: all visible), or None for one."""
    devices = jax.devices()
    n = len(devices) if num_devices is None else num_devices
    if not 1 <= n <= len(devices):
        raise ConfigError(f"--num-devices {n}: {len(devices)} device(s) are visible ({devices[0].platform}).")
    if num_envs % n or batch_size % n:
        raise ConfigError(
            f"--num-envs ({num_envs}) and --batch-size ({batch_size}) must be multiples of the {n} devices: "
            "set them so, or pass --num-devices."
        )
    return jax.sharding.Mesh(np.array(devices[:n]), ("data",)) if n > 1 else None


def carry_shardings(mesh: jax.sharding.Mesh | None, carry: Any, vec_env: Any, buffer: Any) -> Any:
    """Where a training `Carry` (train state, env states, buffer state, key) lives: the env states
    and the buffer's env columns split over the mesh (after the seed axis), networks, optimiser
    states, counters and keys replicated. None on one device."""
    if mesh is None:
        return None
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    return carry._replace(
        train_state=jax.tree.map(lambda _: replicated, carry.train_state),
        env_state=vec_env.shardings(mesh, carry.env_state, lead=1),
        buffer_state=buffer.shardings(mesh, carry.buffer_state, lead=1),
        key=replicated,
    )


def spread_over(mesh: jax.sharding.Mesh | None):
    """spread(batch): on several devices, each gradient step's batch split over them (the loss is
    still the whole batch's mean); on one device, the identity."""
    if mesh is None:
        return lambda batch: batch
    split = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    return lambda batch: jax.lax.with_sharding_constraint(batch, split)


def fetch(tree: Any) -> Any:
    """The whole of `tree` on the host, gathered from every process in a multi-host run."""
    return jax.device_get(tree) if jax.process_count() == 1 else multihost_utils.process_allgather(tree, tiled=True)


def seed_axis(fn, num_seeds: int, in_axes: int | tuple = 0):
    """`fn` with a leading seed axis on its inputs (those of `in_axes` 0) and outputs: a vmap for
    several seeds; one seed runs unbatched between an added and a removed axis, since a vmap
    of size one turns the buffer's writes into scatters and costs about 25% of the SPS
    (results/notes/seed_cost.md, "One seed").

    With several seeds, a training `Carry` among the inputs (the training chunk's) keeps its
    buffer's ring indices out of the vmap (`shared_over_seeds`): every seed writes the same rows
    at the same training steps, so the indices are one value. Batched, they would turn each
    buffer write into a scatter (on CPU with XLA's older emitters, a loop over the seeds) and
    the algorithm's gate on learning starts (`lax.cond` on the buffer's size) into a select that
    computes every gradient step before learning starts and discards it (results/notes/seed_cost.md)."""
    if num_seeds > 1:
        return _vmap_over_seeds(fn, num_seeds, in_axes)
    axes = in_axes if isinstance(in_axes, tuple) else None

    def one_seed(*inputs):
        inputs = [x if axes and axes[i] is None else jax.tree.map(lambda y: y[0], x) for i, x in enumerate(inputs)]
        return jax.tree.map(lambda y: y[None], fn(*inputs))

    return one_seed


def shared_over_seeds(carry: Carry) -> Carry:
    """Which leaves of a training `Carry` hold one value for every seed: the fields its buffer
    state names in `shared_over_seeds` (the trajectory buffer's ring indices, the insert row
    and the size, which follow the schedule, not the seed)."""
    mask = jax.tree.map(lambda _: False, carry)
    shared = {name: True for name in getattr(carry.buffer_state, "shared_over_seeds", ())}
    return mask._replace(buffer_state=mask.buffer_state._replace(**shared))


def _vmap_over_seeds(fn, num_seeds: int, in_axes: int | tuple):
    """jax.vmap of `fn` over the seeds, with the leaves of `shared_over_seeds` of a `Carry` input
    (and of the `Carry` it returns first) passed unbatched: seed 0's value goes in, and comes
    back out broadcast over the seeds, so the stored carry keeps its seed axis on every leaf.
    A fork whose training step makes those leaves differ between seeds fails to trace here."""
    axes = in_axes if isinstance(in_axes, tuple) else None

    def batched(*inputs):
        masks = [shared_over_seeds(x) if isinstance(x, Carry) else None for x in inputs]
        if not any(mask is not None for mask in masks):
            return jax.vmap(fn, in_axes=in_axes)(*inputs)
        inner, inner_axes = [], []
        for i, (x, mask) in enumerate(zip(inputs, masks)):
            axis = axes[i] if axes else in_axes
            if mask is None:
                inner.append(x)
                inner_axes.append(axis)
            else:
                inner.append(jax.tree.map(lambda y, shared: y[0] if shared else y, x, mask))
                inner_axes.append(jax.tree.map(lambda shared: None if shared else 0, mask))
        carry_mask = next(mask for mask in masks if mask is not None)
        out_axes = (jax.tree.map(lambda shared: None if shared else 0, carry_mask), 0)
        carry, rest = jax.vmap(fn, in_axes=tuple(inner_axes), out_axes=out_axes)(*inner)
        carry = jax.tree.map(
            lambda y, shared: jnp.broadcast_to(y, (num_seeds, *y.shape)) if shared else y, carry, carry_mask
        )
        return carry, rest

    return batched
