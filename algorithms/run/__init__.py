"""The run harness every algorithm file shares: what surrounds the algorithm in a run.

* `contract.py`: what an algorithm file hands over and gets back, typed: `Algorithm` (its name,
  `Args`, `make_train`, `make_chunk`, `make_evaluate`, `model_of`), `ScheduleArgs` (the
  schedule's flags, which every `Args` extends), `Carry` and `Step` (a training step's
  pytrees), `ChunkStats` (what a chunk of training steps sums for the logs). Read it first.
* `main.py`: `main` (train or evaluate, in named steps: `build_program`, then a `Run`'s start
  or resume, logs, compile, train and finish), `train_until` (the calls of the compiled chunk),
  `cli` (flags and exit codes).
* `flags.py`: `RunArgs`, the run's flags, and `ConfigError`/`require` for flags that cannot
  run, `require_network_sizes`.
* `schedule.py`: `make_schedule`, the run's and schedule's flags checked and turned into sizes
  and boundaries (`Schedule`).
* `environment.py`: `make_env`, the env the flags name.
* `devices.py`: the seed axis, the device mesh, the batch split, multi-host start and gather.
* `logs.py`: TensorBoard writers (one per seed), evaluation videos, the progress line, wandb.
* `files.py`: run directories, checkpoints and model files (checksummed, written atomically),
  and `resumed_args`, a --resume run's own flags.
* `models.py`: saved models: `load_model`, `load_policy`, --eval-only and --save-model.
* `signals.py`: SIGTERM and Ctrl-C turned into a stop after the current training step.

An algorithm file imports `from algorithms import run` and uses the names below.
"""

from algorithms.run.contract import Algorithm, Carry, ChunkStats, ScheduleArgs, Step
from algorithms.run.environment import make_env
from algorithms.run.flags import ConfigError, RunArgs, require, require_network_sizes
from algorithms.run.main import cli, main
from algorithms.run.models import load_model, load_policy
from algorithms.run.schedule import make_schedule

__all__ = [
    "Algorithm",
    "Carry",
    "ChunkStats",
    "ConfigError",
    "RunArgs",
    "ScheduleArgs",
    "Step",
    "cli",
    "load_model",
    "load_policy",
    "main",
    "make_env",
    "make_schedule",
    "require",
    "require_network_sizes",
]
