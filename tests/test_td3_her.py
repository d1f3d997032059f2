"""algorithms/td3_her.py: the critic target by hand, clipped target-policy smoothing, the delayed
target policy, HER relabelling on real transitions, and bad flags."""

from __future__ import annotations

import subprocess
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from conftest import (
    REPO,
    check_her_rewards_are_recomputed_on_real_transitions,
    check_relabelling_discount_is_its_own_flag,
    load_algorithm,
    perturbed,
    random_update_inputs,
)

td3 = load_algorithm("td3_her")
SCRIPT = str(REPO / "algorithms" / "td3_her.py")


def test_critic_target_by_hand():
    reward, terminated = jnp.array([0.0, 1.0, 0.0]), jnp.array([0.0, 0.0, 1.0])
    next_q = jnp.array([[1.0, 2.0, 3.0], [0.5, 4.0, 1.0]])  # (critic, batch)
    # min(1, .5) -> .9 * .5; truncated: 1 + .9 * 2; terminated: no bootstrap
    np.testing.assert_allclose(td3.critic_target(reward, terminated, next_q, 0.9), [0.45, 2.8, 0.0], rtol=1e-6)


def test_target_policy_smoothing_noise_is_clipped():
    args = td3.Args(width=8, depth=1, policy_noise=100.0, noise_clip=0.05)
    actor = td3.Actor(4, 3, args, jax.random.PRNGKey(0))
    next_obs = jax.random.normal(jax.random.PRNGKey(1), (64, 4))
    mean = jax.vmap(actor)(next_obs)
    action = td3.target_action(actor, next_obs, jax.random.PRNGKey(2), args)
    assert np.all(np.abs(action - mean) <= 0.05 + 1e-6) and np.all(np.abs(action) <= 1.0)
    assert np.abs(action - mean).max() > 0.04  # the noise is there, at its clip


def test_target_policy_moves_from_the_previous_target_and_waits_for_the_delay():
    args, init, update, batch = random_update_inputs(td3)
    ts = init(jax.random.PRNGKey(0))
    actor = ts.actor
    old_target_actor = perturbed(actor, jax.random.PRNGKey(7))
    old_target_critic = perturbed(ts.critic, jax.random.PRNGKey(8))
    ts = eqx.tree_at(lambda t: (t.target_actor, t.target_critic), ts, (old_target_actor, old_target_critic))
    first, metrics = update(ts, batch, jax.random.PRNGKey(9))  # grad step 0: a delayed-update step
    assert float(metrics["actor_updated"]) == 1.0
    expected = jax.tree.map(lambda a, t: args.tau * a + (1 - args.tau) * t, first.actor, old_target_actor)
    wrong = jax.tree.map(lambda a, t: args.tau * a + (1 - args.tau) * t, first.actor, actor)  # from the online one
    for got, want in zip(jax.tree.leaves(first.target_actor), jax.tree.leaves(expected)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    assert any(not np.allclose(g, b) for g, b in zip(jax.tree.leaves(first.target_actor), jax.tree.leaves(wrong)))
    second, metrics = update(first, batch, jax.random.PRNGKey(10))  # grad step 1: critic only
    assert float(metrics["actor_updated"]) == 0.0
    unchanged = (second.actor, second.target_actor, second.target_critic)
    for a, b in zip(
        jax.tree.leaves(unchanged), jax.tree.leaves((first.actor, first.target_actor, first.target_critic))
    ):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(second.critic), jax.tree.leaves(first.critic)))


def test_her_rewards_are_recomputed_from_the_next_state_on_real_transitions():
    check_her_rewards_are_recomputed_on_real_transitions(td3)


def test_relabelling_discount_is_its_own_flag():
    check_relabelling_discount_is_its_own_flag(td3)


def test_bad_policy_frequency_exits_2(tmp_path):
    command = [sys.executable, SCRIPT, "--policy-frequency", "0", "--run-root", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "--policy-frequency" in result.stderr and "Traceback" not in result.stderr
