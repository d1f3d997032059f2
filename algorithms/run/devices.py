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
import numpy as np
from jax.experimental import multihost_utils

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
    (results/layout.md)."""
    if num_seeds > 1:
        return jax.vmap(fn, in_axes=in_axes)
    axes = in_axes if isinstance(in_axes, tuple) else None

    def one_seed(*inputs):
        inputs = [x if axes and axes[i] is None else jax.tree.map(lambda y: y[0], x) for i, x in enumerate(inputs)]
        return jax.tree.map(lambda y: y[None], fn(*inputs))

    return one_seed
