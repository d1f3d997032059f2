"""The envs under brax's own training wrappers and agents: the wrapped step keeps its structure
(what a scan over it needs) for every env id, wrapped episodes last the wrapper's length and
auto-reset starts them again, our own trajectories are bitwise what they were, and brax's PPO
trains on reacher with the dense reward."""

from __future__ import annotations

import functools
import pathlib

import brax.envs
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import REPO, SAME_STEP_AS, make_env

import envs

FIXTURE = REPO / "tests" / "fixtures" / "vecenv_trajectories.npz"
WRAPPED_LENGTH = 5


def wrapped(env_id: str):
    """brax's own wrappers, as its PPO and SAC wrap an env: vmap, episodes of WRAPPED_LENGTH
    steps, auto-reset, and the evaluator's metrics wrapper on top (the suite's cached env: the
    wrapper's episode length is its own)."""
    return brax.envs.training.EvalWrapper(brax.envs.training.wrap(make_env(env_id), episode_length=WRAPPED_LENGTH))


@pytest.mark.parametrize("env_id", [i for i in envs.ENV_IDS if i not in SAME_STEP_AS])
def test_a_wrapped_step_keeps_the_states_structure(env_id):
    """A brax training loop scans the wrapped step, so its output state must have the input's
    pytree structure: every metric and info entry a wrapper added (the evaluator's
    metrics["reward"], the episode wrapper's counters) survives the env's step. Traced only, for
    one env of each step code (the ids in SAME_STEP_AS step as their partner does)."""
    env = wrapped(env_id)
    state = jax.eval_shape(env.reset, jax.random.split(jax.random.PRNGKey(0), 2))
    stepped = jax.eval_shape(env.step, state, jax.ShapeDtypeStruct((2, env.action_size), jnp.float32))
    assert jax.tree.structure(stepped) == jax.tree.structure(state)
    assert {"reward", "dist", "success"} <= set(stepped.metrics)
    assert jax.tree.map(lambda x: (x.shape, x.dtype), stepped) == jax.tree.map(lambda x: (x.shape, x.dtype), state)


def test_with_goal_and_step_keep_a_wrappers_metric():
    env = make_env("reacher")
    state = env.reset(jax.random.PRNGKey(0))
    state = state.replace(metrics={**state.metrics, "reward": jnp.zeros(())})  # as brax's evaluator adds it
    commanded = env.with_goal(state, state.obs[env.state_dim :] + 0.01)
    stepped = env.step(commanded, jnp.zeros(env.action_size))
    for s in (commanded, stepped):
        assert set(s.metrics) == {"reward", "dist", "success"}


@functools.cache
def wrapped_rollout(env_id: str, steps: int = 12, num_envs: int = 3):
    env = wrapped(env_id)
    first = env.reset(jax.random.split(jax.random.PRNGKey(1), num_envs))
    actions = jax.random.uniform(jax.random.PRNGKey(2), (steps, num_envs, env.action_size), minval=-1, maxval=1)

    def step(state, action):
        state = env.step(state, action)
        record = dict(
            obs=state.obs,
            done=state.done,
            steps=state.info["steps"],
            truncation=state.info["truncation"],
            reward=state.metrics["reward"],
        )
        return state, record

    _, records = jax.jit(lambda s: jax.lax.scan(step, s, actions))(first)
    return first, jax.tree.map(np.asarray, records)


@pytest.mark.parametrize("env_id", ["reacher", "simple_u_maze"])
def test_wrapped_episodes_last_the_wrappers_length_and_start_again(env_id):
    """Twelve steps of episodes of 5: one counter (the episode wrapper's) advances by one per
    step, the episode ends at steps 5 and 10 and no other, and auto-reset brings back the first
    state, as brax's auto-reset does."""
    first, r = wrapped_rollout(env_id)
    ends = [t for t in range(12) if r["done"][t].all()]
    assert ends == [4, 9] and not r["done"][[0, 1, 2, 3, 5, 6, 7, 8, 10, 11]].any()
    np.testing.assert_array_equal(r["steps"][:, 0], [1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2])
    assert (r["truncation"][[4, 9]] == 1).all() and (r["truncation"].sum() == 2 * r["done"].shape[1])
    for t in ends:  # the auto-reset's observation is the episode's first again
        np.testing.assert_array_equal(r["obs"][t], np.asarray(first.obs))
    assert not np.array_equal(r["obs"][3], np.asarray(first.obs))  # and the body did move before it


# ------------------------------------------------------------------ our own trajectories
def vecenv_trajectory(env_id: str) -> dict[str, np.ndarray]:
    """VecEnv with episodes of 10 steps, 4 envs, 25 random steps: resets with fresh goals twice."""
    vec = envs.VecEnv(envs.make(env_id, episode_length=10), 4)
    actions = jax.random.uniform(jax.random.PRNGKey(3), (25, 4, vec.action_size), minval=-1, maxval=1)

    def step(state, action):
        nxt = vec.step(state, action)
        record = dict(
            obs=nxt.obs,
            next_obs=nxt.info["next_obs"],
            reward=nxt.reward,
            done=nxt.done,
            truncation=nxt.info["truncation"],
            episode_id=nxt.info["episode_id"],
            goal=nxt.info["goal"],
        )
        return nxt, record

    _, records = jax.jit(lambda key: jax.lax.scan(step, vec.reset(key), actions))(jax.random.PRNGKey(4))
    return {f"{env_id}/{name}": np.asarray(value) for name, value in records.items()}


@pytest.mark.parametrize("env_id", ["reacher", "simple_u_maze"])
def test_vecenv_trajectories_are_bitwise_what_they_were(env_id):
    """The fixture was written by `vecenv_trajectory` with the envs as they were before they kept
    wrappers' metrics and renamed their step counter (`python -c` in tests/, see
    results/notes/brax_agents.md): the same observations, rewards, ends and goals, bit for bit."""
    expected = np.load(FIXTURE)
    got = vecenv_trajectory(env_id)
    for name, value in got.items():
        np.testing.assert_array_equal(value, expected[name], err_msg=name)
    assert got[f"{env_id}/truncation"].sum() == 2 * 4  # both resets happened


def write_fixture(path: pathlib.Path = FIXTURE) -> None:
    np.savez(path, **vecenv_trajectory("reacher"), **vecenv_trajectory("simple_u_maze"))


# ------------------------------------------------------------------ brax's PPO
def device_put_replicated(tree, devices):
    """jax.device_put_replicated, which brax 0.14.2's agents call and jax 0.10 no longer has: one
    copy of each leaf per device along a new leading axis, spread over those devices."""
    mesh = jax.sharding.Mesh(np.array(devices), ("devices",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("devices"))
    return jax.tree.map(lambda x: jax.device_put(jnp.stack([x] * len(devices)), sharding), tree)


def test_brax_ppo_trains_on_reacher_with_the_dense_reward(monkeypatch):
    """brax's own PPO through its training loop (two evaluations, 2,000 env steps), given
    `envs.make("reacher", dense_reward=True)` as docs/environments.md shows, with the shim above."""
    from brax.training.agents.ppo import train as ppo

    if not hasattr(jax, "device_put_replicated"):
        monkeypatch.setattr(jax, "device_put_replicated", device_put_replicated, raising=False)
    evaluations = []
    _, params, _ = ppo.train(
        environment=envs.make("reacher", dense_reward=True),
        num_timesteps=2000,
        episode_length=20,
        num_envs=8,
        batch_size=8,
        num_minibatches=2,
        unroll_length=5,
        num_updates_per_batch=1,
        num_evals=2,
        num_eval_envs=4,
        seed=0,
        progress_fn=lambda step, metrics: evaluations.append((step, metrics)),
    )
    assert [step for step, _ in evaluations] == [0, 2000]
    for _, metrics in evaluations:
        # the dense reward is -dist at every step: an episode of 20 steps sums to minus 20 mean distances
        assert -20 * 0.5 < float(metrics["eval/episode_reward"]) < 0
        assert {"eval/episode_dist", "eval/episode_success"} <= set(metrics)
    assert all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree.leaves(params))
