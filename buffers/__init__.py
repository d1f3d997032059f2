"""What the algorithms share besides `envs`: the replay buffer and what a run writes.

* `buffers/trajectory.py`: `TrajectoryBuffer`, the on-device trajectory replay buffer that
  samples future states as goals (and HER batches), with `Transition`, `Batch`, `BufferState`.
* `buffers/files.py`: what a run writes: its directories (`make_run_dirs`, `read_run`),
  checkpoints and saved models (`save_tree`, `save_models`, `load_tree`, `read_header`,
  `save_checkpoint`, `load_checkpoint`), `goal_policy` for a loaded actor, and `CheckpointError`.
* `buffers/schedule.py`: `make_schedule`, a run's flags checked and turned into a `Schedule`
  (buffer rows, gradient steps per training step, training steps, evaluation and checkpoint
  boundaries), and `make_chunk`, the compiled loop over the training steps between two.
* `buffers/flags.py`: `RunArgs`, the flags every algorithm shares (each `Args` extends it), and
  `ConfigError`/`require` for flags that cannot run, `require_network_sizes` for the network
  flags every `Args` has, `resumed_args` for --resume, `import_wandb` for --track.
* `buffers/devices.py`: `seed_axis`, `make_mesh`, `spread_over`, `carry_shardings`,
  `start_distributed` and `fetch`, for runs over several seeds, devices and hosts.
* `buffers/logs.py`: `Logs`, a run's TensorBoard writers (one per seed) and evaluation videos;
  `progress`, the progress line; `summary`, a run's last line.

Everything is re-exported here: `from buffers import TrajectoryBuffer, save_checkpoint`.
"""

from buffers.devices import carry_shardings, fetch, make_mesh, seed_axis, spread_over, start_distributed
from buffers.files import (
    CheckpointError,
    goal_policy,
    load_checkpoint,
    load_tree,
    make_run_dirs,
    read_header,
    read_run,
    save_checkpoint,
    save_models,
    save_tree,
)
from buffers.flags import ConfigError, RunArgs, import_wandb, require, require_network_sizes, resumed_args
from buffers.logs import Logs, progress, summary
from buffers.schedule import Schedule, make_chunk, make_schedule
from buffers.trajectory import (
    Batch,
    BufferMemoryError,
    BufferState,
    TrajectoryBuffer,
    Transition,
    rows_per_env,
)

__all__ = [
    "Batch",
    "BufferMemoryError",
    "BufferState",
    "CheckpointError",
    "ConfigError",
    "Logs",
    "RunArgs",
    "Schedule",
    "TrajectoryBuffer",
    "Transition",
    "carry_shardings",
    "fetch",
    "goal_policy",
    "load_checkpoint",
    "load_tree",
    "make_chunk",
    "make_mesh",
    "make_run_dirs",
    "make_schedule",
    "progress",
    "read_header",
    "read_run",
    "import_wandb",
    "require",
    "require_network_sizes",
    "resumed_args",
    "rows_per_env",
    "save_checkpoint",
    "save_models",
    "save_tree",
    "summary",
    "seed_axis",
    "spread_over",
    "start_distributed",
]
