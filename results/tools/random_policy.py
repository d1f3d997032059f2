"""The random-policy baseline of one env, under the algorithms' evaluation protocol, and its
env-only throughput.

    python results/tools/random_policy.py --env-id ant
    python results/tools/random_policy.py --env-id arm_reach --num-episodes 256 --seed 2 --output random.json

Baseline: `--num-episodes` envs each run one full episode from fresh goals with actions drawn
uniformly in [-1, 1] (`envs.VecEnv.evaluate` with no policy), scored exactly as the algorithms'
`eval/*` scalars: success_rate (the goal was reached at some step), time_at_goal,
final_distance, episodic_return, and `--task-episodes` episodes of each of the env's named
tasks, as `tasks/task{k}_success` and `tasks/overall_success` (the algorithms' --eval-tasks). Throughput: the env-only steps per second of random-action
rollouts at `--num-envs` (auto-reset included, `env_throughput.measure`), which is what the
env costs a training run of the same size. Prints one JSON object; `--output` also writes it.
`results/tools/benchmark.py` runs this for its `random` rows.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass

import env_throughput  # results/tools/env_throughput.py, the script's own folder
import jax

import envs


@dataclass(frozen=True)
class Args:
    env_id: str = "reacher"
    """environment id (see envs.ENV_IDS)"""
    episode_length: int | None = None
    """steps per episode; default: the env's own"""
    maze_start: str = "fixed"
    """mazes: where episodes start, fixed or anywhere (the algorithms' --maze-start)"""
    num_episodes: int = 128
    """evaluation episodes (the algorithms' --num-eval-envs)"""
    task_episodes: int = 8
    """episodes of each of the env's named tasks, scored as eval/tasks/* (the algorithms' --eval-task-episodes; 0: none)"""
    seed: int = 1
    """seed of the goals and actions"""
    num_envs: int = 256
    """parallel envs of the throughput measurement (the training runs' --num-envs)"""
    steps_per_call: int = 40
    """env steps per env in one timed call of the throughput measurement"""
    output: str = ""
    """also write the JSON object to this file (atomically)"""


def main(args: Args) -> dict:
    maze = {"maze_start": args.maze_start} if args.maze_start != "fixed" else {}
    env = envs.make(args.env_id, episode_length=args.episode_length, **maze)  # before JAX computes: its XLA flags
    start = time.perf_counter()
    vec = envs.VecEnv(env, args.num_episodes)
    metrics, _ = jax.jit(lambda key: vec.evaluate(None, key, task_episodes=args.task_episodes))(
        jax.random.PRNGKey(args.seed)
    )
    metrics = {name: float(v) for name, v in metrics.items()}
    eval_s = time.perf_counter() - start
    rate = env_throughput.measure(args.env_id, None, args.num_envs, args.steps_per_call, repeats=3)
    result = {
        **asdict(args),
        "episode_length": env.episode_length,
        "backend": env.backend,
        **metrics,
        "eval_s": round(eval_s, 1),
        "env_only_sps": round(rate["sps"]),
        "env_compile_s": round(rate["compile"], 1),
        "jax": jax.__version__,
    }
    text = json.dumps(result)
    print(text)
    if args.output:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with open(f"{args.output}.tmp", "w") as f:
            f.write(text + "\n")
        os.replace(f"{args.output}.tmp", args.output)
    return result


if __name__ == "__main__":
    import tyro

    main(tyro.cli(Args))
