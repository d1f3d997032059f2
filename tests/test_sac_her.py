"""algorithms/sac_her.py: the critic target by hand, soft target updates, HER relabelling on
real transitions, bad flags, and learning with HER."""

from __future__ import annotations

import subprocess
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import (
    LEARNING,
    REPO,
    check_her_rewards_are_recomputed_on_real_transitions,
    check_relabelling_discount_is_its_own_flag,
    load_algorithm,
    perturbed,
    random_policy_success,
    random_update_inputs,
    read_scalars,
    train_like_a_user,
)

sac = load_algorithm("sac_her")
SCRIPT = str(REPO / "algorithms" / "sac_her.py")

# A tiny batch: an ordinary step, a truncated step that reached the goal, a terminated step.
REWARD = jnp.array([0.0, 1.0, 0.0])
TERMINATED = jnp.array([0.0, 0.0, 1.0])
NEXT_Q = jnp.array([[1.0, 2.0, 3.0], [0.5, 4.0, 1.0]])  # (critic, batch)


def test_critic_target_by_hand():
    next_log_prob = jnp.array([0.1, 0.2, 0.3])
    target = sac.critic_target(REWARD, TERMINATED, NEXT_Q, next_log_prob, 0.5, 0.9)
    # min(1, .5) - .5 * .1 = .45 -> .9 * .45; truncated: 1 + .9 * (2 - .1); terminated: no bootstrap
    np.testing.assert_allclose(target, [0.405, 2.71, 0.0], rtol=1e-6)


def test_soft_updates_the_target_critics():
    args, init, update, batch = random_update_inputs(sac)
    ts = init(jax.random.PRNGKey(0))
    old_target = perturbed(ts.critic, jax.random.PRNGKey(5))
    ts = eqx.tree_at(lambda t: t.target_critic, ts, old_target)
    new, metrics = update(ts, batch, jax.random.PRNGKey(6))
    expected = jax.tree.map(lambda c, t: args.tau * c + (1 - args.tau) * t, new.critic, old_target)
    for got, want in zip(jax.tree.leaves(new.target_critic), jax.tree.leaves(expected)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    assert {"qf1_loss", "qf2_loss", "actor_loss", "alpha", "entropy"} <= set(metrics)


def test_her_rewards_are_recomputed_from_the_next_state_on_real_transitions():
    check_her_rewards_are_recomputed_on_real_transitions(sac)


def test_relabelling_discount_is_its_own_flag():
    check_relabelling_discount_is_its_own_flag(sac)


def test_bad_relabel_ratio_exits_2(tmp_path):
    command = [sys.executable, SCRIPT, "--relabel-ratio", "1.5", "--run-root", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "--relabel-ratio" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_learns_with_her_well_above_a_random_policy(tmp_path):
    """Sparse rewards: with HER, SAC reaches goals well above a random policy (0.008) by the end
    of the budget. The deterministic policy finds the goal late (seeds 1, 2, 3 were at 0.000-0.004
    at 512k env steps and 0.20, 0.27, 0.38 at 640k: results/benchmark/cpu-small/evals.csv), so
    the final evaluation is compared. Plain SAC (--relabel-ratio 0) on the same budget and seed
    ends at 0.000 (results/notes/test_suite.md, with its command), so a relabelling that stopped
    working would fail here too."""
    random_success = random_policy_success(LEARNING["env_id"], LEARNING["episode_length"], 256, seed=0)
    (run_dir,) = train_like_a_user("sac_her", tmp_path, **LEARNING)
    curve = [e.value for e in read_scalars(run_dir).Scalars("eval/success_rate")]
    print(f"random policy success {random_success:.3f}; sac_her eval success curve {[round(v, 3) for v in curve]}")
    assert curve[-1] >= 0.15 and curve[-1] >= 10 * random_success, (random_success, curve)
