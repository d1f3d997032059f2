"""The run's flags, shared by every algorithm, and the error a flag that cannot run raises.

Each algorithm file's `Args` extends `RunArgs` through the schedule's flags
(`ScheduleArgs`, algorithms/run/contract.py) with its own (learning rates, network sizes, loss
options), so `python algorithms/crl_infonce.py --help` lists first these (the run, the
environment, the budget), then the schedule's, then the algorithm's. The run's and the
schedule's flags are checked in `make_schedule` (algorithms/run/schedule.py) and `make_mesh`
(algorithms/run/devices.py), the algorithm's in its `Args.__post_init__`, with `require`; a
`ConfigError` stops a run with exit code 2 and its one-paragraph message, before anything
compiles.
"""

from __future__ import annotations

from dataclasses import dataclass


class ConfigError(ValueError):
    """A flag combination that cannot run; the message names the flags to change."""


def require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def require_network_sizes(args, widths: tuple[str, ...] = ("width",)) -> None:
    """The network flags every algorithm's Args has: each of `widths` at least 1, and --depth,
    --critic-depth, --actor-depth at least 1 (None: --depth), multiples of 4 with --residual."""
    for name in widths:
        value = getattr(args, name)
        require(value >= 1, f"--{name.replace('_', '-')} must be at least 1 (got {value}).")
    for name in ("depth", "critic_depth", "actor_depth"):
        value, flag = getattr(args, name), f"--{name.replace('_', '-')}"
        require(value is None or value >= 1, f"{flag} must be at least 1 (got {value}).")
        four = value is None or value % 4 == 0
        require(not args.residual or four, f"{flag} must be a multiple of 4 with --residual (got {value}).")


@dataclass(frozen=True)
class RunArgs:
    """The run's flags: seeds, logging, checkpoints, devices, the environment and the budget."""

    exp_name: str = "run"
    """the name of this experiment (part of the run directory's name); each algorithm's default is its file's name"""
    seed: int = 1
    """seed of the experiment"""
    track: bool = False
    """also log to Weights & Biases (needs `pip install wandb` and a login)"""
    wandb_project_name: str = "gcrl-jax"
    """the Weights & Biases project, with --track"""
    capture_video: bool = False
    """log evaluation episodes as animated images (TensorBoard tag videos/eval) and GIFs in the run directory"""
    video_every: int = 5
    """with --capture-video: record every N-th evaluation and the last one"""
    save_model: bool = False
    """save the final model into the run directory as {exp_name}.eqx (see load_policy)"""
    checkpoint_every: int = 0
    """write the whole training state every N env steps (rounded up to training steps; 0: never); keeps two"""
    checkpoint_on_stop: bool = True
    """on SIGTERM or SIGINT (Ctrl-C), finish the training step, write a checkpoint and exit 128 + the signal's number; --no-checkpoint-on-stop exits without one"""
    resume: str | None = None
    """continue the run in this run directory from its newest checkpoint; its other flags come from the run"""
    eval_only: bool = False
    """evaluate the model of --load-model (num_eval_envs episodes) and stop"""
    load_model: str | None = None
    """a model file written by --save-model, for --eval-only"""
    num_seeds: int = 1
    """train seeds seed, seed+1, ..., seed+K-1 through one compile (vmap), one run directory each"""
    num_devices: int | None = None
    """devices to split the envs and the buffer over, gradients averaged (default: all visible)"""
    distributed: str | None = None
    """multi-host: "auto" (cluster detected by jax.distributed) or HOST:PORT,NUM_PROCESSES,PROCESS_ID"""
    run_root: str = "runs"
    """directory that holds the run directories"""

    # Environment
    env_id: str = "reacher"
    """environment id (see envs.ENV_IDS)"""
    backend: str | None = None
    """physics backend (generalized, spring, positional, mjx); default: the env's own"""
    episode_length: int | None = None
    """steps per episode; default: the env's own"""
    maze_start: str = "fixed"
    """mazes: where every episode starts: fixed (the start cell, JaxGCRL's) or anywhere (a free cell drawn uniformly; the named tasks are unchanged)"""
    num_envs: int = 256
    """parallel training envs"""
    num_eval_envs: int = 128
    """evaluation episodes per evaluation, one per env, deterministic and sampled actions"""
    eval_tasks: bool = True
    """every evaluation also runs the env's five named tasks (docs/environments.md), logged as eval/tasks/*"""
    eval_task_episodes: int = 8
    """with --eval-tasks: episodes of each task per evaluation, in each mode (deterministic and sampled)"""
    fixed_goals: bool = False
    """each training env keeps its first start and goal for the whole run, as JaxGCRL's training envs do (evaluations always draw fresh ones)"""

    # Budget (the algorithm's schedule, how env steps and gradient steps interleave, is in its Args)
    total_timesteps: int = 1_000_000
    """env steps to train for (rounded up to whole training steps of num_envs x unroll_length)"""
    num_evals: int = 20
    """evaluations during training (plus one before it)"""
