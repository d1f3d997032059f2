"""Training throughput next to its physical floor, one table row per (algorithm, env).

    python results/tools/throughput.py --algorithm crl_infonce --env-id reacher --episode-length 51 \
        --unroll-length 50 --backend generalized --repeats 3
    python results/tools/throughput.py --algorithms crl_infonce crl_dpo sac_her td3_her \
        --env-ids reacher simple_u_maze --unroll-length 50 --repeats 5

`--algorithms` and `--env-ids` take several names (`--algorithm`/`--env-id` one); every other
flag is passed to each algorithm's `Args`.

Measured in one process, on the same config (every flag of the algorithm's `Args` can be given
after `--algorithm`, in the same form):

* env-only: `VecEnv` with uniformly random actions, `num_envs x unroll_length` steps per
  training step, `lax.scan` inside jit;
* update-only: the algorithm's own gradient step, `updates_per_rollout` times per training step,
  on a fixed synthetic batch (no buffer sampling);
* training: the algorithm's compiled training chunk after the buffer holds `learning_starts`
  rows (so every training step runs its gradient steps), excluding compile time.

floor SPS = env steps / (env time + update time); the table reports training SPS as a fraction
of it. A last line splits a training step's time into its parts, each timed alone: env only,
the policy's rollout (inference + env), the gradient steps, and the buffer samples they draw. Each figure is the median of `--repeats` timed calls of `--steps` training steps each.
"""

from __future__ import annotations

import dataclasses
import importlib
import pathlib
import platform
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import tyro

from algorithms import run
from buffers import Batch

ROOT = pathlib.Path(__file__).resolve().parents[2]


def timed(fn, *args, repeats: int):
    """Median seconds of `repeats` calls after one warm-up call; returns (median, last output)."""
    out = jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def synthetic_batch(env, batch_size: int, key) -> Batch:
    """A fixed batch of random observations, actions and goals, to time gradient steps alone."""
    keys = jax.random.split(key, 3)
    return Batch(
        obs=jax.random.normal(keys[0], (batch_size, env.observation_size)),
        action=jax.random.uniform(keys[1], (batch_size, env.action_size), minval=-1.0, maxval=1.0),
        next_obs=jnp.zeros((batch_size, env.observation_size)),
        terminated=jnp.zeros(batch_size),
        truncated=jnp.zeros(batch_size),
        future_goal=jax.random.normal(keys[2], (batch_size, env.goal_dim)),
        reward=jnp.zeros(batch_size),
        relabelled=jnp.zeros(batch_size, bool),
    )


def take(argv: list[str], flag: str) -> list[str]:
    """Remove `flag` and the values after it (up to the next --flag) from argv; return them."""
    if flag not in argv:
        return []
    i = argv.index(flag)
    j = i + 1
    while j < len(argv) and not argv[j].startswith("--"):
        j += 1
    values = argv[i + 1 : j]
    del argv[i:j]
    return values


HEADER = (
    "| algorithm | env | backend | num_envs | unroll | batch | episode | updates/rollout | env-only SPS | "
    "ms/update | floor SPS | training SPS | of floor |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def main() -> None:
    argv = sys.argv[1:]
    algorithms = take(argv, "--algorithms") + take(argv, "--algorithm") or ["crl_infonce"]
    env_ids = take(argv, "--env-ids") + take(argv, "--env-id") or ["reacher"]
    steps = int((take(argv, "--steps") or [4])[0])
    repeats = int((take(argv, "--repeats") or [3])[0])
    rows, notes = [], []
    for env_id in env_ids:
        for algorithm in algorithms:
            row, note = measure(algorithm, [*argv, f"--env-id={env_id}"], steps, repeats)
            rows.append(row)
            notes.append(note)
            print(row, file=sys.stderr, flush=True)
    print(HEADER + "\n" + "\n".join(rows) + "\n\n" + "\n".join(notes))


def measure(algorithm: str, argv: list[str], steps: int, repeats: int) -> tuple[str, str]:
    """One table row and one line of notes for an algorithm on one config."""
    algo = importlib.import_module(f"algorithms.{algorithm}")
    args = tyro.cli(algo.Args, args=argv)
    env = algo.envs.make(args.env_id, backend=args.backend, episode_length=args.episode_length)
    schedule = run.make_schedule(args, env)
    init, training_step, vec, buffer = algo.make_train(args, env, schedule)
    per_step = schedule.steps_per_training_step

    # training: fill the buffer to learning_starts, then time chunks of `steps` training steps
    chunk_fn = jax.jit(algo.make_chunk(training_step))
    carry = jax.jit(init)(jax.random.PRNGKey(args.seed))
    warmup = max(1, schedule.learning_start_rows // args.unroll_length)
    start = time.perf_counter()
    carry, _ = jax.block_until_ready(chunk_fn(carry, jnp.int32(warmup)))
    compile_s = time.perf_counter() - start
    train_times = []
    for _ in range(repeats):
        start = time.perf_counter()
        carry, stats = jax.block_until_ready(chunk_fn(carry, jnp.int32(steps)))
        train_times.append(time.perf_counter() - start)
        assert float(stats.updated_steps) == steps, "gradient steps did not run in every timed training step"
    train_s = statistics.median(train_times)

    # env-only
    @jax.jit
    def env_only(state, key):
        def body(state, k):
            action = jax.random.uniform(k, (args.num_envs, env.action_size), minval=-1.0, maxval=1.0)
            return vec.step(state, action), ()

        return jax.lax.scan(body, state, jax.random.split(key, steps * args.unroll_length))[0]

    env_state = vec.reset(jax.random.PRNGKey(1))
    env_s, _ = timed(env_only, env_state, jax.random.PRNGKey(2), repeats=repeats)

    # update-only, on a synthetic batch
    _, update = algo.make_update(args, env)
    batch = synthetic_batch(env, args.batch_size, jax.random.PRNGKey(3))
    num_updates = steps * schedule.updates_per_rollout

    @jax.jit
    def update_only(ts, key):
        return jax.lax.scan(lambda ts, k: (update(ts, batch, k)[0], ()), ts, jax.random.split(key, num_updates))[0]

    update_s, _ = timed(update_only, carry.train_state, jax.random.PRNGKey(4), repeats=repeats)

    # diagnostics: the policy's own rollout (network inference + env) and buffer sampling alone
    rollout = algo.make_rollout(vec, args.unroll_length)
    ts, buffer_state = carry.train_state, carry.buffer_state

    @jax.jit
    def policy_rollouts(env_state, key):
        def body(env_state, k):
            return rollout(ts.actor, env_state, k)[0], ()

        return jax.lax.scan(body, env_state, jax.random.split(key, steps))[0]

    rollout_s, _ = timed(policy_rollouts, env_state, jax.random.PRNGKey(5), repeats=repeats)

    @jax.jit
    def samples_only(key):
        def body(total, k):
            batch = buffer.sample(buffer_state, k, args.batch_size)
            return total + batch.future_goal.sum() + batch.obs.sum(), ()

        return jax.lax.scan(body, jnp.zeros(()), jax.random.split(key, num_updates))[0]

    sample_s, _ = timed(samples_only, jax.random.PRNGKey(6), repeats=repeats)

    env_steps = steps * per_step
    floor = env_steps / (env_s + update_s)
    sps = env_steps / train_s
    row = (
        f"| {algorithm} | {args.env_id} | {env.backend} | {args.num_envs} | {args.unroll_length} | {args.batch_size} | "
        f"{env.episode_length} | {schedule.updates_per_rollout} | {env_steps / env_s:,.0f} | "
        f"{1000 * update_s / num_updates:.2f} | {floor:,.0f} | {sps:,.0f} | {sps / floor:.2f} |"
    )
    note = (
        f"- {algorithm} on {args.env_id}: one training step {1000 * train_s / steps:.0f} ms (each part timed alone: env "
        f"{1000 * env_s / steps:.0f} ms, policy rollout incl. env {1000 * rollout_s / steps:.0f} ms, "
        f"{schedule.updates_per_rollout} gradient steps {1000 * update_s / steps:.0f} ms, as many buffer samples "
        f"{1000 * sample_s / steps:.0f} ms); {steps} training steps per timed call ({env_steps:,} env steps, "
        f"{num_updates} gradient steps), median of {repeats}; first call (compile + {warmup} warm-up steps) "
        f"{compile_s:.1f} s; jax {jax.__version__}, {jax.devices()[0].device_kind}, {platform.machine()}; "
        + " ".join(
            f"{k}={v}" for k, v in dataclasses.asdict(args).items() if k in ("seed", "width", "depth", "energy_fn")
        )
    )
    return row, note


if __name__ == "__main__":
    main()
