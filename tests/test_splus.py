"""algorithms/splus.py: SPlus against its definition on one matrix, stacked matrices taken one by
one, the eigenbasis refresh's count and its cond under vmap, the iterate average, a small
least-squares problem, and a tiny training run of each algorithm file with --optimizer splus
(its exact resume: test_research_runs.py, whose contrastive fork trains with SPlus)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import load_algorithm, tiny

from algorithms import run as harness
from algorithms.splus import SPlusState, averaged_params, splus


def random(shape, seed):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def run(optimizer, params, grads_per_step):
    state = optimizer.init(params)
    update = jax.jit(optimizer.update)
    for grads in grads_per_step:
        updates, state = update(grads, state, params)
        params = optax.apply_updates(params, updates)
    return params, state


def test_one_matrix_follows_the_definition():
    """Three steps on a 5 x 5 matrix against NumPy: momentum, the sides' averages (G G^T on the
    left, G^T G on the right), eigenbases at the first step, the sign taken in them, the shape
    scale and the weight decay. Square, so that both sides have full rank at the first refresh
    (a null space's eigenvectors are any basis of it)."""
    lr, b1, b2, decay = 0.5, 0.9, 0.999, 0.01
    p0 = np.asarray(random((5, 5), 0), np.float64)
    grads = [np.asarray(random((5, 5), s), np.float64) for s in (1, 2, 3)]
    params, _ = run(
        splus(lr, b1=b1, b2=b2, weight_decay=decay),
        jnp.asarray(p0, jnp.float32),
        [jnp.asarray(g, jnp.float32) for g in grads],
    )
    p, m = p0.copy(), np.zeros_like(p0)
    left, right = np.zeros((5, 5)), np.zeros((5, 5))
    ql, qr = np.eye(5), np.eye(5)
    for step, g in enumerate(grads, 1):
        m = b1 * m + (1 - b1) * g
        u = ql @ np.sign(ql.T @ m @ qr) @ qr.T
        left, right = b2 * left + (1 - b2) * g @ g.T, b2 * right + (1 - b2) * g.T @ g
        if step == 1:  # the first refresh (then every 100 steps)
            ql, qr = np.linalg.eigh(left)[1], np.linalg.eigh(right)[1]
        p = p - lr / (2 * (5 + 5)) * (u + decay * p)
    np.testing.assert_allclose(params, p, rtol=1e-4, atol=1e-5)


def test_a_stack_of_matrices_steps_as_its_matrices_one_by_one():
    stacked = {"w": random((2, 3, 5, 7), 0), "b": random((2, 3, 5), 1)}
    grads = [{"w": random((2, 3, 5, 7), s), "b": random((2, 3, 5), s + 10)} for s in range(2, 7)]
    marks = {"w": True, "b": False}
    together, _ = run(splus(0.3, inverse_every=2, matrices=marks), stacked, grads)
    for i in range(2):
        for j in range(3):
            one = {"w": stacked["w"][i, j], "b": stacked["b"][i, j]}
            alone, _ = run(
                splus(0.3, inverse_every=2, matrices=marks),
                one,
                [{"w": g["w"][i, j], "b": g["b"][i, j]} for g in grads],
            )
            np.testing.assert_allclose(together["w"][i, j], alone["w"], rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(together["b"][i, j], alone["b"], rtol=1e-5, atol=1e-6)
    # without the marks, the reference's rule: a leaf that is not 2-D gets the plain sign
    plain, _ = run(splus(0.3, inverse_every=2), stacked, grads)
    assert not np.allclose(plain["w"], together["w"])


def test_the_eigenbases_refresh_at_the_first_step_and_every_inverse_every():
    params = {"w": random((6, 4), 0)}
    grads = [{"w": random((6, 4), s)} for s in range(1, 26)]
    _, state = run(splus(0.1, inverse_every=10), params, grads)
    assert int(state.count) == 25 and int(state.refreshes) == 3  # steps 1, 10 and 20


def test_under_vmap_the_refresh_stays_one_cond():
    """--num-seeds vmaps the update: the eigendecompositions must stay inside a cond's branch
    (run only when a refresh is due), not become a select that runs them at every step."""
    optimizer = splus(0.1, matrices={"w": True})
    params = {"w": random((3, 6, 4), 0)}  # 3 seeds
    state = jax.vmap(optimizer.init)(params)
    jaxpr = jax.make_jaxpr(jax.vmap(optimizer.update))({"w": random((3, 6, 4), 1)}, state, params)

    def eighs(eqns, inside_cond):
        found = []
        for eqn in eqns:
            if eqn.primitive.name == "eigh":
                found.append(inside_cond)
            for param in eqn.params.values():
                for closed in param if isinstance(param, (list, tuple)) else [param]:
                    inner = getattr(closed, "jaxpr", None)
                    if inner is not None and hasattr(inner, "eqns"):
                        found += eighs(inner.eqns, inside_cond or eqn.primitive.name == "cond")
        return found

    found = eighs(jaxpr.jaxpr.eqns, False)
    assert found and all(found), found  # both sides' eigh, each only under a cond (a plain
    # lax.cond here gives [False, False]: vmap turns it into a select)
    # and the batch refreshes exactly as each seed alone would
    grads = [{"w": random((3, 6, 4), s)} for s in range(1, 6)]
    update = jax.jit(jax.vmap(optimizer.update))
    p, s = params, state
    for g in grads:
        u, s = update(g, s, p)
        p = optax.apply_updates(p, u)
    alone, _ = run(splus(0.1, matrices={"w": True}), {"w": params["w"][1]}, [{"w": g["w"][1]} for g in grads])
    np.testing.assert_allclose(p["w"][1], alone["w"], rtol=1e-5, atol=1e-6)


def test_the_iterate_average_is_the_bias_corrected_average_of_the_parameters():
    params = {"w": random((3, 2), 0)}
    optimizer = splus(0.05, ema_rate=0.9)
    state = optimizer.init(params)
    np.testing.assert_array_equal(averaged_params(state, params)["w"], params["w"])  # before any step
    seen, p = [], params
    for s in range(4):
        seen.append(np.asarray(p["w"]))
        updates, state = optimizer.update({"w": random((3, 2), s + 1)}, state, p)
        p = optax.apply_updates(p, updates)
    weights = np.array([0.1 * 0.9 ** (3 - k) for k in range(4)])
    expected = sum(w * x for w, x in zip(weights, seen)) / (1 - 0.9**4)
    np.testing.assert_allclose(averaged_params(state, p)["w"], expected, rtol=1e-5)


def test_splus_solves_a_least_squares_problem():
    """A stack of three 8 x 16 linear maps fitted to noiseless targets: 400 steps take SPlus's
    loss below 1% of where it starts."""
    a, truth = random((256, 16), 0), random((3, 8, 16), 1)
    targets = jnp.einsum("bi,koi->kbo", a, truth)

    def loss(p):
        return jnp.mean((jnp.einsum("bi,koi->kbo", a, p["w"]) + p["b"][:, None, :] - targets) ** 2)

    params = {"w": jnp.zeros((3, 8, 16)), "b": jnp.zeros((3, 8))}
    optimizer = splus(2.0, weight_decay=0.0, matrices={"w": True, "b": False})
    state = optimizer.init(params)

    @jax.jit
    def step(p, state):
        updates, state = optimizer.update(jax.grad(loss)(p), state, p)
        return optax.apply_updates(p, updates), state

    p = params
    for _ in range(400):
        p, state = step(p, state)
    assert float(loss(p)) < 0.01 * float(loss(params)), (float(loss(p)), float(loss(params)))


# ------------------------------------------------------------------ in the algorithm files
@pytest.mark.parametrize("name", ["sac_her", "td3_her"])
def test_a_tiny_training_run_with_splus(name):
    """Three training steps with --optimizer splus: finite losses, the actor and critic train, the
    temperature keeps Adam, and model_of (what is evaluated and saved) is the parameters'
    running average, not the parameters. The HER files here (TD3 steps its actor every second
    step); the contrastive files' update is the fork's, whose resumed runs train with SPlus
    (test_research_runs.py), and `make_optimizer` is one block shared by all four
    (test_layout.py)."""
    module = load_algorithm(name)
    args = module.Args(**tiny(name, optimizer="splus", splus_inverse_every=2))
    env = harness.make_env(args)
    init, training_step, _, _ = module.make_train(args, env, harness.make_schedule(args, env))
    training_step = jax.jit(training_step)
    carry = start = init(jax.random.PRNGKey(0))
    for _ in range(3):
        step = training_step(carry)
        carry = step.carry
        assert int(step.learned) == 1
        assert all(np.isfinite(np.asarray(v)).all() for v in step.metrics.values())
    ts = carry.train_state
    assert isinstance(ts.actor_opt_state, SPlusState) and isinstance(ts.critic_opt_state, SPlusState)
    assert int(ts.actor_opt_state.refreshes) >= 2  # the first step and every second after it
    saved_actor = module.model_of(ts)[0]
    now, then, saved = (  # (depth 1 leaves an empty stack of hidden layers out)
        [x for x in jax.tree.leaves(eqx.filter(a, eqx.is_inexact_array)) if x.size]
        for a in (ts.actor, start.train_state.actor, saved_actor)
    )
    assert all(np.abs(np.asarray(a) - np.asarray(b)).max() > 0 for a, b in zip(now, then))  # trained
    assert any(not np.allclose(a, b) for a, b in zip(now, saved))  # the average, not the parameters
