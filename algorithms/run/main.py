"""A run of any algorithm file: run directories, resume, seeds, devices, logging, checkpoints.

An algorithm file ends by describing itself and handing that to this module:

    ALGORITHM = run.Algorithm(name, Args, make_train, make_chunk, make_evaluate, model_of)
    if __name__ == "__main__":
        run.cli(ALGORITHM)            # parse the flags, train, exit 2 on a flag that cannot run

`main(algorithm, args)` trains (or with --eval-only evaluates) and returns the run directories;
`load_policy(algorithm, path)` loads a saved model as a goal-commanded policy. What an
algorithm must give:

* `Args`: a frozen dataclass extending `RunArgs` (algorithms/run/flags.py), with the schedule's
  flags and `updates_per_training_step(episode_length)`;
* `make_train(args, env, schedule, spread)` -> `(init, training_step, vec_env, buffer)`, where
  `init(key) -> Carry` and `training_step(carry) -> Step` (algorithms/run/schedule.py) and the
  carry's train state has `actor` (with `deterministic` and `sample`) and `grad_steps`;
  `spread(batch)` places a batch on the devices;
* `make_chunk(training_step)` -> `chunk(carry, num_steps) -> (carry, stats)`: the compiled loop
  over training steps, whose stats the logs read;
* `make_evaluate(args, env)` -> `evaluate(actor, key) -> (metrics, env 0's episode)`;
* `model_of(train_state)`: what --save-model writes (the actor first).

`main` is written to be read and, by the few who must change the outer loop, copied into an
algorithm file in place of the `run.main` call (README, "Anatomy of an algorithm file").
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import equinox as eqx
import jax
import numpy as np
import tyro

import envs
from algorithms.run import devices, files, logs
from algorithms.run.files import CheckpointError
from algorithms.run.flags import ConfigError, RunArgs, import_wandb, require, resumed_args
from algorithms.run.schedule import Schedule, derive_schedule, train_until
from algorithms.run.signals import Stopped, StopSignals, any_process
from buffers import BufferMemoryError, Transition


@dataclass(frozen=True)
class Algorithm:
    """What the harness needs of an algorithm file (see the module docstring)."""

    name: str
    Args: type
    make_train: Callable
    make_chunk: Callable
    make_evaluate: Callable
    model_of: Callable[[Any], Any]


def make_schedule(args: RunArgs, env) -> Schedule:
    """The run's flags checked and turned into sizes (algorithms/run/schedule.py) before
    anything compiles; the algorithm's flags are checked in its Args."""
    require(
        args.eval_only == (args.load_model is not None),
        "--eval-only and --load-model go together: --eval-only --load-model PATH evaluates a model.",
    )
    require(not args.track or args.num_seeds == 1, "--track logs one run per process: drop --track or --num-seeds.")
    if args.capture_video:
        try:
            envs.check_rendering()
        except envs.RenderingUnavailable as error:
            raise ConfigError(f"--capture-video: {error}") from None
    return derive_schedule(args, env.episode_length)


def make_env(args: RunArgs):
    try:
        return envs.make(args.env_id, backend=args.backend, episode_length=args.episode_length)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def load_model(algorithm: Algorithm, path: str, args: RunArgs | None = None):
    """(model, args, env, header) of a file written by --save-model. The networks' shapes and
    the env come from the file; `args` (default: the file's) sets the evaluation flags, and an
    --env-id in it other than the default must be the file's."""
    header = files.read_header(path, kind="model", algorithm=algorithm.name)
    saved = algorithm.Args(**header["args"])
    args = saved if args is None else args
    if args.env_id == algorithm.Args.__dataclass_fields__["env_id"].default:  # no --env-id: the file's
        args = replace(args, env_id=saved.env_id)
    if envs.ALIASES.get(args.env_id, args.env_id) != envs.ALIASES.get(saved.env_id, saved.env_id):
        raise CheckpointError(
            f"{path} holds a model trained on {saved.env_id}, not {args.env_id}: pass --env-id {saved.env_id}."
        )
    keep = ("seed", "run_root", "exp_name", "backend", "episode_length", "num_eval_envs", "capture_video", "load_model")
    args = replace(saved, **{name: getattr(args, name) for name in keep}, num_seeds=1)
    env = make_env(args)
    init = algorithm.make_train(args, env, make_schedule(replace(args, eval_only=False, load_model=None), env))[0]
    like = algorithm.model_of(jax.eval_shape(init, jax.random.PRNGKey(0)).train_state)
    return files.load_tree(path, like), args, env, header


def load_policy(algorithm: Algorithm, path: str):
    """A model saved with --save-model as (act, env): act(state, goal) -> action is the
    deterministic policy, jitted, for one state or a batch, and env is the environment it was
    trained on (state = obs[..., :env.state_dim])."""
    (actor, *_), _, env, _ = load_model(algorithm, path)
    return files.goal_policy(actor.deterministic), env


def make_logs(args: RunArgs, env, run_dirs: list[str], purge_step: int | None = None) -> logs.Logs:
    """TensorBoard writers for the run's seeds (algorithms/run/logs.py), with videos of
    evaluation episodes every --video-every evaluations and at the last when --capture-video is on."""
    video = envs.episode_video(env) if args.capture_video else None
    return logs.Logs(run_dirs, purge_step, video, args.video_every, last_eval=args.num_evals)


def evaluate_model(algorithm: Algorithm, args: RunArgs) -> list[str]:
    """--eval-only: num_eval_envs episodes of a saved model, logged as eval/* at its env steps."""
    model, args, env, header = load_model(algorithm, args.load_model, args)
    evaluate = jax.jit(jax.vmap(algorithm.make_evaluate(args, env)))
    metrics, rollout = evaluate(jax.tree.map(lambda x: x[None], model[0]), jax.random.PRNGKey(args.seed)[None])
    run_dirs = files.make_run_dirs(args, algorithm.name)
    try:
        for run_dir in run_dirs:
            files.lock_run_dir(run_dir)
        run_logs = make_logs(args, env, run_dirs)
        metrics = run_logs.evaluation(metrics, rollout, header["env_steps"], index=0)
        run_logs.close()
    finally:
        files.unlock_run_dirs()
    print(f"{args.load_model} on {args.env_id}: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
    return run_logs.run_dirs


def start_or_resume(algorithm: Algorithm, args: RunArgs, init, keys, shardings, lead: bool):
    """(run directories, carry, first training step, training seconds so far): a fresh run, or
    the newest checkpoint of --resume. The first process holds each run directory's lock
    (files.lock_run_dir) from here to its end: a second writer stops with RunInUse."""
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
        return run_dirs, jax.jit(init, out_shardings=shardings)(keys), 0, 0.0
    names = files.read_run(args.resume, algorithm.name)[0]["run_names"] if lead else []
    run_dirs = [os.path.join(os.path.dirname(args.resume), name) for name in names]
    for run_dir in run_dirs:  # before anything is read: another process may be writing them
        files.lock_run_dir(run_dir)
    try:
        like = jax.eval_shape(init, keys)
        folder = os.path.join(args.resume, "checkpoints")
        carry, header = files.load_checkpoint(folder, like, algorithm=algorithm.name)
    except CheckpointError as error:
        raise CheckpointError(f"--resume {args.resume}: {error} (written with --checkpoint-every).") from None
    carry = jax.device_put(jax.tree.map(np.asarray, carry), shardings)  # host values: any process count
    print(f"resuming {args.resume} after {header['step'] * args.num_envs * args.unroll_length:,} env steps")
    return run_dirs, carry, header["step"], header["train_time"]


def save_models(algorithm: Algorithm, args: RunArgs, run_dirs: list[str], final, env_steps: int) -> None:
    """--save-model: each seed's networks as run_dir/{exp_name}.eqx (see load_policy); a write
    that fails raises WriteError, and `main` stops the run with exit code 2."""
    header = {"algorithm": algorithm.name, "kind": "model", "args": asdict(args), "env_steps": env_steps}
    paths = files.save_models(run_dirs, f"{args.exp_name}.eqx", header, algorithm.model_of(final))
    for path in paths:
        print(f"model saved to {path}")


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


def write_failed_message(
    algorithm: Algorithm, args: RunArgs, run_dirs: list[str], env_steps: int, error: files.WriteError
) -> str:
    """What a run stopped by a write that failed tells its user, in one line: the file and the
    reason, and the newest complete checkpoint and the command that continues from it."""
    script = os.path.relpath(sys.modules[algorithm.make_train.__module__].__file__)
    run_dir = run_dirs[0] if run_dirs else args.resume
    newest = files.newest_checkpoint(os.path.join(run_dir, "checkpoints")) if run_dir else None
    stopped = f"{error}; stopped after {env_steps:,} env steps"
    if newest:
        return f"{stopped}. Free space, then continue from {newest} with: python {script} --resume {run_dir}"
    return f"{stopped}, with no checkpoint to continue from: free space and start the run again"


def stopped_message(algorithm: Algorithm, args: RunArgs, run_dirs: list[str], env_steps: int, saved) -> str:
    """What a run stopped by a signal tells its user: what was saved and how to continue."""
    script = os.path.relpath(sys.modules[algorithm.make_train.__module__].__file__)
    resume = f"python {script} --resume {run_dirs[0] if run_dirs else args.resume}"
    newest = files.newest_checkpoint(os.path.join(run_dirs[0], "checkpoints")) if run_dirs else None
    if saved:
        return f"stopped after {env_steps:,} env steps; checkpoint {saved}. Continue with: {resume}"
    if newest:
        return f"stopped after {env_steps:,} env steps without a new checkpoint; {resume} continues from {newest}"
    return (
        f"stopped after {env_steps:,} env steps; no checkpoint was written (--no-checkpoint-on-stop), nothing to resume"
    )


def main(algorithm: Algorithm, args: RunArgs) -> list[str]:
    """Train (or with --eval-only evaluate) and return the run directories (in a multi-host
    run, the first process writes them and returns them; the others return [])."""
    if args.distributed and not args.eval_only:
        devices.start_distributed(args.distributed)
    args = resumed_args(args, algorithm.name) if args.resume is not None else args
    env = make_env(args)  # before anything starts JAX: an arm or pusher turns off XLA's fusion emitters
    schedule = make_schedule(args, env)
    if args.eval_only:
        return evaluate_model(algorithm, args)
    mesh = devices.make_mesh(args.num_devices, args.num_envs, args.batch_size)
    lead = jax.process_index() == 0
    wandb = import_wandb() if args.track else None

    # every function takes a leading seed axis
    init, training_step, vec_env, buffer = algorithm.make_train(args, env, schedule, devices.spread_over(mesh))
    example = Transition.example(env.observation_size, env.action_size)
    buffer.check_memory(example, copies=args.num_seeds, devices=mesh.size if mesh else 1)
    init = devices.seed_axis(init, args.num_seeds)
    evaluate = devices.seed_axis(algorithm.make_evaluate(args, env), args.num_seeds)
    chunk = devices.seed_axis(algorithm.make_chunk(training_step), args.num_seeds, in_axes=(0, None))
    # host arrays (numpy): a multi-host run needs every process to pass the same value
    keys = np.stack([jax.random.split(jax.random.PRNGKey(args.seed + k)) for k in range(args.num_seeds)])
    init_keys, eval_keys = keys[:, 0], keys[:, 1]
    shardings = devices.carry_shardings(mesh, jax.eval_shape(init, init_keys), vec_env, buffer)
    per_step = schedule.steps_per_training_step

    run_dirs, carry, start, train_time = start_or_resume(algorithm, args, init, init_keys, shardings, lead)
    reached = start  # training steps done
    writes = Writes()  # process 0's; one that fails stops the run (docs/research_runs.md, "A full disk")
    try:  # the locks are freed at the end
        if args.track and lead:
            wandb.init(project=args.wandb_project_name, sync_tensorboard=True, config=asdict(args), name=run_dirs[0])
        run_logs = make_logs(args, env, run_dirs, purge_step=start * per_step + 1 if start else None)
        if not start:
            derived = {k: v for k, v in asdict(schedule).items() if "boundaries" not in k}
            writes.do(run_logs.hyperparameters, asdict(args), derived)
        writes.agree()
        if lead:
            print("run directory: " + ", ".join(run_dirs) + (f" ({mesh.size} devices)" if mesh else ""))

        # SIGTERM, Ctrl-C: from here on, stop after a training step (algorithms/run/signals.py)
        with StopSignals() as stop:
            compile_start = time.perf_counter()
            replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()) if mesh else None
            chunk = eqx.debug.assert_max_traces(chunk, max_traces=1)  # the training loop is compiled once
            chunk_fn = jax.jit(chunk, donate_argnums=0, out_shardings=(shardings, replicated))
            chunk_fn = chunk_fn.lower(carry, np.int32(0)).compile()

            def evaluate_at(actor, keys, index):
                return evaluate(actor, jax.vmap(jax.random.fold_in, (0, None))(keys, index))

            eval_fn = jax.jit(evaluate_at).lower(carry.train_state.actor, eval_keys, np.int32(0)).compile()
            print(f"compiled training chunk and evaluation in {time.perf_counter() - compile_start:.1f} s", flush=True)

            def evaluation(index: int, env_steps: int) -> dict:
                metrics, episode = eval_fn(carry.train_state.actor, eval_keys, np.int32(index))
                return writes.do(run_logs.evaluation, metrics, episode, env_steps, index) or {}

            def checkpoint(step: int) -> str | None:
                """The whole carry after `step` training steps, its logs on disk first (a
                checkpoint never skips logs: resuming from it re-logs everything after it)."""
                writes.do(run_logs.reopen)
                header = {"algorithm": algorithm.name, "kind": "checkpoint", "train_time": train_time}
                snapshot = devices.fetch(carry)
                if not lead:
                    return None
                folder = os.path.join(run_dirs[0], "checkpoints")
                return writes.do(files.save_checkpoint, folder, step, header, snapshot)

            loop_start = time.perf_counter()
            success = evaluation(0, 0) if not start else {}
            writes.agree()
            evals = {boundary: i for i, boundary in enumerate(schedule.eval_boundaries)}
            boundaries = sorted(set(schedule.eval_boundaries) | set(schedule.checkpoint_boundaries))
            for lo, hi in [(max(lo, start), hi) for lo, hi in zip(boundaries, boundaries[1:]) if hi > start]:
                carry, stats, reached, seconds = train_until(chunk_fn, carry, lo, hi, stop)
                train_time += seconds
                writes.do(run_logs.chunk, stats, (reached - lo) * per_step / seconds, reached * per_step)
                if reached < hi:
                    saved = checkpoint(reached) if args.checkpoint_on_stop else None
                    writes.do(run_logs.close)
                    writes.agree()
                    raise Stopped(stop.exit_code, stopped_message(algorithm, args, run_dirs, reached * per_step, saved))
                if hi in evals:
                    success = evaluation(evals[hi], hi * per_step)
                if hi in schedule.checkpoint_boundaries:
                    checkpoint(hi)
                writes.agree()
                if lead:
                    eta = (schedule.training_steps - hi) * train_time / (hi - start)
                    sps = (hi - start) * per_step / train_time
                    logs.progress(hi * per_step, schedule.final_env_steps, sps, eta, success)
        print(f"\n{args.resume} had already finished" if start == schedule.training_steps else "")
        final = jax.device_get(carry.train_state)  # networks and counters (replicated over the devices)
        grad_steps = int(final.grad_steps[0])
        steps = schedule.final_env_steps
        print(logs.summary(steps, args.total_timesteps, args.num_seeds, grad_steps, train_time, success))
        writes.do(run_logs.close)
        if args.save_model:
            writes.do(save_models, algorithm, args, run_dirs, final, schedule.final_env_steps)
        writes.agree()
    except files.WriteError as error:  # on every process: no file is retried, no new checkpoint written
        if not lead:
            raise
        message = write_failed_message(algorithm, args, run_dirs, reached * per_step, error)
        raise files.WriteError(error.errno, message) from None
    finally:
        files.unlock_run_dirs()
    print(f"training loop: {time.perf_counter() - loop_start:.1f} s wall (training, evaluations, checkpoints, videos)")
    return run_dirs


def cli(algorithm: Algorithm) -> None:
    """`python algorithms/<name>.py [flags]`: parse the flags with tyro and run `main`. Exit
    codes: 0 done; 2 a flag or file that cannot run, a run directory another process is
    writing, a file that could not be written (one paragraph on stderr; for a run, with the
    checkpoint and the command to continue from); 128 + the signal's number (143 SIGTERM, 130
    Ctrl-C) a run stopped by a signal after writing a checkpoint."""
    try:
        main(algorithm, tyro.cli(algorithm.Args))
    except Stopped as stopped:  # SIGTERM or Ctrl-C: checkpoint written, said how to resume
        print(f"\n{stopped}", flush=True)
        sys.exit(stopped.exit_code)
    except (ConfigError, BufferMemoryError, FloatingPointError, CheckpointError, files.WriteError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
