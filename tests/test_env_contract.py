"""The env contract (docs/environments.md) for every registered id: sizes, goal indices,
post-step metrics, the success threshold, fresh goals on auto-reset, the achieved goal following
the body; and the XLA settings an env needs on CPU.

Each env is compiled once: one jitted function resets a small batch and runs 100 random steps
through `VecEnv` with a short episode length (so that auto-resets happen), and every contract
test reads that rollout (`conftest.rollout`). An id that is another id with a different maze
layout or goal region (the same class and step code, other constants: SAME_STEP_AS) is checked
at reset only, where those constants act (sizes, goal indices, the threshold, distinct goals):
its rollout would compile the same step again, 20-70 s cold per id.
"""

from __future__ import annotations

import functools
import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import EPISODE_LENGTH, FIRST_OF_FAMILY, NUM_ENVS, NUM_STEPS, SAME_STEP_AS, first_states, make_env, rollout

import envs

ALL_IDS = envs.ENV_IDS
EVERY_ID = [pytest.param(i, marks=() if i in FIRST_OF_FAMILY else pytest.mark.slow) for i in ALL_IDS]
STEPPED = [p for p in EVERY_ID if p.values[0] not in SAME_STEP_AS]


def first_of(env_id: str):
    """The rollout's first states; for an id in SAME_STEP_AS, from its compiled reset alone."""
    return first_states(env_id) if env_id in SAME_STEP_AS else rollout(env_id)[0]


def test_same_step_as_pairs_differ_only_in_constructor_constants():
    for variant, stepped in SAME_STEP_AS.items():
        assert stepped not in SAME_STEP_AS and type(make_env(variant)) is type(make_env(stepped))
        a, b = envs._REGISTRY[variant], envs._REGISTRY[stepped]
        assert a[0] is b[0] and a[1].keys() == b[1].keys(), variant


def test_registry_lists_sorted_ids_and_aliases():
    assert list(envs.ENV_IDS) == sorted(envs.ENV_IDS)
    for alias, target in envs.ALIASES.items():
        assert envs.make(alias).env_id == target
    assert envs.make("ant_maze").env_id == "ant_u_maze"


def test_unknown_env_id_lists_valid_ids_and_suggests_closest():
    with pytest.raises(ValueError) as error:
        envs.make("ant_u_maz")
    message = str(error.value)
    assert "Did you mean 'ant_u_maze'?" in message
    for env_id in envs.ENV_IDS:
        assert env_id in message
    with pytest.raises(ValueError, match="backend"):
        envs.make("reacher", backend="bullet")


@pytest.mark.parametrize("env_id", EVERY_ID)
def test_sizes_and_goal_indices(env_id):
    env = make_env(env_id)
    first = first_of(env_id)
    assert env.observation_size == env.state_dim + env.goal_dim
    assert first.obs.shape == (NUM_ENVS, env.observation_size)
    assert env.goal_dim == len(env.goal_indices) and all(0 <= i < env.state_dim for i in env.goal_indices)
    # the goal part of obs is the commanded goal
    np.testing.assert_array_equal(first.obs[..., env.state_dim :], first.info["goal"])
    if env_id not in SAME_STEP_AS:  # and stays so on every step
        _, records = rollout(env_id)
        np.testing.assert_array_equal(records["obs"][..., env.state_dim :], records["goal"])


@pytest.mark.parametrize("env_id", STEPPED)
def test_no_nan_or_inf_over_random_steps(env_id):
    _, records = rollout(env_id)
    for name in ("obs", "next_obs", "reward", "dist"):
        assert np.isfinite(records[name]).all(), name


@pytest.mark.parametrize("env_id", STEPPED)
def test_metrics_are_post_step_and_success_is_dist_below_threshold(env_id):
    env = make_env(env_id)
    _, records = rollout(env_id)
    next_obs = records["next_obs"]
    achieved, goal = next_obs[..., list(env.goal_indices)], next_obs[..., env.state_dim :]
    if env_id == "arm_grasp":  # (fingertip midpoint xyz, opening): both must match
        dist = np.linalg.norm(achieved[..., :3] - goal[..., :3], axis=-1)
        success = (dist < env.goal_reach_thresh) & (np.abs(achieved[..., 3] - goal[..., 3]) < 0.02)
    else:
        dist = np.linalg.norm(achieved - goal, axis=-1)
        success = dist < env.goal_reach_thresh
    np.testing.assert_allclose(records["dist"], dist, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(records["success"], success.astype(np.float32))
    np.testing.assert_array_equal(records["reward"], records["success"])  # sparse by default


@pytest.mark.parametrize("env_id", EVERY_ID)
def test_success_flips_exactly_at_threshold(env_id):
    env = make_env(env_id)
    first = first_of(env_id)
    state_part = first.obs[0, : env.state_dim]
    achieved = state_part[jnp.array(env.goal_indices)]
    direction = jnp.zeros(env.goal_dim).at[0].set(1.0)
    thresh = env.goal_reach_thresh
    below = env._goal_metrics(state_part, achieved + direction * thresh * (1 - 1e-3))
    above = env._goal_metrics(state_part, achieved + direction * thresh * (1 + 1e-3))
    assert float(below[1]) == 1.0 and float(above[1]) == 0.0
    assert float(env._goal_metrics(state_part, achieved)[1]) == 1.0
    if env_id == "arm_grasp":  # the opening must also be within 0.02 of the goal's
        opening = jnp.zeros(env.goal_dim).at[3].set(1.0)
        assert float(env._goal_metrics(state_part, achieved + 0.019 * opening)[1]) == 1.0
        assert float(env._goal_metrics(state_part, achieved + 0.021 * opening)[1]) == 0.0


@pytest.mark.parametrize("env_id", EVERY_ID)
def test_different_keys_give_different_goals(env_id):
    first = first_of(env_id)
    goals = np.asarray(first.info["goal"])
    if make_env(env_id).fixed_goal:  # one goal by definition (cheetah): the starts must differ
        assert len(np.unique(goals, axis=0)) == 1
        assert len({tuple(o) for o in np.asarray(first.obs).round(5)}) == NUM_ENVS
        return
    assert len({tuple(g) for g in goals.round(5)}) > 1  # NUM_ENVS resets from distinct keys


@pytest.mark.parametrize("env_id", STEPPED)
def test_auto_reset_draws_fresh_goals_and_keeps_the_final_observation(env_id):
    env = make_env(env_id)
    _, r = rollout(env_id)
    ended = (r["done"] > 0) | (r["truncation"] > 0)
    assert ended.sum() >= NUM_ENVS * (NUM_STEPS // EPISODE_LENGTH) // 2
    assert not ((r["done"] > 0) & (r["truncation"] > 0)).any()  # termination and truncation stay apart
    # episode ids count resets; obs after a non-final step is the true next obs
    np.testing.assert_array_equal(r["new_episode_id"], r["episode_id"] + ended)
    np.testing.assert_array_equal(r["new_obs"][~ended], r["next_obs"][~ended])
    # the pre-reset next_obs still carries the old goal; the new obs carries the new one
    np.testing.assert_array_equal(r["next_obs"][..., env.state_dim :], r["goal"])
    np.testing.assert_array_equal(r["new_obs"][..., env.state_dim :], r["new_goal"])
    # over all resets, the goal (or, for a fixed-goal task, the start) changes
    if env.fixed_goal:
        changed = np.any(np.abs(r["new_obs"] - r["next_obs"]) > 1e-6, axis=-1)
    else:
        changed = np.any(np.abs(r["new_goal"] - r["goal"]) > 1e-6, axis=-1)
    assert changed[ended].mean() > 0.5
    for e in range(NUM_ENVS):
        assert changed[:, e][ended[:, e]].any()
    # an episode never exceeds episode_length steps
    for e in range(NUM_ENVS):
        lengths = np.diff(np.flatnonzero(np.r_[True, ended[:, e]]))
        assert lengths.max() <= EPISODE_LENGTH


# ------------------------------------------------------------------ achieved goal follows the body
def _moved_state_obs(env, q):
    q = jnp.asarray(q, jnp.float32)
    return np.asarray(jax.jit(lambda q: env._state_obs(env.pipeline_init(q, jnp.zeros(env.sys.qd_size()))))(q))


@pytest.mark.parametrize("env_id", [i for i in ALL_IDS if i.startswith("ant") and i != "ant_ball"])
def test_ant_goal_part_follows_the_torso(env_id):
    env = make_env(env_id)
    q = np.asarray(env.sys.init_q).copy()
    for xy in [(3.0, -2.0), (-7.5, 11.0)]:
        q[:2] = xy
        obs = _moved_state_obs(env, q)
        np.testing.assert_allclose(obs[list(env.goal_indices)], xy, atol=1e-5)


def test_cheetah_goal_part_follows_the_root():
    env = make_env("cheetah")
    q = np.asarray(env.sys.init_q).copy()
    for x in (2.5, -1.0):
        q[0] = x
        np.testing.assert_allclose(_moved_state_obs(env, q)[list(env.goal_indices)], [x], atol=1e-5)


@pytest.mark.parametrize("env_id", [i for i in ALL_IDS if i.startswith("simple")])
def test_point_goal_part_follows_the_ball(env_id):
    env = make_env(env_id)
    for xy in [(4.0, 8.0), (12.5, 3.25)]:
        obs = _moved_state_obs(env, xy)
        np.testing.assert_allclose(obs[list(env.goal_indices)], xy, atol=1e-5)


def test_object_goal_parts_follow_the_object():
    ball = make_env("ant_ball")
    q = np.asarray(ball.sys.init_q).copy()
    q[15:17] = (2.5, -1.5)
    np.testing.assert_allclose(_moved_state_obs(ball, q)[list(ball.goal_indices)], (2.5, -1.5), atol=1e-5)
    pusher = make_env("pusher_hard")
    q = np.zeros(pusher.sys.q_size())
    q[7:9] = (0.1, -0.2)  # the puck's slide joints: y, then x
    np.testing.assert_allclose(
        _moved_state_obs(pusher, q)[list(pusher.goal_indices)], (0.45 - 0.2, -0.05 + 0.1, -0.275), atol=1e-5
    )
    arm = make_env("arm_push_easy")
    q = np.asarray(arm.sys.init_q).copy()
    q[9:16] = (0.2, 0.55, 0.025, 1, 0, 0, 0)
    np.testing.assert_allclose(_moved_state_obs(arm, q)[list(arm.goal_indices)], (0.2, 0.55, 0.025), atol=1e-5)


def test_humanoid_goal_part_is_the_torso():
    env = make_env("humanoid_u_maze")
    q = np.asarray(env.sys.init_q).copy()
    q[:3] = (4.0, 2.0, 1.3)
    np.testing.assert_allclose(_moved_state_obs(env, q)[list(env.goal_indices)], (4.0, 2.0, 1.3), atol=1e-5)


def test_reacher_goal_part_is_the_fingertip():
    env = make_env("reacher")
    for a, b in [(0.0, 0.0), (math.pi / 2, 0.0), (0.3, -1.2)]:
        obs = _moved_state_obs(env, (a, b))
        expected = (0.1 * math.cos(a) + 0.11 * math.cos(a + b), 0.1 * math.sin(a) + 0.11 * math.sin(a + b), 0.01)
        np.testing.assert_allclose(obs[list(env.goal_indices)], expected, atol=1e-5)


def test_vec_env_refuses_many_arm_envs_without_the_scheduler_flag(monkeypatch):
    """An arm built after JAX started cannot set the flag: it warns, and VecEnv refuses more
    envs than ran without the flag, with a message that says what to do."""
    jax.devices()  # JAX is running
    monkeypatch.setenv("XLA_FLAGS", envs.base.FUSION_FLAG)
    with pytest.warns(UserWarning, match="too late to set them"):
        env = envs.make("arm_reach", episode_length=EPISODE_LENGTH)
    with pytest.raises(ValueError, match="xla_cpu_enable_concurrency_optimized_scheduler=false"):
        envs.VecEnv(env, 256)
    envs.VecEnv(env, 128)  # as many as ran without it


def test_make_turns_off_cpu_fusion_emitters_before_jax_starts():
    """A deep-chain env built first in a fresh process sets XLA_FLAGS before JAX's backends
    start (envs.make must not start them itself), so the arm and pusher run at full speed."""
    code = (
        "import os, warnings; warnings.simplefilter('error', UserWarning)\n"
        "import envs\nfrom jax._src import xla_bridge\n"
        "assert not xla_bridge.backends_are_initialized()\n"
        "with warnings.catch_warnings():\n    warnings.filterwarnings('ignore', 'Brax System')\n"
        "    envs.make('pusher_easy')\n"
        "print('FLAGS', os.environ.get('XLA_FLAGS', ''))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "--xla_cpu_use_fusion_emitters=false" in result.stdout


ARM_STEP_AT_256 = """
import sys, jax, envs
for env_id in sys.argv[1:]:
    env = envs.make(env_id, episode_length=2)  # every other step auto-resets all 256 envs
    vec = envs.VecEnv(env, 256)

    @jax.jit
    def run(key):
        def body(state, k):
            action = jax.random.uniform(k, (256, env.action_size), minval=-1.0, maxval=1.0)
            return vec.step(state, action), None

        return jax.lax.scan(body, vec.reset(key), jax.random.split(key, 4))[0].obs

    for call in range(3):
        run(jax.random.PRNGKey(call)).block_until_ready()
    print("stepped", env_id, flush=True)
"""


@pytest.mark.slow
def test_arm_tasks_step_256_envs_on_cpu_without_hanging():
    """At 256 envs with auto-resets, XLA's concurrency-optimised CPU scheduler made the cube
    tasks hang within one or two calls (push, grasp and bin-pick alike); the arm's constructor,
    which every arm task shares, now turns it off (envs/base.py: set_cpu_xla_flags). A fresh
    process, as a user's `--num-envs 256` run, with one cube task; a hang fails the test at the
    timeout instead of stalling the suite."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    tasks = ["arm_binpick_hard"]
    try:
        result = subprocess.run(
            [sys.executable, "-c", ARM_STEP_AT_256, *tasks], capture_output=True, text=True, env=env, timeout=600
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{tasks} at 256 envs did not finish 3 calls of 4 steps each in 600 s (a hang)")
    assert result.returncode == 0 and result.stdout.count("stepped") == len(tasks), result.stderr[-3000:]


# ------------------------------------------------------------------ JaxGCRL's fixed training goals
def test_fixed_goals_repeat_each_envs_first_start_and_goal_every_episode():
    """`VecEnv(..., fixed_goals=True)` (the algorithms' --fixed-goals): every auto-reset
    restores the env's first start and goal, as JaxGCRL's training envs do; episode ids still
    count the episodes."""
    env = make_env("reacher")
    vec = envs.VecEnv(env, NUM_ENVS, fixed_goals=True)

    @jax.jit
    def run(key):
        first = vec.reset(key)

        def body(state, k):
            action = jax.random.uniform(k, (NUM_ENVS, env.action_size), minval=-1.0, maxval=1.0)
            nxt = vec.step(state, action)
            return nxt, (nxt.obs, nxt.info["goal"], nxt.info["episode_steps"], nxt.info["episode_id"])

        return first, jax.lax.scan(body, first, jax.random.split(key, 3 * EPISODE_LENGTH))[1]

    first, (obs, goals, steps, episode_ids) = jax.tree.map(np.asarray, run(jax.random.PRNGKey(3)))
    restarted = steps == 0  # the observation after an auto-reset: the new episode's first
    assert restarted.sum() == 3 * NUM_ENVS and episode_ids[-1].tolist() == [3] * NUM_ENVS
    for t, e in zip(*np.nonzero(restarted)):  # the same reset, compiled into another program: rounding
        np.testing.assert_allclose(obs[t, e], first.obs[e], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(goals, np.broadcast_to(first.info["goal"], goals.shape), rtol=1e-5, atol=1e-7)
    assert len({tuple(g) for g in first.info["goal"].round(5)}) == NUM_ENVS  # one goal per env, distinct


# ------------------------------------------------------------------ evaluation
@functools.cache
def evaluation_of_a_fixed_policy():
    """A fixed action per goal (the same in every step, so that two compiled programs' rounding
    does not grow into different episodes), evaluated on 32 reacher episodes of 50 steps as the
    algorithms do (deterministic and 'sampled', here the same function), and the same episodes
    stepped by hand from the same reset."""
    env = envs.make("reacher", episode_length=50)
    vec = envs.VecEnv(env, 32)
    weights = 20.0 * jax.random.normal(jax.random.PRNGKey(1), (env.goal_dim, env.action_size))

    def policy(obs):
        return jnp.sin(obs[:, env.state_dim :] @ weights)

    key = jax.random.PRNGKey(4)
    metrics = jax.jit(lambda k: vec.evaluate(policy, k, lambda obs, _: policy(obs))[0])(key)

    @jax.jit
    def by_hand(key):
        def body(state, _):
            nxt = vec.step(state, policy(state.obs))
            return nxt, (nxt.metrics["success"], nxt.done + nxt.info["truncation"], nxt.metrics["dist"])

        return jax.lax.scan(body, vec.reset(key), None, length=50)[1]

    return jax.tree.map(np.asarray, metrics), jax.tree.map(np.asarray, by_hand(key))


def test_evaluation_scores_both_action_modes_from_the_same_goals():
    """With the same function as the deterministic and the sampled policy, both modes' metrics
    are equal: they start from the same resets and goals."""
    metrics, _ = evaluation_of_a_fixed_policy()
    for name in ("success_rate", "time_at_goal", "final_distance", "episodic_return", "steps_to_success"):
        assert metrics[f"sampled_{name}"] == pytest.approx(metrics[name], abs=1e-6), name


def test_evaluation_metrics_match_episodes_stepped_by_hand():
    """success rate, time at goal, final distance and steps to success (the first step at the
    goal, 1-based, over the episodes that reached it) of each env's first episode."""
    metrics, (success, ended, dist) = evaluation_of_a_fixed_policy()
    assert not ended[:-1].any() and ended[-1].all()  # reacher never terminates: one 50-step episode
    reached = success.max(axis=0) > 0
    assert 0 < reached.sum() < 32, "the check needs episodes that reach the goal and episodes that do not"
    first = np.argmax(success > 0, axis=0) + 1
    assert metrics["success_rate"] == pytest.approx(reached.mean())
    assert metrics["time_at_goal"] == pytest.approx(success.sum(axis=0).mean() / 50)
    assert metrics["final_distance"] == pytest.approx(dist[-1].mean(), rel=1e-5)
    assert metrics["steps_to_success"] == pytest.approx(first[reached].mean())
