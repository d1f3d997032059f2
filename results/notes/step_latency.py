"""Time per gradient step of crl_infonce, as it is and with fewer kernel launches per step, each
with its largest parameter difference from today's update.

    python results/notes/step_latency.py                    # GPU: depths 2, 4, 64, every variant (about 3 min)
    python results/notes/step_latency.py --tiny             # tiny widths, seconds on CPU (the suite's smoke test)
    python results/notes/step_latency.py --depths 2 4 --rounds 5   # CPU ratios (results/notes/step_latency.md)

A depth is the configuration measured on the H200 (results/notes/step_latency.md): depth 2 is ant with
the default plain networks; a depth that is a multiple of 4 (4, 64) is humanoid with `--residual
--layer-norm`; all with `--width`, `--batch-size`, `--repr-dim` (256, 256, 64). A timed call is
`--steps-per-call` gradient steps exactly as the algorithm's training step runs them (a
`lax.scan` of `buffer.sample`, then `update`), on a buffer of 992 rows x 32 envs of random
transitions in one 1001-step episode (a 10-step search for future goals, as in training).

Variants, one row each per depth:
* `loops`: today's update (`--scan-unroll 0`), the reference of every ratio and difference;
* `unrollK`: `--scan-unroll K` (`unroll1`: each residual block's four layers written out;
  `unroll4`: also four blocks per iteration of the loop over blocks);
* `while`: `--while-of` (default `loops`) in a child process with `XLA_FLAGS` plus `--xla-flags`
  (default `--xla_gpu_enable_command_buffer=+WHILE`: CUDA graphs may hold while loops; XLA reads
  its flags once per process; on CPU the flag changes nothing);
* `two_grads`: the update before its one joint gradient (JaxGCRL's): the actor's gradient,
  then the critic's, each computing psi(g); a ratio above 1 is what the joint gradient saves;
* `presample`: the call's batches drawn by one vmapped `buffer.sample` before the scan, from the
  same keys, as the algorithm files' `--presample` does.

Columns: compile s (XLA's compile of one call, lowering excluded); while loops in the compiled
program; ms per gradient step, the median over `--rounds` rounds (a round times every in-process
variant once, one after another, for about `--seconds` each, starting with the next variant each
round); the ratio to `loops`, the median of the per-round ratios (the `while` child's is to the
parent's median: two processes at different times, which a busy machine shows); the largest
absolute difference of any parameter (actor, critic, log alpha) from `loops` after one call
from the same state, buffer and keys.
"""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import tyro

import envs
from algorithms import crl_infonce as crl
from buffers import BufferState, TrajectoryBuffer, Transition

VARIANTS = ("loops", "unroll1", "unroll4", "while", "two_grads", "presample")


@dataclass(frozen=True)
class Args:
    depths: tuple[int, ...] = (2, 4, 64)
    """critic and actor depths: 2 is ant with plain networks, a multiple of 4 humanoid with --residual --layer-norm"""
    variants: tuple[str, ...] = VARIANTS
    """rows per depth: loops, unrollK (any K >= 1), while, two_grads, presample"""
    width: int = 256
    """hidden units per layer"""
    batch_size: int = 256
    """transitions per gradient step"""
    repr_dim: int = 64
    """size of phi and psi"""
    steps_per_call: int = 16
    """gradient steps per timed call (and before the parameter differences are taken)"""
    rounds: int = 3
    """rounds of timing; every figure is a median over them"""
    seconds: float = 0.5
    """timed seconds per variant per round (at least one call)"""
    xla_flags: str = "--xla_gpu_enable_command_buffer=+WHILE"
    """what the `while` variant adds to XLA_FLAGS"""
    while_of: str = "loops"
    """the variant the `while` child runs with those flags (loops, unrollK, two_grads, presample)"""
    tiny: bool = False
    """width 8, batch 8, repr 8, 2 steps per call, one round of one call: a smoke test"""
    child: str = ""
    """(internal) run as the `while` child: write each depth's parameters to this folder"""


def net_args(args: Args, depth: int, scan_unroll: int) -> crl.Args:
    deep = depth % 4 == 0
    return crl.Args(
        env_id="humanoid" if deep else "ant",
        depth=depth,
        residual=deep,
        layer_norm=deep,
        width=args.width,
        batch_size=args.batch_size,
        repr_dim=args.repr_dim,
        scan_unroll=scan_unroll,
    )


def random_buffer(env, key) -> tuple[TrajectoryBuffer, BufferState]:
    """A full buffer of random transitions, one 1001-step episode per env."""
    buffer = TrajectoryBuffer(
        capacity=992,
        num_envs=32,
        unroll_length=62,
        episode_length=1001,
        goal_indices=env.goal_indices,
        state_dim=env.state_dim,
        gamma=0.99,
    )
    shape = (buffer.capacity, buffer.num_envs)
    keys = jax.random.split(key, 3)
    data = Transition(
        obs=jax.random.normal(keys[0], (*shape, env.observation_size)),
        action=jax.random.uniform(keys[1], (*shape, env.action_size), minval=-1.0, maxval=1.0),
        next_obs=jax.random.normal(keys[2], (*shape, env.observation_size)),
        terminated=jnp.zeros(shape),
        truncated=jnp.zeros(shape),
        episode_id=jnp.zeros(shape, jnp.int32),
    )
    return buffer, BufferState(data, jnp.zeros((), jnp.int32), jnp.array(buffer.capacity, jnp.int32))


def make_two_gradient_update(args: crl.Args, env):
    """crl_infonce's update as it was before its one joint gradient (and as JaxGCRL writes it):
    the actor's gradient, with the critic held fixed, then the critic's, each computing its own
    psi(g): one more backward pass and psi computed twice."""
    actor_opt, critic_opt, alpha_opt = optax.adam(args.actor_lr), optax.adam(args.critic_lr), optax.adam(args.alpha_lr)
    state_dim, target_entropy = env.state_dim, -args.target_entropy_scale * env.action_size

    def actor_loss_fn(actor, critic, alpha, state, goal, key):
        return crl.actor_loss_fn(actor, critic, alpha, state, goal, jax.vmap(critic.psi)(goal), key, args)

    def critic_loss_fn(critic, state, action, goal):
        return crl.critic_loss_fn(critic, state, action, jax.vmap(critic.psi)(goal), args)

    def update(ts: crl.TrainState, batch, key):
        state, action, goal = batch.obs[:, :state_dim], batch.action, batch.future_goal
        alpha = jnp.exp(ts.log_alpha)
        (actor_loss, log_prob), actor_grads = eqx.filter_value_and_grad(actor_loss_fn, has_aux=True)(
            ts.actor, ts.critic, alpha, state, goal, key
        )
        updates, actor_opt_state = actor_opt.update(actor_grads, ts.actor_opt_state, ts.actor)
        actor = eqx.apply_updates(ts.actor, updates)

        def alpha_loss_fn(log_alpha):
            return jnp.mean(jnp.exp(log_alpha) * jax.lax.stop_gradient(-log_prob - target_entropy))

        alpha_loss, alpha_grad = jax.value_and_grad(alpha_loss_fn)(ts.log_alpha)
        updates, alpha_opt_state = alpha_opt.update(alpha_grad, ts.alpha_opt_state)
        log_alpha = ts.log_alpha + updates
        (critic_loss, critic_metrics), critic_grads = eqx.filter_value_and_grad(critic_loss_fn, has_aux=True)(
            ts.critic, state, action, goal
        )
        updates, critic_opt_state = critic_opt.update(critic_grads, ts.critic_opt_state, ts.critic)
        critic = eqx.apply_updates(ts.critic, updates)
        metrics = {
            "critic_loss": critic_loss,
            "actor_loss": actor_loss,
            "alpha": alpha,
            "alpha_loss": alpha_loss,
            "entropy": -jnp.mean(log_prob),
            **critic_metrics,
        }
        opt_states = (actor_opt_state, critic_opt_state, alpha_opt_state)
        return crl.TrainState(actor, critic, log_alpha, *opt_states, ts.grad_steps + 1), metrics

    return update


def make_steps(update, buffer: TrajectoryBuffer, batch_size: int, num_steps: int, presample: bool):
    """steps(ts, buffer_state, key) -> (ts, mean metrics): `num_steps` gradient steps as
    crl_infonce's training step runs them (its `gradient_steps`), with or without --presample."""

    def steps(ts, buffer_state, key):
        keys = jax.random.split(key, num_steps)
        if presample:
            keys = jax.vmap(jax.random.split)(keys)  # what `one` below splits, all at once
            batches = jax.vmap(lambda k: buffer.sample(buffer_state, k, batch_size))(keys[:, 0])
            ts, metrics = jax.lax.scan(lambda ts, xs: update(ts, *xs), ts, (batches, keys[:, 1]))
            return ts, jax.tree.map(jnp.mean, metrics)

        def one(ts, k):
            sample_key, step_key = jax.random.split(k)
            return update(ts, buffer.sample(buffer_state, sample_key, batch_size), step_key)

        ts, metrics = jax.lax.scan(one, ts, keys)
        return ts, jax.tree.map(jnp.mean, metrics)

    return steps


def parameters(ts: crl.TrainState) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(eqx.filter(crl.model_of(ts), eqx.is_inexact_array))]


def max_difference(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


def seconds_per_call(compiled, inputs, seconds: float) -> float:
    """Back-to-back calls for about `seconds` (the device queue stays full), blocked once."""
    start = time.perf_counter()
    jax.block_until_ready(compiled(*inputs))
    one = time.perf_counter() - start
    calls = max(1, round(seconds / one))
    start = time.perf_counter()
    for _ in range(calls):
        out = compiled(*inputs)
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / calls


def build(args: Args, depth: int, variant: str, env, buffer: TrajectoryBuffer, buffer_state: BufferState):
    """(compiled call, its inputs, compile seconds, while loops in the compiled program) of one
    variant. Every variant starts from the same parameters, buffer and key; the train state is
    built by the variant's own init, since --scan-unroll is part of the networks (a static field)."""
    match = re.fullmatch(r"unroll(\d+)", variant)
    cfg = net_args(args, depth, int(match.group(1)) if match else 0)
    init, update = crl.make_update(cfg, env)
    if variant == "two_grads":
        update = make_two_gradient_update(cfg, env)
    steps = make_steps(update, buffer, cfg.batch_size, args.steps_per_call, variant == "presample")
    inputs = (init(jax.random.PRNGKey(0)), buffer_state, jax.random.PRNGKey(2))
    lowered = jax.jit(steps).lower(*inputs)
    start = time.perf_counter()
    compiled = lowered.compile()
    compile_s = time.perf_counter() - start
    return compiled, inputs, compile_s, len(re.findall(r"\bwhile\(", compiled.as_text()))


def measure_depth(args: Args, depth: int, variants: list[str]) -> dict[str, dict]:
    """Rows of one depth for the in-process variants; each row also holds its parameters."""
    env = envs.make(net_args(args, depth, 0).env_id)
    buffer, buffer_state = random_buffer(env, jax.random.PRNGKey(1))
    rows, calls = {}, {}
    for variant in variants:
        compiled, inputs, compile_s, loops = build(args, depth, variant, env, buffer, buffer_state)
        ts, _ = compiled(*inputs)
        rows[variant] = dict(compile_s=compile_s, while_loops=loops, params=parameters(ts))
        calls[variant] = (compiled, inputs)
    per_step = {variant: [] for variant in variants}
    for round_index in range(args.rounds):
        start = round_index % len(variants)  # each round starts with the next variant: no order bias
        for variant in variants[start:] + variants[:start]:
            call_s = seconds_per_call(*calls[variant], args.seconds)
            per_step[variant].append(1e3 * call_s / args.steps_per_call)
    for variant in variants:
        row = rows[variant]
        row["ms"] = statistics.median(per_step[variant])
        if "loops" in per_step:
            ratios = [t / ref for t, ref in zip(per_step[variant], per_step["loops"])]
            row["ratio"] = statistics.median(ratios)
    return rows


def run_child(args: Args, depths: list[int]) -> dict[int, dict]:
    """The `while` rows: `--while-of` in a child process whose XLA_FLAGS hold --xla-flags."""
    with tempfile.TemporaryDirectory() as folder:
        flags = f"{os.environ.get('XLA_FLAGS', '')} {args.xla_flags}".strip()
        child_args = [
            *("--depths", *map(str, depths)),
            *("--variants", "loops", "--while-of", args.while_of),
            *("--width", str(args.width), "--batch-size", str(args.batch_size), "--repr-dim", str(args.repr_dim)),
            *("--steps-per-call", str(args.steps_per_call), "--rounds", str(args.rounds)),
            *("--seconds", str(args.seconds), "--child", folder),
        ]
        # the parent already holds most of a GPU's memory (JAX preallocates 75%): the child allocates as it goes
        env = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false", **os.environ, "XLA_FLAGS": flags}
        done = subprocess.run([sys.executable, __file__, *child_args], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"while: the child process failed (XLA_FLAGS={flags!r}):\n{done.stderr[-3000:]}", flush=True)
            return {}
        rows = {}
        for line in done.stdout.splitlines():
            if line.startswith("ROW "):
                row = json.loads(line[4:])
                with np.load(os.path.join(folder, f"depth{row['depth']}.npz")) as saved:
                    row["params"] = [saved[f"arr_{i}"] for i in range(len(saved.files))]
                rows[row["depth"]] = row
        return rows


def main(args: Args) -> None:
    if args.tiny:
        args = replace(args, width=8, batch_size=8, repr_dim=8, steps_per_call=2, rounds=1, seconds=0.0)
    variants = [*args.variants, args.while_of]
    unknown = [v for v in variants if v not in VARIANTS and not re.fullmatch(r"unroll[1-9]\d*", v)]
    if unknown or args.while_of == "while" or "loops" not in args.variants:
        sys.exit(f"--variants, --while-of: unknown {unknown}; `loops` is the reference and must be among them")
    in_process = [v for v in args.variants if v != "while"]
    if args.child:  # the `while` child: machine-readable rows and the parameters, nothing else
        for depth in args.depths:
            row = measure_depth(args, depth, [args.while_of])[args.while_of]
            np.savez(os.path.join(args.child, f"depth{depth}.npz"), *row.pop("params"))
            print("ROW " + json.dumps({**row, "depth": depth}), flush=True)
        return

    start = time.perf_counter()
    print(
        f"jax {jax.__version__} on {jax.devices()[0].device_kind} ({platform.node()}), XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}"
    )
    print(
        f"width {args.width}, batch {args.batch_size}, repr {args.repr_dim}; {args.steps_per_call} gradient steps "
        f"per call, {args.rounds} rounds of about {args.seconds} s per variant"
    )
    print("\n| depth | variant | compile s | while loops | ms per gradient step | ratio to loops | max param diff |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    all_rows = {}
    for depth in args.depths:
        rows = measure_depth(args, depth, in_process)
        all_rows[depth] = rows
        for variant, row in rows.items():
            difference = max_difference(row["params"], rows["loops"]["params"])
            print(
                f"| {depth} | {variant} | {row['compile_s']:.1f} | {row['while_loops']} | {row['ms']:.4g} "
                f"| {row['ratio']:.3f} | {difference:.2g} |",
                flush=True,
            )
    if "while" in args.variants:
        label = "while" if args.while_of == "loops" else f"while {args.while_of}"
        for depth, row in run_child(args, list(args.depths)).items():
            reference = all_rows[depth]["loops"]
            difference = max_difference(row["params"], reference["params"])
            print(
                f"| {depth} | {label} | {row['compile_s']:.1f} | {row['while_loops']} | {row['ms']:.4g} "
                f"| {row['ms'] / reference['ms']:.3f} | {difference:.2g} |",
                flush=True,
            )
    print(f"\n{time.perf_counter() - start:.0f} s in all")


if __name__ == "__main__":
    main(tyro.cli(Args))
