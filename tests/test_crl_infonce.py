"""algorithms/crl_infonce.py: losses against NumPy, the actor density, schedule arithmetic, bad flags, a
non-finite loss, learning."""

from __future__ import annotations

import glob
import os
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
    SUITE_ONLY_FLAG,
    TINY,
    USER_XLA_FLAGS,
    as_flags,
    load_algorithm,
    random_policy_success,
    read_scalars,
    train_like_a_user,
    user_process_env,
)

from algorithms import run
from envs.base import FUSION_FLAG, SCHEDULER_FLAG

crl = load_algorithm("crl_infonce")
SCRIPT = str(REPO / "algorithms" / "crl_infonce.py")

ENERGY_FNS = ["norm", "l2", "l1", "dot", "cosine"]  # mrn and iqe: test_quasimetric.py
LOSSES = ["fwd_infonce", "bwd_infonce", "sym_infonce", "binary_nce"]


# ------------------------------------------------------------------ NumPy references
def np_energy(phi, psi, kind):
    """Slow pairwise loop: l_ij = f(phi_i, psi_j)."""
    n = phi.shape[0]
    out = np.zeros((n, psi.shape[0]))
    for i in range(n):
        for j in range(psi.shape[0]):
            d = phi[i].astype(np.float64) - psi[j]
            if kind == "norm":
                out[i, j] = -np.sqrt(np.sum(d**2) + 1e-6)
            elif kind == "l2":
                out[i, j] = -np.sum(d**2)
            elif kind == "l1":
                out[i, j] = -np.sum(np.abs(d))
            elif kind == "dot":
                out[i, j] = phi[i] @ psi[j]
            else:
                out[i, j] = phi[i] @ psi[j] / (np.linalg.norm(phi[i]) * np.linalg.norm(psi[j]))
    return out


def np_logsumexp(x, axis):
    m = x.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(axis=axis, keepdims=True))).squeeze(axis)


def np_loss(logits, kind):
    n = logits.shape[0]
    if kind == "fwd_infonce":
        return -np.mean([logits[i, i] - np_logsumexp(logits[i], 0) for i in range(n)])
    if kind == "bwd_infonce":
        return -np.mean([logits[j, j] - np_logsumexp(logits[:, j], 0) for j in range(n)])
    if kind == "sym_infonce":
        return np_loss(logits, "fwd_infonce") + np_loss(logits, "bwd_infonce")
    sigmoid = 1 / (1 + np.exp(-logits))
    positives = -np.mean([np.log(sigmoid[i, i]) for i in range(n)])
    negatives = -np.mean([np.log(1 - sigmoid[i, j]) for i in range(n) for j in range(n) if i != j])
    return positives + negatives


@pytest.mark.parametrize("kind", ENERGY_FNS)
def test_energy_functions_match_reference(kind):
    rng = np.random.default_rng(0)
    phi, psi = rng.normal(size=(7, 5)).astype(np.float32), rng.normal(size=(7, 5)).astype(np.float32)
    psi[2] = phi[2]  # one exact positive: distance 0
    expected = np_energy(phi, psi, kind)
    np.testing.assert_allclose(
        crl.Energy(kind).pairwise(jnp.asarray(phi), jnp.asarray(psi)), expected, rtol=1e-4, atol=2e-4
    )
    np.testing.assert_allclose(
        crl.Energy(kind).paired(jnp.asarray(phi), jnp.asarray(psi)), np.diag(expected), rtol=1e-4, atol=2e-4
    )


def test_cosine_is_normalised_per_pair():
    phi = jnp.array([[1.0, 0.0], [10.0, 0.0]])
    psi = jnp.array([[3.0, 0.0], [0.0, 0.5]])
    np.testing.assert_allclose(crl.Energy("cosine").pairwise(phi, psi), [[1.0, 0.0], [1.0, 0.0]], atol=1e-6)


@pytest.mark.parametrize("kind", LOSSES)
def test_contrastive_losses_match_reference(kind):
    rng = np.random.default_rng(1)
    logits = rng.normal(scale=3.0, size=(6, 6)).astype(np.float32)
    np.testing.assert_allclose(float(crl.contrastive_loss(jnp.asarray(logits), kind)), np_loss(logits, kind), rtol=1e-5)
    # raising a positive logit lowers every loss; raising a negative one raises it
    up_pos = logits.copy()
    up_pos[2, 2] += 1.0
    up_neg = logits.copy()
    up_neg[2, 3] += 1.0
    assert crl.contrastive_loss(jnp.asarray(up_pos), kind) < crl.contrastive_loss(jnp.asarray(logits), kind)
    assert crl.contrastive_loss(jnp.asarray(up_neg), kind) > crl.contrastive_loss(jnp.asarray(logits), kind)


def test_critic_loss_adds_the_logsumexp_penalty_and_reports_metrics():
    args = crl.Args(width=16, depth=1, repr_dim=4, logsumexp_penalty=0.3)
    critic = crl.Critic(3, 2, 2, args, jax.random.PRNGKey(0))
    state, action, goal = (jax.random.normal(jax.random.PRNGKey(i), (5, d)) for i, d in [(1, 3), (2, 2), (3, 2)])
    loss, metrics = crl.critic_loss_fn(critic, state, action, jax.vmap(critic.psi)(goal), args)
    phi = np.asarray(jax.vmap(critic.phi)(state, action))
    psi = np.asarray(jax.vmap(critic.psi)(goal))
    logits = np_energy(phi, psi, "norm")
    lse = np_logsumexp(logits, 1)
    np.testing.assert_allclose(float(loss), np_loss(logits, "fwd_infonce") + 0.3 * np.mean(lse**2), rtol=1e-4)
    np.testing.assert_allclose(float(metrics["logits_pos"]), np.mean(np.diag(logits)), rtol=1e-4)
    np.testing.assert_allclose(float(metrics["logsumexp"]), np.mean(lse), rtol=1e-4)
    np.testing.assert_allclose(float(metrics["categorical_accuracy"]), np.mean(logits.argmax(1) == np.arange(5)))


@pytest.mark.parametrize("tanh_log_prob", ["exact", "capped"])
def test_actor_log_prob_matches_a_numerical_density(tanh_log_prob):
    """log pi(a) of the tanh-Gaussian equals the Gaussian density of atanh(a) minus log|da/du|
    (`capped`: minus JaxGCRL's log(1 - tanh(u)^2 + 1e-6))."""
    args = crl.Args(width=8, depth=1, tanh_log_prob=tanh_log_prob)
    actor = crl.Actor(4, 2, args, jax.random.PRNGKey(0))
    obs = jnp.arange(4.0) / 4
    action, log_prob = actor.sample(obs, jax.random.PRNGKey(1))
    mean, log_std = (np.asarray(x, np.float64) for x in actor.dist(obs))
    u = np.arctanh(np.asarray(action, np.float64))
    std = np.exp(log_std)
    jacobian = np.log(1 - np.tanh(u) ** 2 + (1e-6 if tanh_log_prob == "capped" else 0.0))
    expected = np.sum(-0.5 * ((u - mean) / std) ** 2 - log_std - 0.5 * np.log(2 * np.pi) - jacobian)
    np.testing.assert_allclose(float(log_prob), expected, rtol=1e-3)
    assert -5.0 <= log_std.min() and log_std.max() <= 2.0


def test_capped_tanh_log_prob_limits_the_penalty_of_a_saturated_action():
    """With a mean far in tanh's tail, the exact correction keeps growing with |u| while the
    capped one stops at -log(1e-6) = 13.8 per dimension: a saturated policy looks more random."""
    log_probs = {}
    for kind in ("exact", "capped"):
        actor = crl.Actor(4, 2, crl.Args(width=8, depth=1, tanh_log_prob=kind), jax.random.PRNGKey(0))
        # every output of the net: mean 30 (both dimensions), log_std at its floor
        actor = jax.tree_util.tree_map(jnp.zeros_like, actor)
        actor = eqx.tree_at(lambda a: a.net.out.bias, actor, jnp.array([30.0, 30.0, -50.0, -50.0]))
        log_probs[kind] = float(actor.sample(jnp.zeros(4), jax.random.PRNGKey(1))[1])
    gaussian = 2 * (5.0 - 0.5 * np.log(2 * np.pi))  # log N(u | mean, e^-5) at u ~ mean, both dims
    assert log_probs["capped"] == pytest.approx(gaussian + 2 * 6 * np.log(10), abs=0.5)
    assert log_probs["exact"] == pytest.approx(gaussian + 2 * (2 * 30 - 2 * np.log(2)), abs=0.5)


# ------------------------------------------------------------------ schedule and bad flags
def test_schedule_reaches_total_timesteps():
    env = crl.envs.make("reacher")
    args = crl.Args(num_envs=8, unroll_length=10, total_timesteps=1005, num_evals=3, learning_starts=20, batch_size=16)
    schedule = run.make_schedule(args, env)
    assert schedule.final_env_steps >= 1005 > schedule.final_env_steps - 80
    assert schedule.eval_boundaries[0] == 0 and schedule.eval_boundaries[-1] == schedule.training_steps
    assert schedule.updates_per_rollout == round(8 * 49 / 16)
    assert schedule.buffer_rows % 10 == 0


BAD_FLAGS = [
    (["--batch-size", "10000000"], "--batch-size"),
    (["--buffer-size", "100", "--learning-starts", "500"], "--learning-starts"),
    (["--num-evals", "50", "--total-timesteps", "1000", "--learning-starts", "0"], "--num-evals"),
    (["--contrastive-loss", "triplet"], "contrastive"),
    (["--env-id", "reachr"], "reacher"),
    (["--num-envs", "0"], "--num-envs"),
    (["--eval-task-episodes", "0"], "--eval-task-episodes must be at least 1"),
    (["--maze-start", "anywhere"], "applies to the maze envs only"),
    (["--energy-fn", "mrn", "--repr-dim", "12"], "(got --repr-dim 12,"),
    (["--energy-fn", "iqe", "--iqe-dim", "5"], "(got --repr-dim 64, --iqe-dim 5)"),
    (["--optimizer", "splus", "--splus-b2", "1.0"], "--splus-b2 must be in [0, 1)"),
    (["--total-timesteps", "60000", "--num-envs", "64"], "ends before learning starts: --learning-starts"),
]


@pytest.mark.parametrize("flags,expected", BAD_FLAGS)
def test_bad_flags_exit_2_with_a_readable_message(flags, expected, tmp_path):
    result = subprocess.run(
        [sys.executable, SCRIPT, *flags, "--run-root", str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert not os.listdir(tmp_path)  # nothing created for a run that cannot start


# ------------------------------------------------------------------ learning
def test_learning_runs_start_with_the_users_xla_flags_not_the_suites():
    """The learning runs' process gets the XLA_FLAGS the suite started with. Under xdist a worker
    inherits XLA_FLAGS with the suite's flags already added, so reading the user's flags there
    would hand the learning runs all of them (and their numbers would differ from a user's)."""
    assert SUITE_ONLY_FLAG in os.environ["XLA_FLAGS"]  # this process runs with the suite's flags
    child = user_process_env().get("XLA_FLAGS", "").split()
    assert SUITE_ONLY_FLAG not in child, (
        "the learning runs would get the suite's own flag: USER_XLA_FLAGS was read after the suite "
        "added it, or the suite was started with it in XLA_FLAGS"
    )
    user = (USER_XLA_FLAGS or "").split()
    for flag in (FUSION_FLAG, SCHEDULER_FLAG):
        assert (flag in child) == (flag in user), flag


@pytest.mark.slow
def test_learns_to_reach_goals_well_above_a_random_policy(tmp_path):
    random_success = random_policy_success(LEARNING["env_id"], LEARNING["episode_length"], 256, seed=0)
    # The same run as cpu-small's (results/benchmark/cpu-small/README.md): seeds 1, 2, 3 ended at
    # 0.34, 0.29, 0.50, against the random policy's 0.008. With half the gradient steps
    # (--updates-per-rollout 100) they ended at 0.14, 0.34, 0.38, too close to a threshold.
    (run_dir,) = train_like_a_user("crl_infonce", tmp_path, **LEARNING)
    curve = [e.value for e in read_scalars(run_dir).Scalars("eval/success_rate")]
    print(f"random policy success {random_success:.3f}; crl_infonce eval success curve {[round(v, 3) for v in curve]}")
    assert curve[-1] >= 0.2 and curve[-1] >= 10 * random_success, (random_success, curve)


@pytest.mark.slow  # a fresh process compiles a whole run
def test_nan_loss_stops_with_a_message_naming_the_step_and_the_loss(tmp_path):
    flags = as_flags(TINY)
    result = subprocess.run(
        [
            sys.executable,
            SCRIPT,
            *flags,
            "--total-timesteps=400",
            "--num-evals=2",
            f"--run-root={tmp_path}",
            "--critic-lr=1e12",
            "--actor-lr=1e12",
            "--save-model",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert "non-finite" in result.stderr and "losses/critic_loss" in result.stderr and "env step 200" in result.stderr
    assert "Traceback" not in result.stderr
    assert not glob.glob(str(tmp_path / "*" / "*.eqx"))  # no model written from a diverged run
