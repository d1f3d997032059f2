"""Deep networks (--residual, --critic-depth, --actor-depth): the scanned blocks equal the same
layers applied one by one, the compiled training step does not grow with depth, and a short
run with a 16-layer critic trains, saves and loads."""

from __future__ import annotations

import math
import time

import jax
import numpy as np
import pytest
from conftest import ALGORITHMS, load_algorithm, read_scalars, tiny

from algorithms import run


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


def compile_training_step(critic_depth: int):
    """(seconds to compile, size of the lowered program) of crl_infonce's training step with a
    residual critic of `critic_depth` layers. The persistent cache must be off, and each depth
    compiled once (JAX also keeps compiled programs in memory)."""
    crl = load_algorithm("crl_infonce")
    args = crl.Args(**tiny("crl_infonce", depth=4, residual=True, critic_depth=critic_depth))
    env = run.make_env(args)
    init, training_step, _, _ = crl.make_train(args, env, run.make_schedule(args, env))
    carry = jax.eval_shape(init, jax.random.PRNGKey(0))
    lowered = jax.jit(training_step).lower(carry)
    start = time.perf_counter()
    lowered.compile()
    return time.perf_counter() - start, len(lowered.as_text())


def test_compile_time_and_program_size_are_flat_in_depth():
    jax.config.update("jax_enable_compilation_cache", False)
    try:
        shallow_s, shallow_size = compile_training_step(4)
        deep_s, deep_size = compile_training_step(64)
    finally:
        jax.config.update("jax_enable_compilation_cache", True)
    print(f"compile: depth 4 {shallow_s:.2f} s, depth 64 {deep_s:.2f} s; program {shallow_size} / {deep_size} chars")
    assert deep_s < 2 * shallow_s
    assert deep_size < 1.02 * shallow_size  # only the parameter shapes' digits differ


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
