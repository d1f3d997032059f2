"""algorithms/sac_her.py and algorithms/td3_her.py: critic targets, soft updates, TD3's delayed
target policy, HER relabelling on real transitions, compile-once, smoke and learning."""

from __future__ import annotations

import glob
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import REPO, load_algorithm
from test_crl_infonce import TINY, random_policy_success, read_scalars

from buffers import Batch

sac = load_algorithm("sac_her")
td3 = load_algorithm("td3_her")
BASELINE_TINY = {k: v for k, v in TINY.items() if k != "repr_dim"}

# A tiny batch: an ordinary step, a truncated step that reached the goal, a terminated step.
REWARD = jnp.array([0.0, 1.0, 0.0])
TERMINATED = jnp.array([0.0, 0.0, 1.0])
NEXT_Q = jnp.array([[1.0, 2.0, 3.0], [0.5, 4.0, 1.0]])  # (critic, batch)
GAMMA = 0.9


def test_sac_critic_target_by_hand():
    next_log_prob = jnp.array([0.1, 0.2, 0.3])
    target = sac.critic_target(REWARD, TERMINATED, NEXT_Q, next_log_prob, 0.5, GAMMA)
    # min(1, .5) - .5 * .1 = .45 -> .9 * .45; truncated: 1 + .9 * (2 - .1); terminated: no bootstrap
    np.testing.assert_allclose(target, [0.405, 2.71, 0.0], rtol=1e-6)


def test_td3_critic_target_by_hand():
    np.testing.assert_allclose(td3.critic_target(REWARD, TERMINATED, NEXT_Q, GAMMA), [0.45, 2.8, 0.0], rtol=1e-6)


def test_td3_target_policy_smoothing_noise_is_clipped():
    args = td3.Args(width=8, depth=1, policy_noise=100.0, noise_clip=0.05)
    actor = td3.Actor(4, 3, args, jax.random.PRNGKey(0))
    next_obs = jax.random.normal(jax.random.PRNGKey(1), (64, 4))
    mean = jax.vmap(actor)(next_obs)
    action = td3.target_action(actor, next_obs, jax.random.PRNGKey(2), args)
    assert np.all(np.abs(action - mean) <= 0.05 + 1e-6) and np.all(np.abs(action) <= 1.0)
    assert np.abs(action - mean).max() > 0.04  # the noise is there, at its clip


def _make_state(module):
    """One train state from a tiny config, plus a batch of random transitions."""
    args = module.Args(**BASELINE_TINY)
    obs_dim, action_dim = 6, 2
    actor = module.Actor(obs_dim, action_dim, args, jax.random.PRNGKey(0))
    critic = module.make_critic(obs_dim, action_dim, args, jax.random.PRNGKey(1))
    keys = jax.random.split(jax.random.PRNGKey(2), 4)
    batch = Batch(
        obs=jax.random.normal(keys[0], (16, obs_dim)),
        action=jax.random.uniform(keys[1], (16, action_dim), minval=-1, maxval=1),
        next_obs=jax.random.normal(keys[2], (16, obs_dim)),
        terminated=jnp.zeros(16),
        truncated=jnp.zeros(16),
        future_goal=jnp.zeros((16, 2)),
        reward=(jax.random.uniform(keys[3], (16,)) < 0.3).astype(jnp.float32),
        relabelled=jnp.zeros(16, bool),
    )
    return args, actor, critic, batch


def _perturbed(tree, key, scale=0.3):
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(treedef, [x + scale * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)])


def test_sac_soft_updates_the_target_critics():
    args, actor, critic, batch = _make_state(sac)
    update, (actor_opt, critic_opt, alpha_opt) = sac.make_update(args, -1.0)
    old_target = _perturbed(critic, jax.random.PRNGKey(5))
    ts = sac.TrainState(
        actor, critic, old_target, jnp.zeros(()),
        actor_opt.init(actor), critic_opt.init(critic), alpha_opt.init(jnp.zeros(())),
        jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32),
    )  # fmt: skip
    new, metrics = update(ts, batch, jax.random.PRNGKey(6))
    expected = jax.tree.map(lambda c, t: args.tau * c + (1 - args.tau) * t, new.critic, old_target)
    for got, want in zip(jax.tree.leaves(new.target_critic), jax.tree.leaves(expected)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    assert set(sac.LOSS_TAGS) == set(metrics)


def test_td3_target_policy_moves_from_the_previous_target_and_waits_for_the_delay():
    args, actor, critic, batch = _make_state(td3)
    update, (actor_opt, critic_opt) = td3.make_update(args)
    old_target_actor = _perturbed(actor, jax.random.PRNGKey(7))
    old_target_critic = _perturbed(critic, jax.random.PRNGKey(8))
    ts = td3.TrainState(
        actor, old_target_actor, critic, old_target_critic,
        actor_opt.init(actor), critic_opt.init(critic), jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32),
    )  # fmt: skip
    first, metrics = update(ts, batch, jax.random.PRNGKey(9))  # grad step 0: a delayed-update step
    assert float(metrics["actor_updated"]) == 1.0
    expected = jax.tree.map(lambda a, t: args.tau * a + (1 - args.tau) * t, first.actor, old_target_actor)
    wrong = jax.tree.map(lambda a, t: args.tau * a + (1 - args.tau) * t, first.actor, actor)  # from the online one
    for got, want in zip(jax.tree.leaves(first.target_actor), jax.tree.leaves(expected)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    assert any(not np.allclose(g, b) for g, b in zip(jax.tree.leaves(first.target_actor), jax.tree.leaves(wrong)))
    second, metrics = update(first, batch, jax.random.PRNGKey(10))  # grad step 1: critic only
    assert float(metrics["actor_updated"]) == 0.0
    for a, b in zip(jax.tree.leaves((second.actor, second.target_actor, second.target_critic)),
                    jax.tree.leaves((first.actor, first.target_actor, first.target_critic))):  # fmt: skip
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(second.critic), jax.tree.leaves(first.critic)))


@pytest.mark.parametrize("module", [sac, td3], ids=["sac", "td3"])
def test_her_rewards_are_recomputed_from_the_next_state_on_real_transitions(module):
    args = module.Args(**BASELINE_TINY, relabel_ratio=0.5)
    env = module.envs.make("reacher")
    schedule = module.make_schedule(args, env)
    init, chunk, buffer, _ = module.make_train(args, env, schedule)
    carry, _ = jax.jit(chunk)(jax.jit(init)(jax.random.PRNGKey(0)), jnp.int32(6))  # 6 rollouts of 10 steps
    batch = buffer.sample_her(carry[3], jax.random.PRNGKey(1), 4000, args.relabel_ratio, env.goal_reach_thresh)
    relabelled = np.asarray(batch.relabelled)
    assert abs(relabelled.mean() - 0.5) < 4 * np.sqrt(0.25 / relabelled.size)
    goal = batch.obs[:, env.state_dim :]
    np.testing.assert_array_equal(goal[relabelled], batch.future_goal[relabelled])
    success = jax.vmap(lambda s, g: env._goal_metrics(s, g)[1])(batch.next_obs[:, : env.state_dim], goal)
    np.testing.assert_array_equal(batch.reward, success)
    assert batch.reward[relabelled].mean() > batch.reward[~relabelled].mean()  # hindsight goals are reached


@pytest.mark.parametrize("module", [sac, td3], ids=["sac", "td3"])
def test_relabelling_discount_is_its_own_flag(module):
    """--gamma 0.9 (JaxGCRL's critic discount) leaves HER's goal distribution at 0.99 unless
    --relabel-gamma says otherwise; gamma 1 (uniform) is accepted, beyond 1 is refused."""
    env = module.make_env(module.Args(**BASELINE_TINY))
    for flags, expected in [
        ({"gamma": 0.9}, 0.99),
        ({"gamma": 0.9, "relabel_gamma": 0.5}, 0.5),
        ({"relabel_gamma": 1.0}, 1.0),
    ]:
        args = module.Args(**BASELINE_TINY, **flags)
        _, _, buffer, _ = module.make_train(args, env, module.make_schedule(args, env))
        assert buffer.gamma == expected, flags
    with pytest.raises(module.ConfigError, match="--relabel-gamma"):
        module.make_schedule(module.Args(**BASELINE_TINY, relabel_gamma=1.5), env)


@pytest.mark.parametrize("module", [sac, td3], ids=["sac", "td3"])
def test_training_chunk_compiles_once(module, tmp_path):
    before = module.CHUNK_TRACES[0]
    module.main(module.Args(**BASELINE_TINY, total_timesteps=4 * 10 * 7, num_evals=3, run_root=str(tmp_path)))
    assert module.CHUNK_TRACES[0] - before == 1


@pytest.mark.parametrize("name", ["sac_her", "td3_her"])
def test_smoke_subprocess_writes_every_tag_and_reaches_total_timesteps(name, tmp_path):
    total = 1234
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in BASELINE_TINY.items()]
    result = subprocess.run(
        [sys.executable, str(REPO / "algorithms" / f"{name}.py"), *flags, f"--total-timesteps={total}",
         "--num-evals=2", f"--run-root={tmp_path}", "--save-model", "--capture-video"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = glob.glob(str(tmp_path / f"reacher__{name}__1__*"))
    events = read_scalars(run_dir)
    tags = set(events.Tags()["scalars"])
    expected = {"charts/SPS", "charts/episodic_return", "eval/success_rate", "eval/time_at_goal",
                "eval/final_distance", "eval/episodic_return", "losses/qf1_loss", "losses/qf2_loss",
                "losses/qf1_values", "losses/qf2_values", "losses/actor_loss"}  # fmt: skip
    if name == "sac_her":
        expected |= {"losses/alpha", "losses/alpha_loss"}
    assert expected <= tags, expected - tags
    assert max(e.step for e in events.Scalars("eval/success_rate")) >= total
    assert glob.glob(f"{run_dir}/*.eqx") and glob.glob(f"{run_dir}/videos/*.gif")


def test_bad_flags_exit_2(tmp_path):
    for name, flags, expected in [
        ("sac_her", ["--relabel-ratio", "1.5"], "--relabel-ratio"),
        ("td3_her", ["--policy-frequency", "0"], "--policy-frequency"),
    ]:
        result = subprocess.run(
            [sys.executable, str(REPO / "algorithms" / f"{name}.py"), *flags, "--run-root", str(tmp_path)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert result.returncode == 2 and expected in result.stderr and "Traceback" not in result.stderr


# ------------------------------------------------------------------ learning
SAC_LEARNING = dict(
    env_id="simple_u_maze", episode_length=200, num_envs=256, unroll_length=50, total_timesteps=1_280_000,
    learning_starts=200, num_evals=4, num_eval_envs=256, seed=1,
)  # fmt: skip


def test_sac_with_her_learns_and_beats_sac_without_her(tmp_path):
    """Sparse rewards: with HER, SAC reaches goals well above a random policy; with
    --relabel-ratio 0 (plain SAC on the same budget and seed) it does clearly worse."""
    random_success = random_policy_success(SAC_LEARNING["env_id"], SAC_LEARNING["episode_length"], 256, seed=0)
    curves = {}
    for ratio in (0.8, 0.0):
        (run_dir,) = sac.main(sac.Args(**SAC_LEARNING, relabel_ratio=ratio, run_root=str(tmp_path / str(ratio))))
        curves[ratio] = [e.value for e in read_scalars(run_dir).Scalars("eval/success_rate")]
    print(f"random {random_success:.3f}; sac+her {curves[0.8]}; sac without her {curves[0.0]}")
    her, plain = np.mean(curves[0.8][-2:]), np.mean(curves[0.0][-2:])
    assert her >= 0.3 and her >= 3 * random_success, (random_success, curves)
    assert her >= plain + 0.2, curves
