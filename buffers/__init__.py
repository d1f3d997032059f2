"""The on-device trajectory replay buffer that samples future states as goals (and HER
batches): `TrajectoryBuffer` with `Transition`, `Batch` and `BufferState`, `rows_per_env` (its
sizes in rows per env) and `BufferMemoryError` (a buffer that does not fit in memory). See
`buffers/trajectory.py`.

    from buffers import TrajectoryBuffer, Transition
"""

from buffers.trajectory import (
    Batch,
    BufferMemoryError,
    BufferState,
    TrajectoryBuffer,
    Transition,
    rows_per_env,
)

__all__ = ["Batch", "BufferMemoryError", "BufferState", "TrajectoryBuffer", "Transition", "rows_per_env"]
