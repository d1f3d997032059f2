"""Saved models: what --save-model writes, what --eval-only evaluates, and `load_policy`, a saved
actor as a goal-commanded policy.

A model file (algorithms/run/files.py writes and checks it) holds an algorithm's
`model_of(train_state)`, the actor first, under a header with the run's flags and env steps;
the networks' shapes and the env are rebuilt from that header.
"""

from __future__ import annotations

import os
from dataclasses import asdict, replace

import jax
import jax.numpy as jnp

import envs
from algorithms.run import files
from algorithms.run.environment import make_env
from algorithms.run.files import CheckpointError
from algorithms.run.flags import RunArgs
from algorithms.run.logs import headline, make_logs, task_line
from algorithms.run.schedule import make_schedule


def load_model(algorithm, path: str, args: RunArgs | None = None):
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
    keep = (
        *("seed", "run_root", "exp_name", "backend", "episode_length", "num_eval_envs", "capture_video", "load_model"),
        *("eval_tasks", "eval_task_episodes"),
    )
    args = replace(saved, **{name: getattr(args, name) for name in keep}, num_seeds=1)
    env = make_env(args)
    init = algorithm.make_train(args, env, make_schedule(replace(args, eval_only=False, load_model=None), env))[0]
    like = jax.eval_shape(lambda key: algorithm.model_of(init(key).train_state), jax.random.PRNGKey(0))
    return files.load_tree(path, like), args, env, header


def load_policy(algorithm, path: str):
    """A model saved with --save-model as (act, env): act(state, goal) -> action is the
    deterministic policy, jitted, for one state or a batch, and env is the environment it was
    trained on (state = obs[..., :env.state_dim])."""
    (actor, *_), _, env, _ = load_model(algorithm, path)
    return goal_policy(actor.deterministic), env


def goal_policy(policy):
    """act(state, goal) -> action, jitted, for one state or a batch, from a policy of observations
    (the state part, then the goal, as the envs build them)."""

    @jax.jit
    def act(state, goal):
        obs = jnp.concatenate([jnp.asarray(state), jnp.asarray(goal, jnp.float32)], axis=-1)
        return policy(obs) if obs.ndim == 1 else jax.vmap(policy)(obs)

    return act


def evaluate_saved_model(algorithm, args: RunArgs) -> list[str]:
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
    print(f"{args.load_model} on {args.env_id}: " + ", ".join(f"{k} {v:.3f}" for k, v in headline(metrics).items()))
    if task_line(metrics):
        print(task_line(metrics))
    return run_logs.run_dirs


def save_models(algorithm, args: RunArgs, run_dirs: list[str], final, env_steps: int) -> None:
    """--save-model: each seed's `model_of(final)` as run_dir/{exp_name}.eqx (see load_policy),
    the leaves at that seed's index of their leading seed axis; a write that fails raises
    WriteError, and the run stops with exit code 2."""
    header = {"algorithm": algorithm.name, "kind": "model", "args": asdict(args), "env_steps": env_steps}
    models = algorithm.model_of(final)
    for k, run_dir in enumerate(run_dirs):
        path = os.path.join(run_dir, f"{args.exp_name}.eqx")
        files.save_tree(path, header, jax.tree.map(lambda x, k=k: x[k], models))
        print(f"model saved to {path}")
