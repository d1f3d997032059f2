"""A run's TensorBoard logs: one writer per seed (one run directory each), the scalars of every
chunk of training steps and every evaluation, and evaluation videos rendered in a thread while
training goes on.

    logs = make_logs(args, env, run_dirs)                # or Logs(run_dirs, purge_step, video, video_every, last_eval)
    logs.hyperparameters(asdict(args), derived)          # a text table per seed
    logs.chunk(stats, sps, env_steps)                    # charts/* and losses/*
    success = logs.evaluation(metrics, rollout, env_steps, index)   # eval/*, videos
    logs.reopen()                                        # before a checkpoint: all on disk
    logs.close()
    progress(env_steps, total, sps, eta_s, success)      # one line on the terminal

`stats` (a `ChunkStats`, algorithms/run/contract.py) and `metrics` carry a leading seed axis.

The event files are written in the caller's thread, not tensorboardX's writer thread: a write
that fails there (a full disk, a read-only file system) would end that thread with a traceback
and leave the next log call waiting on its full queue forever, and its exit handler prints
another. Here every call that logs also writes what it logged, and the first write that fails
raises `WriteError` naming the file; the file is cut back to its last complete record (or
removed if it holds none), so TensorBoard reads all of it. A video whose GIF cannot be written
does the same, and leaves no partial GIF.
"""

from __future__ import annotations

import glob
import os
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jax
import numpy as np
from tensorboardX import SummaryWriter
from tensorboardX.event_file_writer import EventFileWriter
from tensorboardX.proto.event_pb2 import Event, SessionLog
from tensorboardX.record_writer import masked_crc32c
from tensorboardX.writer import FileWriter

import envs
from algorithms.run.contract import ChunkStats
from algorithms.run.files import WriteError, remove_quietly, write_error
from algorithms.run.flags import ConfigError


class EventFile(EventFileWriter):
    """One TensorBoard event file, written by `flush` in the calling thread (in place of
    tensorboardX's EventFileWriter and its thread, whose methods it all replaces). `error`: the
    WriteError of the first write that failed; from then on nothing more is written and the
    file holds only whole records."""

    def __init__(self, logdir: str, filename_suffix: str = ""):
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}{filename_suffix}"
        self.logdir, self.path = logdir, os.path.join(logdir, name)
        self.lock = threading.Lock()  # videos log from their own thread
        self.pending: list[bytes] = []
        self.fd: int | None = None
        self.written = 0  # bytes of whole records in the file
        self.error: WriteError | None = None
        self.add_event(Event(wall_time=time.time(), file_version="brain.Event:2"))

    def get_logdir(self) -> str:
        return self.logdir

    def add_event(self, event) -> None:
        data = event.SerializeToString()
        header = struct.pack("Q", len(data))
        record = header + struct.pack("I", masked_crc32c(header)) + data + struct.pack("I", masked_crc32c(data))
        with self.lock:
            self.pending.append(record)

    def flush(self, sync: bool = False) -> None:
        """Write what was logged since the last call (and with `sync`, to the device)."""
        with self.lock:
            data, self.pending = b"".join(self.pending), []
            if self.error is not None or (not data and not sync):
                return
            try:
                if self.fd is None:
                    self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                view = memoryview(data)
                while view:
                    view = view[os.write(self.fd, view) :]
                if sync:
                    os.fsync(self.fd)
                self.written += len(data)
            except OSError as error:
                self.error = write_error(self.path, error)
                self._cut_back()

    def _cut_back(self) -> None:
        """After a failed write: keep the whole records, or no file if there are none."""
        if self.fd is not None:
            try:
                os.ftruncate(self.fd, self.written)
            except OSError:
                pass
            os.close(self.fd)
            self.fd = None
        if self.written == 0:
            remove_quietly(self.path)

    def close(self) -> None:
        self.flush(sync=True)
        with self.lock:
            if self.fd is not None:
                os.close(self.fd)
                self.fd = None


def event_file(logdir: str, filename_suffix: str) -> EventFile:
    """An `EventFile`, through whatever replaced tensorboardX.writer.EventFileWriter: Weights &
    Biases' sync_tensorboard (--track) subclasses it to hear of every new log directory, and
    its __init__ then reaches EventFile's, which comes before tensorboardX's in the order of
    bases (Python's C3 linearisation), so no writer thread starts."""
    import tensorboardX.writer

    patched = tensorboardX.writer.EventFileWriter
    if patched is EventFileWriter or not issubclass(patched, EventFileWriter):
        return EventFile(logdir, filename_suffix)
    return type("EventFile", (patched, EventFile), {})(logdir, filename_suffix)


class _FileWriter(FileWriter):
    """tensorboardX's FileWriter over an `EventFile` (its own constructor starts a thread)."""

    def __init__(self, logdir: str, filename_suffix: str = ""):
        self.event_writer = event_file(str(logdir), filename_suffix)
        self._default_metadata = {}


class Writer(SummaryWriter):
    """tensorboardX's SummaryWriter (every add_* works) whose event file is an `EventFile`."""

    def _get_file_writer(self):
        if self.all_writers is None or self.file_writer is None:
            self.file_writer = _FileWriter(self.logdir, self._filename_suffix)
            if self.purge_step is not None:  # as tensorboardX does: TensorBoard hides later steps
                self.file_writer.add_event(Event(step=self.purge_step, file_version="brain.Event:2"))
                start = SessionLog(status=SessionLog.START)
                self.file_writer.add_event(Event(step=self.purge_step, session_log=start))
            self.all_writers = {self.file_writer.get_logdir(): self.file_writer}
        return self.file_writer

    @property
    def error(self) -> WriteError | None:
        return self.file_writer.event_writer.error if self.file_writer is not None else None


class Logs:
    """`video(writer, run_dir, rollout, env_steps)` renders and writes one episode; it runs for
    evaluation indices that are multiples of `video_every`, and for `last_eval`. `purge_step`:
    TensorBoard hides what a killed run logged from that step on."""

    def __init__(
        self,
        run_dirs: list[str],
        purge_step: int | None = None,
        video: Callable[..., None] | None = None,
        video_every: int = 5,
        last_eval: int | None = None,
    ):
        self.run_dirs, self.video, self.video_every, self.last_eval = run_dirs, video, video_every, last_eval
        self.executor = ThreadPoolExecutor(max_workers=1)
        self.videos, self.writers = [], []
        self.reopen(purge_step)

    def reopen(self, purge_step: int | None = None) -> None:
        """Close the writers (all they logged on disk) and open new event files; tensorboardX
        names them by the second, so a suffix keeps reopened writers apart."""
        self.close()
        suffix = f".{time.time_ns()}"
        self.writers = [Writer(d, purge_step=purge_step, filename_suffix=suffix) for d in self.run_dirs]

    def close(self) -> None:
        """Wait for the videos, write and close the event files; WriteError if a write failed."""
        for job in self.videos:
            job.exception()  # wait: a failure is raised by `check` below, after the files are closed
        event_files = [writer.file_writer.event_writer for writer in self.writers if writer.file_writer is not None]
        for writer in self.writers:
            writer.close()
        self.writers = []
        self.check([event_file.error for event_file in event_files])

    def flush(self) -> None:
        """Write what was logged; WriteError if that, or a finished video, failed."""
        for writer in self.writers:
            writer.flush()
        self.check([writer.error for writer in self.writers])

    def check(self, errors: list) -> None:
        """Raise the error of a finished video job, or the first of `errors` that is not None."""
        done = [job for job in self.videos if job.done()]
        self.videos = [job for job in self.videos if not job.done()]
        for job in done:
            job.result()  # re-raises a rendering error or the WriteError of its GIF
        for error in errors:
            if error is not None:
                raise error

    def _video(self, writer, run_dir: str, rollout: Any, env_steps: int) -> None:
        """`self.video`, with a GIF that cannot be written as a WriteError and no partial file."""
        try:
            self.video(writer, run_dir, rollout, env_steps)
        except Exception as error:
            partial = glob.glob(os.path.join(glob.escape(run_dir), "videos", "*.tmp.gif"))
            for path in partial:
                remove_quietly(path)
            if isinstance(error, WriteError) or not isinstance(error, OSError):
                raise
            path = error.filename or (partial[0] if partial else os.path.join(run_dir, "videos"))
            raise write_error(str(path).removesuffix(".tmp.gif"), error) from None

    def hyperparameters(self, args: dict[str, Any], derived: dict[str, Any]) -> None:
        """A table of the flags (with each seed's own "seed") and the derived sizes, per seed."""
        derived = {f"(derived) {name}": value for name, value in derived.items()}
        for k, writer in enumerate(self.writers):
            rows = {**args, "seed": args["seed"] + k, **derived}
            table = "\n".join(f"|{name}|{value}|" for name, value in rows.items())
            writer.add_text("hyperparameters", "|param|value|\n|-|-|\n" + table)
        self.flush()

    def chunk(self, stats: ChunkStats, sps: float, env_steps: int) -> None:
        """charts/SPS, charts/episodic_return (episodes that ended in the chunk) and the mean of
        each losses/* over the chunk's gradient steps, per seed; stops on a non-finite loss."""
        for k, (writer, run_dir) in enumerate(zip(self.writers, self.run_dirs)):
            writer.add_scalar("charts/SPS", sps, env_steps)
            if stats.episodes[k] > 0:
                writer.add_scalar("charts/episodic_return", stats.return_sum[k] / stats.episodes[k], env_steps)
            if stats.updated_steps[k] == 0:
                continue
            try:
                losses = stats.mean_losses(k, f"in {run_dir} in the training steps up to env step {env_steps}")
            except FloatingPointError:
                self.close()
                raise
            for name, v in losses.items():
                writer.add_scalar(f"losses/{name}", v, env_steps)
        self.flush()

    def evaluation(self, metrics: dict, rollout: Any, env_steps: int, index: int) -> dict[str, float]:
        """eval/* per seed, and each seed's video of the evaluation `index` when one is due;
        returns the means over seeds."""
        metrics = jax.device_get(metrics)
        for k, writer in enumerate(self.writers):
            for name, v in metrics.items():
                if np.isfinite(v[k]):  # steps_to_success is NaN when no episode got there
                    writer.add_scalar(f"eval/{name}", float(v[k]), env_steps)
        if self.video is not None and (index % self.video_every == 0 or index == self.last_eval):
            rollout = jax.device_get(rollout)
            for k, (writer, run_dir) in enumerate(zip(self.writers, self.run_dirs)):
                one = jax.tree.map(lambda x, k=k: x[k], rollout)
                self.videos.append(self.executor.submit(self._video, writer, run_dir, one, env_steps))
        self.flush()
        return {name: _finite_mean(v) for name, v in metrics.items()}


def import_wandb():
    """Weights & Biases for --track, or a ConfigError that says how to install it."""
    try:
        import wandb
    except ImportError:
        raise ConfigError("--track needs Weights & Biases: `pip install wandb` and `wandb login`.") from None
    return wandb


def make_logs(args, env, run_dirs: list[str], purge_step: int | None = None) -> Logs:
    """The writers of a run's seeds, with videos of evaluation episodes every --video-every
    evaluations and at the last when --capture-video is on."""
    video = envs.episode_video(env) if args.capture_video else None
    return Logs(run_dirs, purge_step, video, args.video_every, last_eval=args.num_evals)


def _finite_mean(values) -> float:
    """The mean of the finite values (NaN when there are none)."""
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def progress(env_steps: int, total: int, sps: float, eta_s: float, success: dict) -> None:
    """The progress line: rewritten in place on a terminal, one line per call in a log file."""
    eta = time.strftime("%H:%M:%S", time.gmtime(eta_s))
    line = f"\r{env_steps:>12,}/{total:,} env steps | {sps:>9,.0f} SPS | ETA {eta}"
    line += f" | eval success {success['success_rate']:.3f}" if success else ""
    line += f" (sampled {success['sampled_success_rate']:.3f})" if "sampled_success_rate" in success else ""
    line += f" | tasks {success['tasks/overall_success']:.3f}" if "tasks/overall_success" in success else ""
    print(line, end="" if sys.stdout.isatty() else "\n", flush=True)


def headline(metrics: dict) -> dict:
    """The metrics without the per-task ones (eval/tasks/task{k}_*, kept for `task_line`)."""
    return {k: v for k, v in metrics.items() if not k.startswith(("tasks/task", "tasks/sampled_task"))}


def task_line(metrics: dict) -> str:
    """Each named task's success and their mean, deterministic (and sampled) actions; empty
    without task metrics."""
    lines = []
    for mode in ("", "sampled_"):
        tasks = sorted(k for k in metrics if k.startswith(f"tasks/{mode}task") and k.endswith("_success"))
        if tasks:
            each = ", ".join(f"{k[len(f'tasks/{mode}') : -len('_success')]} {metrics[k]:.3f}" for k in tasks)
            name = "sampled actions" if mode else "deterministic actions"
            lines.append(f"tasks, {name}: {each}; overall {metrics[f'tasks/{mode}overall_success']:.3f}")
    return "\n".join(lines)


def summary(
    env_steps: int, total_timesteps: int, num_seeds: int, grad_steps: int, train_s: float, success: dict
) -> str:
    """The last line of a run: its env steps against --total-timesteps, gradient steps, SPS and
    the final evaluation (mean over seeds)."""
    over = env_steps - total_timesteps
    exact = (
        "exactly --total-timesteps" if not over else f"--total-timesteps + {over:,} to finish the last training step"
    )
    return (
        f"trained {env_steps:,} env steps ({exact}) x {num_seeds} seed(s), {grad_steps:,} gradient steps each, "
        f"{env_steps / max(train_s, 1e-9):,.0f} SPS per seed; final eval (mean over seeds): "
        + ", ".join(f"{k} {v:.3f}" for k, v in headline(success).items())
    )
