"""Stopping a run cleanly: SIGTERM (a cluster's preemption, `kill`) and SIGINT (Ctrl-C) become
a request to stop between two training steps.

    with StopSignals() as stop:
        ...
        if stop.poll():            # after each call of the training loop
            ...                    # write a checkpoint, flush the logs, raise Stopped(stop.exit_code, how to resume)

The first signal only sets the request (and says so on stderr); a second one ends the process at
once with exit code 128 + its number, as if the signal had killed it. In a multi-host run every
process asks every other at each `poll`, so all of them stop after the same training step.
`any_process(flag)` is the same agreement for any flag (a write that failed in process 0).
"""

from __future__ import annotations

import os
import signal
import sys
import threading

import jax
import numpy as np


class Stopped(Exception):
    """A run that stopped on a signal; `exit_code` is 128 + the signal's number and the message
    says what was saved and how to resume."""

    def __init__(self, exit_code: int, message: str):
        super().__init__(message)
        self.exit_code = exit_code


class StopSignals:
    """SIGTERM and SIGINT handlers for the life of a `with` block (the previous handlers come
    back after it). Outside the main thread, where Python allows no handler, nothing is
    installed and `poll` only hears the other processes."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.signum: int | None = None
        self.previous = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.signum is not None:
            print(f"\n{name} again: stopping now, without a checkpoint", file=sys.stderr, flush=True)
            os._exit(128 + signum)
        self.signum = signum
        print(
            f"\n{name}: stopping after the current training step (send it again to stop at once)",
            file=sys.stderr,
            flush=True,
        )

    def poll(self, faster: bool = False) -> tuple[bool, bool]:
        """(stop now, call the loop with more steps next time): this process's request and
        `faster`, agreed by all processes (any request stops all; all must be faster)."""
        if jax.process_count() == 1:
            return self.signum is not None, faster
        from jax.experimental import multihost_utils

        mine = np.array([self.signum or 0, int(faster)], np.int32)
        every = np.asarray(multihost_utils.process_allgather(mine)).reshape(-1, 2)
        if self.signum is None and every[:, 0].max() > 0:
            self.signum = int(every[:, 0].max())  # another process was signalled: stop with it
        return self.signum is not None, bool(every[:, 1].min())

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGTERM)


def any_process(flag: bool) -> bool:
    """Whether `flag` is true in any process of the run; every process must call it at the same
    point (in a one-process run it is `flag`)."""
    if jax.process_count() == 1:
        return flag
    from jax.experimental import multihost_utils

    return bool(np.asarray(multihost_utils.process_allgather(np.int32(flag))).max())
