"""Deep networks (--residual, --critic-depth, --actor-depth, --scan-unroll): the scanned blocks
equal the same layers applied one by one, an update with the layers' loops unrolled equals the
looped one up to float rounding, compile time stays flat in depth, and a short run with a
16-layer critic trains, saves and loads."""

from __future__ import annotations

import math
import re
import time
import types

import equinox as eqx
import jax
import numpy as np
import pytest
from conftest import ALGORITHMS, load_algorithm, read_scalars, tiny

from algorithms import networks, run
from buffers import Batch


def unrolled(mlp, x):
    """The MLP's layers applied one by one in Python: the reference for the scan."""
    h = mlp.first(x)
    num_blocks, block_size = mlp.blocks.linear.weight.shape[:2]
    for i in range(num_blocks):
        y = h
        for j in range(block_size):
            layer = jax.tree.map(lambda leaf, i=i, j=j: leaf[i, j], mlp.blocks)
            y = layer(y)
        h = h + y if mlp.residual else y
    return mlp.out(h)


@pytest.mark.parametrize("name", ALGORITHMS)
@pytest.mark.parametrize("depth", [4, 8])
@pytest.mark.parametrize("layer_norm", [False, True])
@pytest.mark.parametrize("residual", [False, True])
def test_scanned_network_equals_the_unrolled_one(name, depth, layer_norm, residual):
    mlp = load_algorithm(name).MLP(7, 3, 16, depth, layer_norm, residual, jax.random.PRNGKey(depth))
    blocks = depth // 4 if residual else depth - 1
    assert mlp.blocks.linear.weight.shape == (blocks, 4 if residual else 1, 16, 16)
    x = jax.random.normal(jax.random.PRNGKey(1), (5, 7))
    np.testing.assert_allclose(jax.vmap(mlp)(x), jax.vmap(lambda v: unrolled(mlp, v))(x), rtol=1e-5, atol=1e-5)


def test_residual_depth_must_be_a_multiple_of_four():
    crl = load_algorithm("crl_infonce")
    with pytest.raises(run.ConfigError, match="--depth must be a multiple of 4 with --residual"):
        crl.Args(residual=True)
    with pytest.raises(run.ConfigError, match="--critic-depth must be at least 1"):
        crl.Args(critic_depth=0)
    assert crl.Args(residual=True, depth=4, critic_depth=16).critic_depth == 16


@pytest.mark.parametrize("name", ALGORITHMS)
def test_scan_unroll_is_checked_and_defaults_to_the_platforms_setting(name):
    module = load_algorithm(name)
    with pytest.raises(run.ConfigError, match="--scan-unroll must be at least 0"):
        module.Args(scan_unroll=-1)
    assert networks.scan_unroll(module.Args(scan_unroll=3).scan_unroll) == 3
    assert networks.scan_unroll(module.Args().scan_unroll) == networks.SCAN_UNROLL[jax.default_backend()]


def two_updates(name: str, scan_unroll: int):
    """(parameters after two gradient steps, while loops in the compiled program) for residual
    depth-8 networks (two blocks of four layers) with --scan-unroll `scan_unroll`, from the
    same start, batch and keys."""
    module = load_algorithm(name)
    flags = tiny(name, width=8, depth=8, residual=True, layer_norm=True, scan_unroll=scan_unroll)
    env = types.SimpleNamespace(observation_size=6, state_dim=4, goal_dim=2, action_size=2)
    init, update = module.make_update(module.Args(**flags), env)
    keys = jax.random.split(jax.random.PRNGKey(2), 4)
    batch = Batch(
        obs=jax.random.normal(keys[0], (16, 6)),
        action=jax.random.uniform(keys[1], (16, 2), minval=-1, maxval=1),
        next_obs=jax.random.normal(keys[2], (16, 6)),
        terminated=jax.numpy.zeros(16),
        truncated=jax.numpy.zeros(16),
        future_goal=jax.random.normal(keys[3], (16, 2)),
        reward=(jax.random.uniform(keys[3], (16,)) < 0.3).astype(jax.numpy.float32),
        relabelled=jax.numpy.zeros(16, bool),
    )

    def steps(ts, key):
        for step_key in jax.random.split(key):
            ts, _ = update(ts, batch, step_key)
        return eqx.filter(module.model_of(ts), eqx.is_inexact_array)

    ts = init(jax.random.PRNGKey(0))
    compiled = jax.jit(steps).lower(ts, jax.random.PRNGKey(1)).compile()
    loops = len(re.findall(r"\bwhile\(", compiled.as_text()))
    return jax.tree.leaves(compiled(ts, jax.random.PRNGKey(1))), loops


@pytest.mark.parametrize("name", ALGORITHMS)
def test_an_update_with_unrolled_layers_equals_the_looped_one(name):
    looped, looped_loops = two_updates(name, 0)
    inner, inner_loops = two_updates(name, 1)  # each block's four layers written out
    whole, whole_loops = two_updates(name, 2)  # and both blocks in one iteration: no loop left
    assert looped_loops > inner_loops > whole_loops  # the flag reaches the compiled program
    for unrolled in (inner, whole):
        for a, b in zip(looped, unrolled):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def compile_training_step(critic_depth: int, scan_unroll: int):
    """(seconds to compile, size of the lowered program) of crl_infonce's training step with a
    residual critic of `critic_depth` layers. The persistent cache must be off; JAX's caches in
    memory are cleared (--scan-unroll 1 and 4 give the same program at depth 4)."""
    jax.clear_caches()
    crl = load_algorithm("crl_infonce")
    flags = tiny("crl_infonce", depth=4, residual=True, critic_depth=critic_depth, scan_unroll=scan_unroll)
    args = crl.Args(**flags)
    env = run.make_env(args)
    init, training_step, _, _ = crl.make_train(args, env, run.make_schedule(args, env))
    carry = jax.eval_shape(init, jax.random.PRNGKey(0))
    lowered = jax.jit(training_step).lower(carry)
    start = time.perf_counter()
    lowered.compile()
    return time.perf_counter() - start, len(lowered.as_text())


@pytest.mark.parametrize("scan_unroll", [0, 1, 4])  # loops, and the CPU's and the GPU's defaults
def test_compile_time_and_program_size_are_flat_in_depth(scan_unroll):
    jax.config.update("jax_enable_compilation_cache", False)
    try:
        shallow_s, shallow_size = compile_training_step(4, scan_unroll)
        deep_s, deep_size = compile_training_step(64, scan_unroll)
    finally:
        jax.config.update("jax_enable_compilation_cache", True)
    print(f"compile: depth 4 {shallow_s:.2f} s, depth 64 {deep_s:.2f} s; program {shallow_size} / {deep_size} chars")
    if scan_unroll <= 1:
        assert deep_s < 2.5 * shallow_s
        assert deep_size < 1.02 * shallow_size  # only the parameter shapes' digits differ
    else:  # depth 64 writes out four blocks per loop iteration, depth 4 its one: three blocks more.
        # Its compile on this CPU took 8 times depth 4's once (results/notes/step_latency.md): 4 is the
        # GPU's default, so only its program size is checked here.
        assert deep_size < 1.25 * shallow_size


@pytest.mark.slow  # a whole training run compiled for a 16-layer critic; the layer tests above are quick
def test_a_short_run_with_a_16_layer_critic_trains_saves_and_loads(tmp_path):
    crl = load_algorithm("crl_infonce")
    flags = tiny("crl_infonce", depth=4, residual=True, layer_norm=True, critic_depth=16, save_model=True)
    (run_dir,) = crl.main(crl.Args(**flags, total_timesteps=400, num_evals=1, run_root=str(tmp_path)))
    losses = [e.value for e in read_scalars(run_dir).Scalars("losses/critic_loss")]
    assert losses and all(math.isfinite(v) for v in losses)
    act, env = crl.load_policy(f"{run_dir}/crl_infonce.eqx")
    state = env.reset(jax.random.PRNGKey(0))
    action = act(state.obs[: env.state_dim], state.obs[env.state_dim :])
    assert action.shape == (env.action_size,) and np.all(np.abs(action) <= 1)
