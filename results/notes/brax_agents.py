"""brax's own PPO on our envs with the dense reward, evaluated as our algorithms are evaluated.

    python results/notes/brax_agents.py --env-id reacher --total-timesteps 3000000 --episode-length 50
    python results/notes/brax_agents.py --env-id simple_u_maze --total-timesteps 640000 --episode-length 200

This is JaxGCRL's PPO baseline (a dense reward, -dist at every step) done with brax's own agent:
`brax.training.agents.ppo.train` on `envs.make(env_id, dense_reward=True)`, with JaxGCRL's PPO
defaults (its `agents/ppo/ppo.py`: learning rate 1e-4, entropy cost 1e-4, discount 0.9, unroll
10, batch 32 x 16 minibatches, 2 updates per batch, clipping 0.3, GAE lambda 0.95, no
observation normalisation) and `--num-envs` envs. At each of brax's `--num-evals` evaluations
the policy is also run through our `VecEnv.evaluate` (`--num-eval-envs` random goals and
`--task-episodes` episodes of each named task, with PPO's mean action and with sampled
actions), so its success rate, time at goal and task success read as crl_infonce's do (those
count success, not the dense reward). Prints one row per evaluation; `--output` also writes it.

brax 0.14.2's agents call `jax.device_put_replicated`, which jax 0.10 removed; the script puts
it back (docs/environments.md, "Using the envs with brax's agents").
"""

from __future__ import annotations

import os
import pathlib
import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

import envs


@dataclass(frozen=True)
class Args:
    env_id: str = "reacher"
    """environment id"""
    total_timesteps: int = 3_000_000
    """env steps of PPO's training"""
    episode_length: int | None = None
    """episode length for training and evaluation (default: the env's)"""
    num_envs: int = 256
    """parallel training envs"""
    learning_rate: float = 1e-4
    """JaxGCRL's PPO default"""
    entropy_cost: float = 1e-4
    """JaxGCRL's PPO default"""
    discounting: float = 0.9
    """JaxGCRL's PPO default"""
    unroll_length: int = 10
    """JaxGCRL's PPO default"""
    batch_size: int = 32
    """JaxGCRL's PPO default"""
    num_minibatches: int = 16
    """JaxGCRL's PPO default"""
    num_updates_per_batch: int = 2
    """JaxGCRL's PPO default"""
    clipping_epsilon: float = 0.3
    """JaxGCRL's PPO default"""
    num_evals: int = 6
    """evaluations, the first before training"""
    num_eval_envs: int = 256
    """random-goal episodes per evaluation and mode"""
    task_episodes: int = 16
    """episodes of each named task per evaluation and mode"""
    seed: int = 1
    """seed of PPO and of the evaluations"""
    output: str = ""
    """also write the table to this file"""


def device_put_replicated(tree, devices):
    """jax.device_put_replicated for jax >= 0.10: one copy of each leaf per device along a new
    leading axis, spread over those devices."""
    mesh = jax.sharding.Mesh(np.array(devices), ("devices",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("devices"))
    return jax.tree.map(lambda x: jax.device_put(jnp.stack([x] * len(devices)), sharding), tree)


def main(args: Args) -> str:
    from brax.training.agents.ppo import train as ppo

    if not hasattr(jax, "device_put_replicated"):
        jax.device_put_replicated = device_put_replicated
    lengths = {} if args.episode_length is None else {"episode_length": args.episode_length}
    env = envs.make(args.env_id, dense_reward=True, **lengths)
    vec = envs.VecEnv(envs.make(args.env_id, **lengths), args.num_eval_envs)  # sparse: success counts
    evaluate, ours, brax_reward, started = {}, {}, {}, time.time()

    def our_evaluation(step, make_policy, params):
        """brax calls this with the policy at each evaluation (before training too)."""
        if "fn" not in evaluate:

            def run(params, key):
                mean, sample = make_policy(params, deterministic=True), make_policy(params, deterministic=False)
                policy = lambda obs: mean(obs, key)[0]  # noqa: E731
                sampled = lambda obs, k: sample(obs, k)[0]  # noqa: E731
                return vec.evaluate(policy, key, sampled, task_episodes=args.task_episodes)[0]

            evaluate["fn"] = jax.jit(run)
        metrics = evaluate["fn"](params, jax.random.PRNGKey(args.seed + 1000 * len(ours)))
        ours[int(step)] = dict(wall=time.time() - started, **{k: float(v) for k, v in metrics.items()})
        print(f"{int(step):,} env steps: success {ours[int(step)]['success_rate']:.3f}", flush=True)

    def progress(step, metrics):
        brax_reward[int(step)] = float(metrics.get("eval/episode_reward", np.nan))

    ppo.train(
        environment=env,
        num_timesteps=args.total_timesteps,
        episode_length=env.episode_length,
        num_envs=args.num_envs,
        learning_rate=args.learning_rate,
        entropy_cost=args.entropy_cost,
        discounting=args.discounting,
        unroll_length=args.unroll_length,
        batch_size=args.batch_size,
        num_minibatches=args.num_minibatches,
        num_updates_per_batch=args.num_updates_per_batch,
        clipping_epsilon=args.clipping_epsilon,
        num_evals=args.num_evals,
        num_eval_envs=args.num_eval_envs,
        seed=args.seed,
        policy_params_fn=our_evaluation,
        progress_fn=progress,
    )
    lines = [
        f"brax PPO on `{args.env_id}`, dense reward, episode {env.episode_length} steps, {args.num_envs} envs, "
        f"seed {args.seed}; {jax.default_backend()}",
        "",
        "| env steps | wall s | success | sampled success | time at goal | sampled time at goal | "
        "tasks overall | sampled tasks overall | brax eval/episode_reward |",
        "|" + "---:|" * 9,
    ]
    for step, row in sorted(ours.items()):
        lines.append(
            f"| {step:,} | {row['wall']:.0f} | {row['success_rate']:.3f} | {row['sampled_success_rate']:.3f} | "
            f"{row['time_at_goal']:.3f} | {row['sampled_time_at_goal']:.3f} | {row['tasks/overall_success']:.3f} | "
            f"{row['tasks/sampled_overall_success']:.3f} | {brax_reward.get(step, np.nan):.2f} |"
        )
    lines.append("")
    lines.append(f"total wall time {time.time() - started:.0f} s (compiles and evaluations included)")
    text = "\n".join(lines)
    print(text)
    if args.output:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        pathlib.Path(args.output).write_text(text + "\n")
    return text


if __name__ == "__main__":
    import tyro

    main(tyro.cli(Args))
