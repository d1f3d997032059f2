"""A run's TensorBoard logs: one writer per seed (one run directory each), the scalars of every
chunk of training steps and every evaluation, and evaluation videos rendered in a thread while
training goes on.

    logs = Logs(run_dirs, video=record, video_every=5, last_eval=20)
    logs.hyperparameters(asdict(args), derived)          # a text table per seed
    logs.chunk(stats, sps, env_steps)                    # charts/* and losses/*
    success = logs.evaluation(metrics, rollout, env_steps, index)   # eval/*, videos
    logs.reopen()                                        # before a checkpoint: all on disk
    logs.close()
    progress(env_steps, total, sps, eta_s, success)      # one line on the terminal

`stats` and `metrics` carry a leading seed axis (see the algorithm files' `make_chunk`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jax
import numpy as np
from tensorboardX import SummaryWriter


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
        """Close the writers (their queue drains to disk) and open new event files; tensorboardX
        names them by the second, so a suffix keeps reopened writers apart."""
        self.close()
        suffix = f".{time.time_ns()}"
        self.writers = [SummaryWriter(d, purge_step=purge_step, filename_suffix=suffix) for d in self.run_dirs]

    def close(self) -> None:
        for job in self.videos:
            job.result()  # re-raises a rendering error
        self.videos = []
        for writer in self.writers:
            writer.close()

    def hyperparameters(self, args: dict[str, Any], derived: dict[str, Any]) -> None:
        """A table of the flags (with each seed's own "seed") and the derived sizes, per seed."""
        derived = {f"(derived) {name}": value for name, value in derived.items()}
        for k, writer in enumerate(self.writers):
            rows = {**args, "seed": args["seed"] + k, **derived}
            table = "\n".join(f"|{name}|{value}|" for name, value in rows.items())
            writer.add_text("hyperparameters", "|param|value|\n|-|-|\n" + table)

    def chunk(self, stats: dict, sps: float, env_steps: int) -> None:
        """charts/SPS, charts/episodic_return (episodes that ended in the chunk) and the mean of
        each losses/* over the chunk's gradient steps, per seed; stops on a non-finite loss."""
        for k, (writer, run_dir) in enumerate(zip(self.writers, self.run_dirs)):
            writer.add_scalar("charts/SPS", sps, env_steps)
            if stats["episodes"][k] > 0:
                writer.add_scalar("charts/episodic_return", stats["return_sum"][k] / stats["episodes"][k], env_steps)
            if stats["updated_steps"][k] == 0:
                continue
            losses = {name: float(v[k]) / stats["updated_steps"][k] for name, v in stats["losses"].items()}
            bad = [f"losses/{name}" for name, v in losses.items() if not np.isfinite(v)]
            if bad:
                self.close()
                raise FloatingPointError(
                    f"non-finite {', '.join(bad)} in {run_dir} in the training steps up to env step {env_steps}; "
                    "lower the learning rates or try --layer-norm."
                )
            for name, v in losses.items():
                writer.add_scalar(f"losses/{name}", v, env_steps)

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
                self.videos.append(self.executor.submit(self.video, writer, run_dir, one, env_steps))
        return {name: _finite_mean(v) for name, v in metrics.items()}


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
    print(line, end="" if sys.stdout.isatty() else "\n", flush=True)


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
        + ", ".join(f"{k} {v:.3f}" for k, v in success.items())
    )
