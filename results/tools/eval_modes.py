"""A saved model's evaluation with deterministic actions (what the algorithms log) and with
stochastic ones (what training episodes use), side by side.

    python algorithms/crl_infonce.py --env-id cheetah --save-model --total-timesteps 1300000 --num-evals 2
    python results/tools/eval_modes.py --model runs/cheetah__crl_infonce__1__<time>/crl_infonce.eqx

Runs `--num-envs` episodes of the env's episode length from one reset per env, once with
tanh(mean) actions and once with sampled ones, and prints per mode: success rate (reached the
goal at least once), time at goal, the mean |action|, the policy's mean standard deviation and
the final and largest value of the first goal coordinate, averaged over envs.
"""

from __future__ import annotations

import importlib
import pathlib
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import tyro

import envs
from algorithms import run

ROOT = pathlib.Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Args:
    model: str
    """a model file written by --save-model (any algorithm whose actor has `sample` and `dist`)"""
    num_envs: int = 128
    """episodes per mode"""
    seed: int = 7
    """seed of the resets and the sampled actions"""


def main(args: Args) -> None:
    algorithm = run.files.read_header(args.model, kind="model")["algorithm"]
    module = importlib.import_module(f"algorithms.{algorithm}")
    (actor, *_), _, env, _ = run.load_model(module.ALGORITHM, args.model)
    vec = envs.VecEnv(env, args.num_envs)
    goal_index = env.goal_indices[0]

    def episode(stochastic: bool, key):
        def step(carry, k):
            state, reached, at_goal = carry
            if stochastic:
                action = jax.vmap(actor.explore)(state.obs, jax.random.split(k, args.num_envs))
            else:
                action = jax.vmap(actor.deterministic)(state.obs)
            std = jnp.exp(jax.vmap(actor.dist)(state.obs)[1]).mean()
            nxt = vec.step(state, action)
            success = nxt.metrics["success"]
            coordinate = nxt.info["next_obs"][:, goal_index]
            return (nxt, jnp.maximum(reached, success), at_goal + success), (jnp.abs(action).mean(), std, coordinate)

        reset_key, steps_key = jax.random.split(key)
        zeros = jnp.zeros(args.num_envs)
        keys = jax.random.split(steps_key, env.episode_length - 1)
        (_, reached, at_goal), (action, std, coordinate) = jax.lax.scan(
            step, (vec.reset(reset_key), zeros, zeros), keys
        )
        return dict(
            success_rate=reached.mean(),
            time_at_goal=at_goal.mean() / env.episode_length,
            mean_abs_action=action.mean(),
            policy_std=std.mean(),
            final_coordinate=coordinate[-1].mean(),
            max_coordinate=coordinate.max(axis=0).mean(),
        )

    print(f"{args.model} ({algorithm} on {env.env_id if hasattr(env, 'env_id') else type(env).__name__})")
    for stochastic in (False, True):
        metrics = jax.jit(episode, static_argnums=0)(stochastic, jax.random.PRNGKey(args.seed))
        mode = "stochastic" if stochastic else "deterministic"
        print(f"{mode:>13}: " + ", ".join(f"{name} {float(v):.3f}" for name, v in metrics.items()))


if __name__ == "__main__":
    main(tyro.cli(Args))
