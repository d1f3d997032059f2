"""The two modules the algorithms share besides `envs`: the replay buffer and run files.

* `buffers/trajectory.py`: `TrajectoryBuffer`, the on-device trajectory replay buffer that
  samples future states as goals (and HER batches), with `Transition`, `Batch`, `BufferState`.
* `buffers/files.py`: what a run writes: its directories (`make_run_dirs`, `read_run`),
  checkpoints and saved models (`save_tree`, `load_tree`, `read_header`, `save_checkpoint`,
  `load_checkpoint`), and `CheckpointError`.

Everything is re-exported here: `from buffers import TrajectoryBuffer, save_checkpoint`.
"""

from buffers.files import (
    CheckpointError,
    load_checkpoint,
    load_tree,
    make_run_dirs,
    read_header,
    read_run,
    save_checkpoint,
    save_tree,
)
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
    "TrajectoryBuffer",
    "Transition",
    "load_checkpoint",
    "load_tree",
    "make_run_dirs",
    "read_header",
    "read_run",
    "rows_per_env",
    "save_checkpoint",
    "save_tree",
]
