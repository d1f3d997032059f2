"""A run of any algorithm file: run directories, resume, seeds, devices, logging, checkpoints.

An algorithm file hands the harness a `run.Algorithm` (algorithms/run/contract.py says what
each of its parts must be) and calls `run.cli(ALGORITHM)`.

`main(algorithm, args)` trains (or with --eval-only evaluates) and returns the run directories,
in named steps: the program is built (`build_program`), the run started or resumed
(`Run.start`), its logs opened (`Run.open_logs`), the chunk and the evaluation compiled
(`Run.compile`), the training steps run between evaluations and checkpoints (`Run.train`, in
calls of the compiled chunk made by `train_until`), and its end written (`Run.finish`).

Saved models (--save-model, --eval-only, `load_policy`) are in algorithms/run/models.py. `main`
is written to be read. To change a step of the host loop, a file subclasses `Run` (after `from
algorithms.run.main import *`), overrides that step, copies `main` as `my_main` starting its
class, and hands that to `run.cli(ALGORITHM, my_main)` (README, "Anatomy of an algorithm file";
the suite's fork in tests/conftest.py does so).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import equinox as eqx
import jax
import numpy as np
import tyro

from algorithms.run import devices, files, logs
from algorithms.run.contract import Algorithm, Carry, ChunkStats, ScheduleArgs
from algorithms.run.environment import make_env
from algorithms.run.files import CheckpointError, resumed_args
from algorithms.run.flags import ConfigError
from algorithms.run.logs import import_wandb
from algorithms.run.models import evaluate_saved_model, save_models
from algorithms.run.schedule import Schedule, make_schedule
from algorithms.run.signals import Stopped, StopSignals, any_process
from buffers import BufferMemoryError, Transition


def main(algorithm: Algorithm, args: ScheduleArgs) -> list[str]:
    """Train (or with --eval-only evaluate) and return the run directories (in a multi-host
    run, the first process writes them and returns them; the others return [])."""
    if args.distributed and not args.eval_only:
        devices.start_distributed(args.distributed)
    args = resumed_args(args, algorithm.name) if args.resume is not None else args
    env = make_env(args)  # before anything starts JAX: an arm or pusher turns off XLA's fusion emitters
    schedule = make_schedule(args, env)
    if args.eval_only:
        return evaluate_saved_model(algorithm, args)
    program = build_program(algorithm, args, env, schedule)
    wandb = import_wandb() if args.track else None  # a missing wandb stops the run before its directories exist
    run = Run.start(algorithm, args, schedule, program)  # holds the run directories' locks from here
    try:
        run.open_logs(env, wandb)
        with StopSignals() as stop:  # SIGTERM, Ctrl-C: from here on, stop after a training step
            run.compile()
            run.train(stop)
        run.finish()
    except files.WriteError as error:  # on every process: no file is retried, no new checkpoint written
        raise run.write_failed(error) from None
    finally:
        files.unlock_run_dirs()
    return run.run_dirs


@dataclass(frozen=True)
class Program:
    """A run's functions before they compile, each with a leading seed axis (--num-seeds), and
    the host arrays they start from."""

    init: Callable  # init(keys) -> Carry
    chunk: Callable  # chunk(carry, num_steps) -> (carry, stats): the algorithm's make_chunk
    evaluate: Callable  # evaluate(train_state, keys, index) -> (metrics, env 0's episode) of model_of's actor
    init_keys: np.ndarray
    eval_keys: np.ndarray
    shardings: Any  # of the carry: envs and buffer split over the mesh's devices
    mesh: Any  # None on one device


def build_program(algorithm: Algorithm, args: ScheduleArgs, env, schedule: Schedule) -> Program:
    """The algorithm's functions over the seeds and devices; a buffer that does not fit the
    devices' memory stops here with BufferMemoryError, before anything compiles."""
    mesh = devices.make_mesh(args.num_devices, args.num_envs, args.batch_size)
    init, training_step, vec_env, buffer = algorithm.make_train(args, env, schedule, devices.spread_over(mesh))
    example = Transition.example(env.observation_size, env.action_size)
    presampled = 0
    if args.presample:  # a training step's batches, drawn at once beside the buffer
        state = jax.eval_shape(buffer.init, example)
        batch = jax.eval_shape(lambda s: buffer.sample(s, jax.random.PRNGKey(0), args.batch_size), state)
        presampled = schedule.updates_per_rollout * sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(batch))
    buffer.check_memory(example, copies=args.num_seeds, devices=mesh.size if mesh else 1, batch_bytes=presampled)
    init = devices.seed_axis(init, args.num_seeds)
    evaluate = devices.seed_axis(algorithm.make_evaluate(args, env), args.num_seeds)
    # the actor model_of saves is the one evaluated (--optimizer splus: the parameters' average)
    evaluated_actor = devices.seed_axis(lambda train_state: algorithm.model_of(train_state)[0], args.num_seeds)
    chunk = devices.seed_axis(algorithm.make_chunk(training_step), args.num_seeds, in_axes=(0, None))

    def evaluate_at(train_state, keys, index):  # the index-th evaluation: its own keys, the same on resume
        return evaluate(evaluated_actor(train_state), jax.vmap(jax.random.fold_in, (0, None))(keys, index))

    # host arrays (numpy): a multi-host run needs every process to pass the same value
    keys = np.stack([jax.random.split(jax.random.PRNGKey(args.seed + k)) for k in range(args.num_seeds)])
    shardings = devices.carry_shardings(mesh, jax.eval_shape(init, keys[:, 0]), vec_env, buffer)
    return Program(init, chunk, evaluate_at, keys[:, 0], keys[:, 1], shardings, mesh)


class Writes:
    """Process 0's writes during a run, so that one that fails stops every process after the
    same training step: `do(fn, *args)` calls fn unless a write failed before and keeps the
    WriteError it raises (nothing is written after a failure); `agree()`, called by every
    process at the same points of the loop, raises it on all of them."""

    def __init__(self):
        self.failed: files.WriteError | None = None

    def do(self, fn: Callable, *args) -> Any:
        if self.failed is None:
            try:
                return fn(*args)
            except files.WriteError as error:
                self.failed = error
        return None

    def agree(self) -> None:
        if any_process(self.failed is not None):
            raise self.failed or files.WriteError(
                None, "process 0 could not write the run's files (its output says how to go on)"
            )


class Run:
    """A training run on this process from its start (or resume) to its end: the carry, the
    training steps reached and the seconds they took, the logs, and process 0's writes (one
    that fails stops the run: docs/research_runs.md, "A full disk")."""

    def __init__(self, algorithm, args, schedule, program, run_dirs, carry, start: int, train_time: float):
        self.algorithm, self.args, self.schedule, self.program = algorithm, args, schedule, program
        self.run_dirs, self.carry, self.start_step, self.train_time = run_dirs, carry, start, train_time
        self.reached = start  # training steps done
        self.lead = jax.process_index() == 0
        self.writes = Writes()
        self.script = os.path.relpath(sys.modules[algorithm.make_train.__module__].__file__)

    @classmethod
    def start(cls, algorithm: Algorithm, args: ScheduleArgs, schedule: Schedule, program: Program) -> Run:
        """A fresh run, or the newest checkpoint of --resume. The first process holds each run
        directory's lock (files.lock_run_dir) from here to the run's end, `main`'s
        `files.unlock_run_dirs()`: a second writer stops with RunInUse."""
        lead = jax.process_index() == 0
        init, keys, shardings = program.init, program.init_keys, program.shardings
        if args.resume is None:
            run_dirs = files.make_run_dirs(args, algorithm.name) if lead else []
            try:
                for run_dir in run_dirs:
                    files.lock_run_dir(run_dir)
            except files.WriteError:
                files.unlock_run_dirs()
                for run_dir in run_dirs:  # made a moment ago, and nothing in them yet but args.json
                    shutil.rmtree(run_dir, ignore_errors=True)
                raise
            carry = jax.jit(init, out_shardings=shardings)(keys)
            return cls(algorithm, args, schedule, program, run_dirs, carry, 0, 0.0)
        names = files.read_run(args.resume, algorithm.name)[0]["run_names"] if lead else []
        run_dirs = [os.path.join(os.path.dirname(args.resume), name) for name in names]
        try:
            for run_dir in run_dirs:  # before anything is read: another process may be writing them
                files.lock_run_dir(run_dir)
            like = jax.eval_shape(init, keys)
            folder = os.path.join(args.resume, "checkpoints")
            carry, header = files.load_checkpoint(folder, like, algorithm=algorithm.name)
        except CheckpointError as error:
            files.unlock_run_dirs()
            raise CheckpointError(f"--resume {args.resume}: {error} (written with --checkpoint-every).") from None
        except BaseException:
            files.unlock_run_dirs()
            raise
        carry = jax.device_put(jax.tree.map(np.asarray, carry), shardings)  # host values: any process count
        print(f"resuming {args.resume} after {header['step'] * args.num_envs * args.unroll_length:,} env steps")
        return cls(algorithm, args, schedule, program, run_dirs, carry, header["step"], header["train_time"])

    def env_steps(self, training_steps: int) -> int:
        return training_steps * self.schedule.steps_per_training_step

    def open_logs(self, env, wandb=None) -> None:
        """The seeds' writers (a resumed run's events after its checkpoint are dropped), the
        flags and derived sizes as text at a fresh start, and --track's wandb run."""
        args, start = self.args, self.start_step
        if wandb is not None and self.lead:
            wandb.init(
                project=args.wandb_project_name, sync_tensorboard=True, config=asdict(args), name=self.run_dirs[0]
            )
        self.logs = logs.make_logs(args, env, self.run_dirs, purge_step=self.env_steps(start) + 1 if start else None)
        if not start:
            derived = {k: v for k, v in asdict(self.schedule).items() if "boundaries" not in k}
            self.writes.do(self.logs.hyperparameters, asdict(args), derived)
        self.writes.agree()
        if self.lead:
            on = f" ({self.program.mesh.size} devices)" if self.program.mesh else ""
            print("run directory: " + ", ".join(self.run_dirs) + on)

    def compile(self) -> None:
        """The chunk of training steps (compiled once: a second trace is an error) and the evaluation."""
        begin, program = time.perf_counter(), self.program
        mesh = program.mesh
        replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()) if mesh else None
        chunk = eqx.debug.assert_max_traces(program.chunk, max_traces=1)
        chunk = jax.jit(chunk, donate_argnums=0, out_shardings=(program.shardings, replicated))
        self.chunk = chunk.lower(self.carry, np.int32(0)).compile()
        train_state = self.carry.train_state
        self.evaluate = jax.jit(program.evaluate).lower(train_state, program.eval_keys, np.int32(0)).compile()
        print(f"compiled training chunk and evaluation in {time.perf_counter() - begin:.1f} s", flush=True)

    def log_evaluation(self, index: int) -> dict:
        """The index-th evaluation of the current actor, logged; its success rates (empty if the
        logs could not be written)."""
        metrics, episode = self.evaluate(self.carry.train_state, self.program.eval_keys, np.int32(index))
        env_steps = self.env_steps(self.schedule.eval_boundaries[index])
        return self.writes.do(self.logs.evaluation, metrics, episode, env_steps, index) or {}

    def checkpoint(self, step: int) -> str | None:
        """The whole carry after `step` training steps, its logs on disk first (a checkpoint
        never skips logs: resuming from it re-logs everything after it). Its path, on process 0."""
        self.writes.do(self.logs.reopen)
        header = {"algorithm": self.algorithm.name, "kind": "checkpoint", "train_time": self.train_time}
        snapshot = devices.fetch(self.carry)
        if not self.lead:
            return None
        folder = os.path.join(self.run_dirs[0], "checkpoints")
        return self.writes.do(files.save_checkpoint, folder, step, header, snapshot)

    def train(self, stop: StopSignals) -> None:
        """The training steps left, stretch by stretch between evaluation and checkpoint
        boundaries, each in calls of the compiled chunk of 1, 2, 4, ... steps (`train_until`,
        below); a stop request ends it with a checkpoint (unless --no-checkpoint-on-stop) and
        `Stopped`."""
        schedule, start = self.schedule, self.start_step
        self.loop_start = time.perf_counter()
        self.success = self.log_evaluation(0) if not start else {}
        self.writes.agree()
        evals = {boundary: i for i, boundary in enumerate(schedule.eval_boundaries)}
        boundaries = sorted(set(schedule.eval_boundaries) | set(schedule.checkpoint_boundaries))
        for lo, hi in [(max(lo, start), hi) for lo, hi in zip(boundaries, boundaries[1:]) if hi > start]:
            self.carry, stats, self.reached, seconds = train_until(self.chunk, self.carry, lo, hi, stop)
            self.train_time += seconds
            sps = self.env_steps(self.reached - lo) / seconds
            self.writes.do(self.logs.chunk, stats, sps, self.env_steps(self.reached))
            if self.reached < hi:
                saved = self.checkpoint(self.reached) if self.args.checkpoint_on_stop else None
                self.writes.do(self.logs.close)
                self.writes.agree()
                raise Stopped(stop.exit_code, self.stopped_message(saved))
            if hi in evals:
                self.success = self.log_evaluation(evals[hi])
            if hi in schedule.checkpoint_boundaries:
                self.checkpoint(hi)
            self.writes.agree()
            if self.lead:
                eta = (schedule.training_steps - hi) * self.train_time / (hi - start)
                sps = self.env_steps(hi - start) / self.train_time
                logs.progress(self.env_steps(hi), schedule.final_env_steps, sps, eta, self.success)

    def finish(self) -> None:
        """The summary line, the logs closed, and --save-model's files."""
        args, schedule = self.args, self.schedule
        print(f"\n{args.resume} had already finished" if self.start_step == schedule.training_steps else "")
        final = jax.device_get(self.carry.train_state)  # networks and counters (replicated over the devices)
        grad_steps = int(final.grad_steps[0])
        steps = schedule.final_env_steps
        print(logs.summary(steps, args.total_timesteps, args.num_seeds, grad_steps, self.train_time, self.success))
        if logs.task_line(self.success):
            print(logs.task_line(self.success))
        self.writes.do(self.logs.close)
        if args.save_model:
            self.writes.do(save_models, self.algorithm, args, self.run_dirs, final, steps)
        self.writes.agree()
        wall = time.perf_counter() - self.loop_start
        print(f"training loop: {wall:.1f} s wall (training, evaluations, checkpoints, videos)")

    def resume_command(self) -> str:
        return f"python {self.script} --resume {self.run_dirs[0] if self.run_dirs else self.args.resume}"

    def stopped_message(self, saved: str | None) -> str:
        """What a run stopped by a signal tells its user: what was saved and how to continue."""
        env_steps, resume = self.env_steps(self.reached), self.resume_command()
        newest = files.newest_checkpoint(os.path.join(self.run_dirs[0], "checkpoints")) if self.run_dirs else None
        if saved:
            return f"stopped after {env_steps:,} env steps; checkpoint {saved}. Continue with: {resume}"
        if newest:
            return f"stopped after {env_steps:,} env steps without a new checkpoint; {resume} continues from {newest}"
        return f"stopped after {env_steps:,} env steps; no checkpoint was written (--no-checkpoint-on-stop), nothing to resume"

    def write_failed(self, error: files.WriteError) -> files.WriteError:
        """A write that failed, as its user reads it in one line: the file and the reason, and
        the newest complete checkpoint and the command that continues from it (process 0)."""
        if not self.lead:
            return error
        run_dir = self.run_dirs[0] if self.run_dirs else self.args.resume
        newest = files.newest_checkpoint(os.path.join(run_dir, "checkpoints")) if run_dir else None
        stopped = f"{error}; stopped after {self.env_steps(self.reached):,} env steps"
        if newest:
            message = f"{stopped}. Free space, then continue from {newest} with: {self.resume_command()}"
        else:
            message = f"{stopped}, with no checkpoint to continue from: free space and start the run again"
        return files.WriteError(error.errno, message)


def train_until(chunk_fn, carry, start: int, end: int, stop) -> tuple[Carry, ChunkStats, int, float]:
    """Training steps `start` to `end` through the compiled loop `chunk_fn(carry, num_steps)`,
    in calls of 1, 2, 4, ... steps (doubling while a call takes under a second, so that a stop
    request waits at most about two seconds), asking `stop.poll` after each call. Returns the
    carry, the summed stats, the training step reached (`end` unless a stop was requested)
    and the seconds spent."""
    total, step, num_steps, seconds = None, start, 1, 0.0
    while step < end:
        num_steps = min(num_steps, end - step)
        begin = time.perf_counter()
        carry, stats = chunk_fn(carry, np.int32(num_steps))
        stats = jax.device_get(stats)
        took = time.perf_counter() - begin
        seconds += took
        total = stats if total is None else jax.tree.map(np.add, total, stats)
        step += num_steps
        stopping, faster = stop.poll(faster=took < 1.0)
        if stopping:
            break
        num_steps = 2 * num_steps if faster else num_steps
    return carry, total, step, seconds


def cli(algorithm: Algorithm, run_main: Callable = main) -> None:
    """`python algorithms/<name>.py [flags]`: parse the flags with tyro and run `main` (or a
    copy of it, `run_main(algorithm, args)`, whose host loop a fork changed). Exit
    codes: 0 done; 2 a flag or file that cannot run, a run directory another process is
    writing, a file that could not be written (one paragraph on stderr; for a run, with the
    checkpoint and the command to continue from); 128 + the signal's number (143 SIGTERM, 130
    Ctrl-C) a run stopped by a signal after writing a checkpoint."""
    try:
        run_main(algorithm, tyro.cli(algorithm.Args))
    except Stopped as stopped:  # SIGTERM or Ctrl-C: checkpoint written, said how to resume
        print(f"\n{stopped}", flush=True)
        sys.exit(stopped.exit_code)
    except (ConfigError, BufferMemoryError, FloatingPointError, CheckpointError, files.WriteError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
