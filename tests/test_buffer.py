"""The trajectory buffer against a slow NumPy reference on random episode layouts.

Synthetic transitions encode where they come from: the state part of row t of env e is
[t, e, episode_id], the achieved goal is the time index (goal_indices = (0,)), and next_obs is
[t + 1, e, episode_id] (the pre-reset next state). So a sampled future goal names the time of
the state it was taken from, and the tests can check it against the reference exactly.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from buffers import BufferMemoryError, TrajectoryBuffer, Transition
from buffers import trajectory as buffers_module

NUM_ENVS = 3
UNROLL = 4
EPISODE_LENGTH = 6
GAMMA = 0.8


def make_buffer(capacity: int) -> TrajectoryBuffer:
    return TrajectoryBuffer(
        capacity=capacity,
        num_envs=NUM_ENVS,
        unroll_length=UNROLL,
        episode_length=EPISODE_LENGTH,
        goal_indices=(0,),
        state_dim=3,
        gamma=GAMMA,
    )


def simulate(num_steps: int, seed: int) -> Transition:
    """Random episodes per env: each step terminates with probability 0.25, and an episode
    truncates at EPISODE_LENGTH steps. Leaves: (num_steps, NUM_ENVS, ...)."""
    rng = np.random.default_rng(seed)
    obs = np.zeros((num_steps, NUM_ENVS, 4), np.float32)
    next_obs = np.zeros_like(obs)
    terminated = np.zeros((num_steps, NUM_ENVS), np.float32)
    truncated = np.zeros_like(terminated)
    episode_id = np.zeros((num_steps, NUM_ENVS), np.int32)
    for e in range(NUM_ENVS):
        episode, length = 0, 0
        for t in range(num_steps):
            goal = 100.0 + episode
            obs[t, e] = (t, e, episode, goal)
            next_obs[t, e] = (t + 1, e, episode, goal)
            episode_id[t, e] = episode
            length += 1
            if rng.random() < 0.25:
                terminated[t, e] = 1
            elif length == EPISODE_LENGTH:
                truncated[t, e] = 1
            if terminated[t, e] or truncated[t, e]:
                episode, length = episode + 1, 0
    action = rng.uniform(-1, 1, (num_steps, NUM_ENVS, 2)).astype(np.float32)
    return Transition(obs, action, next_obs, terminated, truncated, episode_id)


def fill(buffer: TrajectoryBuffer, traj: Transition, num_inserts: int):
    state = buffer.init(jax.tree.map(lambda x: x[0, 0], traj))
    insert = jax.jit(buffer.insert)
    for n in range(num_inserts):
        state = insert(state, jax.tree.map(lambda x, n=n: x[n * UNROLL : (n + 1) * UNROLL], traj))
    return state


def reference_future_probs(traj: Transition, written_times: np.ndarray, t: int, e: int) -> dict[int, float]:
    """P(k) for the future state s_{t+k} of transition (t, e): proportional to GAMMA^(k-1) over
    the k >= 1 whose row t+k-1 is written and belongs to the same episode (slow loop)."""
    weights = {}
    for k in range(1, EPISODE_LENGTH + 1):
        row_time = t + k - 1
        if row_time not in written_times or traj.episode_id[row_time, e] != traj.episode_id[t, e]:
            break
        weights[k] = GAMMA ** (k - 1)
    total = sum(weights.values())
    return {k: w / total for k, w in weights.items()}


@pytest.mark.parametrize(
    "capacity,num_inserts",
    [(24, 3), (24, 6), (12, 5), (12, 9)],  # partial fill, exactly full, wrapped, wrapped twice+
)
def test_future_goals_match_the_reference(capacity, num_inserts):
    buffer = make_buffer(capacity)
    traj = simulate(num_inserts * UNROLL, seed=capacity + num_inserts)
    state = fill(buffer, traj, num_inserts)
    total = num_inserts * UNROLL
    written_times = set(range(max(0, total - capacity), total))
    assert int(state.size) == min(total, capacity)

    batch = jax.jit(buffer.sample, static_argnums=2)(state, jax.random.PRNGKey(1), 60_000)
    t = np.asarray(batch.obs[:, 0]).astype(int)
    e = np.asarray(batch.obs[:, 1]).astype(int)
    future_time = np.asarray(batch.future_goal[:, 0]).astype(int)
    k = future_time - t

    # never an unwritten row; all fields of a sample come from one row
    assert set(np.unique(t)) <= written_times
    np.testing.assert_array_equal(np.asarray(batch.next_obs[:, 0]), t + 1)
    np.testing.assert_array_equal(np.asarray(batch.terminated), traj.terminated[t, e])
    np.testing.assert_array_equal(np.asarray(batch.action), traj.action[t, e])
    # future goals come from a strictly later step of the same episode, inside the buffer
    assert (k >= 1).all()
    assert (traj.episode_id[future_time - 1, e] == traj.episode_id[t, e]).all()
    assert set(np.unique(future_time - 1)) <= written_times

    # rows and envs are uniform; k given (t, e) follows the truncated geometric: one chi-square
    # test over every (t, e, k) cell
    observed, expected = [], []
    n = len(t)
    counts = {}
    for key in zip(t, e, k, strict=False):
        counts[key] = counts.get(key, 0) + 1
    for tt in sorted(written_times):
        for ee in range(NUM_ENVS):
            for kk, p in reference_future_probs(traj, written_times, tt, ee).items():
                observed.append(counts.pop((tt, ee, kk), 0))
                expected.append(n * p / (len(written_times) * NUM_ENVS))
    assert not counts, f"samples outside the reference support: {list(counts)[:5]}"
    observed, expected = np.array(observed, float), np.array(expected)
    expected *= observed.sum() / expected.sum()
    assert stats.chisquare(observed, expected).pvalue > 1e-3


@pytest.mark.parametrize("gamma", [0.7, 1.0])
def test_truncated_geometric_for_a_long_episode(gamma):
    """One long episode: P(k) ~ gamma^(k-1), k = 1..EPISODE_LENGTH, chi-square on k alone;
    gamma = 1 is uniform over the episode's later steps."""
    buffer = TrajectoryBuffer(
        capacity=8, num_envs=1, unroll_length=8, episode_length=8, goal_indices=(0,), state_dim=1, gamma=gamma
    )
    times = np.arange(8, dtype=np.float32)[:, None, None]
    traj = Transition(
        obs=times,
        action=np.zeros((8, 1, 1), np.float32),
        next_obs=times + 1,
        terminated=np.zeros((8, 1), np.float32),
        truncated=np.zeros((8, 1), np.float32),
        episode_id=np.zeros((8, 1), np.int32),
    )
    state = buffer.insert(buffer.init(jax.tree.map(lambda x: x[0, 0], traj)), traj)
    batch = buffer.sample(state, jax.random.PRNGKey(0), 40_000)
    t = np.asarray(batch.obs[:, 0]).astype(int)
    k = np.asarray(batch.future_goal[:, 0]).astype(int) - t
    sel = t == 0  # from the first step, all 8 later states are candidates
    observed = np.bincount(k[sel], minlength=9)[1:]
    p = gamma ** np.arange(8)
    expected = p / p.sum() * sel.sum()
    assert stats.chisquare(observed, expected).pvalue > 1e-3
    # the last state of the buffer's only transition is its own next state
    assert (k[t == 7] == 1).all()


def test_insert_after_wrap_overwrites_the_oldest_rows_only():
    capacity = 12
    buffer = make_buffer(capacity)
    traj = simulate(9 * UNROLL, seed=7)
    state = buffer.init(jax.tree.map(lambda x: x[0, 0], traj))
    reference = np.zeros((capacity, NUM_ENVS, 4), np.float32)
    insert = jax.jit(buffer.insert)
    for n in range(9):
        chunk = jax.tree.map(lambda x, n=n: x[n * UNROLL : (n + 1) * UNROLL], traj)
        state = insert(state, chunk)
        rows = (n * UNROLL + np.arange(UNROLL)) % capacity
        reference[rows] = chunk.obs
        np.testing.assert_array_equal(np.asarray(state.data.obs), reference)
        assert int(state.insert_index) == ((n + 1) * UNROLL) % capacity
        # the rows written before this insert and not overwritten keep their values
        oldest_kept = max(0, (n + 1) * UNROLL - capacity)
        kept_times = np.arange(oldest_kept, n * UNROLL)
        np.testing.assert_array_equal(
            np.asarray(state.data.obs[kept_times % capacity, :, 0]), traj.obs[kept_times, :, 0]
        )
    assert state.data.episode_id.dtype == jnp.int32 and state.data.obs.dtype == jnp.float32  # dtypes kept


def test_her_relabels_at_the_ratio_with_rewards_from_the_next_state():
    buffer = make_buffer(24)
    traj = simulate(6 * UNROLL, seed=3)
    state = fill(buffer, traj, 6)
    batch = buffer.sample_her(state, jax.random.PRNGKey(2), 20_000, relabel_ratio=0.8, goal_reach_thresh=0.5)
    relabelled = np.asarray(batch.relabelled)
    assert abs(relabelled.mean() - 0.8) < 4 * np.sqrt(0.8 * 0.2 / relabelled.size)
    goal = np.asarray(batch.obs[:, 3])
    np.testing.assert_array_equal(goal[relabelled], np.asarray(batch.future_goal[relabelled, 0]))
    np.testing.assert_array_equal(goal[~relabelled], 100 + np.asarray(batch.obs[~relabelled, 2]))
    np.testing.assert_array_equal(np.asarray(batch.next_obs[:, 3]), goal)
    achieved_next = np.asarray(batch.next_obs[:, 0])
    np.testing.assert_array_equal(np.asarray(batch.reward), (np.abs(achieved_next - goal) < 0.5).astype(np.float32))
    # a relabelled goal taken at k = 1 is exactly s_{t+1}: reward 1
    k1 = relabelled & (np.asarray(batch.future_goal[:, 0]) == achieved_next)
    assert k1.any() and (np.asarray(batch.reward)[k1] == 1).all()


def test_capacity_must_be_a_multiple_of_the_unroll_length():
    with pytest.raises(ValueError, match="use 12"):
        TrajectoryBuffer(capacity=10, num_envs=1, unroll_length=4, episode_length=5, goal_indices=(0,), state_dim=1)


def test_memory_estimate_and_clear_error_when_it_does_not_fit(capsys):
    example = Transition(
        obs=np.zeros(31, np.float32),
        action=np.zeros(8, np.float32),
        next_obs=np.zeros(31, np.float32),
        terminated=np.float32(0),
        truncated=np.float32(0),
        episode_id=np.int32(0),
    )
    small = TrajectoryBuffer(
        capacity=100, num_envs=4, unroll_length=10, episode_length=10, goal_indices=(0, 1), state_dim=29
    )
    assert small.nbytes(example) == 100 * 4 * (31 + 8 + 31 + 1 + 1 + 1) * 4
    assert small.check_memory(example) == small.nbytes(example)
    assert "replay buffer" in capsys.readouterr().out
    huge = TrajectoryBuffer(
        capacity=10**9, num_envs=4096, unroll_length=10, episode_length=10, goal_indices=(0, 1), state_dim=29
    )
    with pytest.raises(BufferMemoryError, match="--buffer-size") as error:
        huge.check_memory(example, verbose=False)
    assert "--num-envs" in str(error.value) and "presample" not in str(error.value)
    # a training step's batches drawn at once count too, and the message says how to free them
    assert small.check_memory(example, batch_bytes=5000, verbose=False) == small.nbytes(example) + 5000
    assert (
        small.check_memory(example, batch_bytes=5000, copies=2, devices=2, verbose=False)
        == small.nbytes(example) + 5000
    )
    with pytest.raises(BufferMemoryError, match="Pass --no-presample"):
        small.check_memory(example, verbose=False, batch_bytes=10**18)
    # many seeds whose batches only fit a few at a time: the seeds are the advice, the batches named
    free = buffers_module._free_device_memory(jax.devices()[0])
    with pytest.raises(BufferMemoryError, match=r"--num-seeds \(at most 1 fit\)") as error:
        small.check_memory(example, verbose=False, batch_bytes=int(free * 0.6), copies=64)
    assert "--no-presample frees them" in str(error.value)


def test_her_rewards_use_the_envs_own_success_test_for_composite_goals():
    """arm_grasp's success needs the fingertip midpoint within 0.05 m AND the opening within
    0.02 of the goal's: a goal whose opening is 0.03 off is missed, although the plain distance
    over all four goal entries (0.03) is below the threshold. SAC/TD3 pass `env.success`."""
    import envs

    env = envs.make("arm_grasp")
    steps = 2 * UNROLL
    state_part = np.zeros((steps, NUM_ENVS, env.state_dim), np.float32)
    state_part[..., 0] = np.arange(steps, dtype=np.float32)[:, None] * 0.2  # midpoint x moves 0.2 m a step
    state_part[..., 3] = 0.05  # gripper opening
    next_part = np.concatenate([state_part[1:], state_part[-1:] + np.float32(0.2) * np.eye(env.state_dim)[0]])
    goal = next_part[..., list(env.goal_indices)] + np.array([0.0, 0.0, 0.0, 0.03], np.float32)
    traj = Transition(
        obs=np.concatenate([state_part, goal], -1),
        action=np.zeros((steps, NUM_ENVS, env.action_size), np.float32),
        next_obs=np.concatenate([next_part, goal], -1),
        terminated=np.zeros((steps, NUM_ENVS), np.float32),
        truncated=np.zeros((steps, NUM_ENVS), np.float32),
        episode_id=np.zeros((steps, NUM_ENVS), np.int32),
    )
    buffer = TrajectoryBuffer(
        capacity=steps,
        num_envs=NUM_ENVS,
        unroll_length=UNROLL,
        episode_length=steps,
        goal_indices=env.goal_indices,
        state_dim=env.state_dim,
        gamma=GAMMA,
    )
    state = fill(buffer, traj, 2)
    key, thresh = jax.random.PRNGKey(0), env.goal_reach_thresh
    plain = buffer.sample_her(state, key, 512, relabel_ratio=0.0, goal_reach_thresh=thresh)
    composite = buffer.sample_her(state, key, 512, 0.0, thresh, success_fn=jax.vmap(env.success))
    assert (np.asarray(plain.reward) == 1).all()
    assert (np.asarray(composite.reward) == 0).all()
    relabelled = buffer.sample_her(state, key, 512, 1.0, thresh, success_fn=jax.vmap(env.success))
    k1 = np.asarray(relabelled.future_goal[:, 0]) == np.asarray(relabelled.next_obs[:, 0])
    assert k1.any() and (np.asarray(relabelled.reward)[k1] == 1).all()  # hindsight goal = s_{t+1}: reached
    assert (np.asarray(relabelled.reward)[~k1] == 0).all()  # later goals are 0.2 m further on
