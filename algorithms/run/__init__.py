"""The run harness every algorithm file shares: what surrounds the algorithm in a run.

* `main.py`: `Algorithm` (what an algorithm file hands over: its name, `Args`, `make_train`,
  `make_chunk`, `make_evaluate`, `model_of`), `main` (train or evaluate, in named steps:
  `build_program`, then a `Run`'s start or resume, logs, compile, train and finish), `cli`
  (flags and exit codes).
* `models.py`: saved models: `load_model`, `load_policy`, --eval-only and --save-model.
* `flags.py`: `RunArgs`, the flags every algorithm shares (each `Args` extends it),
  `ConfigError`/`require` for flags that cannot run, `require_network_sizes`, `resumed_args`,
  `make_env`.
* `schedule.py`: `Carry` and `Step`, the named pytrees of a training step; `make_schedule`
  (the run's flags checked and turned into sizes and boundaries) and `train_until` (the calls
  of an algorithm's compiled loop of training steps, its `make_chunk`, between evaluations and
  checkpoints).
* `devices.py`: the seed axis, the device mesh, the batch split, multi-host start and gather,
  the per-platform default of --scan-unroll.
* `logs.py`: TensorBoard writers (one per seed), evaluation videos, the progress line.
* `files.py`: run directories, checkpoints and saved models (checksummed, written atomically).
* `signals.py`: SIGTERM and Ctrl-C turned into a stop after the current training step.

An algorithm file imports `from algorithms import run` and uses the names below.
"""

from algorithms.run.devices import SCAN_UNROLL, scan_unroll
from algorithms.run.files import CheckpointError, goal_policy
from algorithms.run.flags import ConfigError, RunArgs, make_env, require, require_network_sizes
from algorithms.run.main import Algorithm, cli, main
from algorithms.run.models import load_model, load_policy
from algorithms.run.schedule import Carry, Schedule, Step, make_schedule

__all__ = [
    "Algorithm",
    "Carry",
    "CheckpointError",
    "ConfigError",
    "RunArgs",
    "SCAN_UNROLL",
    "Schedule",
    "Step",
    "cli",
    "goal_policy",
    "load_model",
    "load_policy",
    "main",
    "make_env",
    "make_schedule",
    "require",
    "require_network_sizes",
    "scan_unroll",
]
