"""Named evaluation tasks: every env has five, an episode of one starts and aims where the task
says, and `VecEnv.evaluate` scores them beside its random goals without changing those.

The maze tasks against OGBench's own definitions are in test_mazes.py; the tags a training run
logs for them (eval/tasks/*, both modes) are read back in test_research_runs.py."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import REPO, make_env

import envs
from algorithms import run
from algorithms.run.logs import task_line
from envs.maze import TASKS

# Envs whose task goals may lie outside the region training draws goals from, and why.
OUTSIDE_TRAINING_GOALS = {"cheetah": "its one training goal is x = 5; the tasks are the points on the way"}


def test_every_env_has_five_named_tasks_in_its_goal_space():
    """task1 ... task5, each with a reason, a goal of goal_dim numbers and a start of the same
    size as its siblings' (empty where the env keeps its usual start); no two tasks alike."""
    for env_id in envs.ENV_IDS:
        env = make_env(env_id)
        assert [t.name for t in env.tasks] == [f"task{k}" for k in range(1, 6)], env_id
        starts, goals = env.task_arrays()
        assert goals.shape == (5, env.goal_dim) and starts.shape[0] == 5, env_id
        assert all(t.why for t in env.tasks), env_id
        assert len({(t.start, t.goal) for t in env.tasks}) == 5, env_id


def test_task_goals_lie_where_training_draws_its_goals():
    """Each task's goal lies in the bounding box of 2,000 goals the env's training resets draw
    (cheetah excepted: OUTSIDE_TRAINING_GOALS), so a task asks for nothing the agent never saw.
    The mazes' task goals are free cells by construction (test_mazes.py joins them by paths)."""
    for env_id in envs.ENV_IDS:
        if env_id.endswith("_maze"):
            continue
        env = make_env(env_id)
        draw = jax.jit(jax.vmap(lambda key, env=env: env._sample_init(key)[2]))
        drawn = np.asarray(draw(jax.random.split(jax.random.PRNGKey(0), 2000)))
        low, high = drawn.min(axis=0) - 1e-4, drawn.max(axis=0) + 1e-4
        goals = np.asarray(env.task_arrays()[1])
        inside = np.all((goals >= low) & (goals <= high), axis=1)
        assert inside.all() != (env_id in OUTSIDE_TRAINING_GOALS), (env_id, goals[~inside], low, high)


def test_a_maze_task_starts_and_aims_within_a_quarter_cell_of_its_cells():
    """OGBench's convention: start and goal uniform within +- cell/4 of the cells' centres."""
    env = make_env("simple_big_maze")
    keys = jax.random.split(jax.random.PRNGKey(3), 5 * 200)
    index = jnp.repeat(jnp.arange(5), 200)
    state = jax.jit(jax.vmap(env.reset_to_task))(keys, index)
    xy, goal = np.asarray(state.obs[:, :2]), np.asarray(state.info["goal"])
    np.testing.assert_array_equal(state.obs[:, env.state_dim :], goal)
    s = env.maze.cell_size
    for k, (start_cell, goal_cell) in enumerate(TASKS["big"]):
        start_offset = xy[index == k] - np.array(start_cell) * s
        goal_offset = goal[index == k] - np.array(goal_cell) * s
        for offset in (start_offset, goal_offset):
            assert np.abs(offset).max() <= s / 4 + 1e-5
            assert np.abs(offset).max() > 0.8 * s / 4  # the noise spans the quarter cell
    assert env.task_index("task3") == 2
    with pytest.raises(ValueError, match="has no task 'task6': its tasks are task1, task2"):
        env.task_index("task6")


def test_a_pusher_task_places_the_puck_and_the_goal_it_names():
    env = make_env("pusher_easy")
    state = jax.jit(jax.vmap(env.reset_to_task))(jax.random.split(jax.random.PRNGKey(0), 5), jnp.arange(5))
    puck = np.asarray(state.obs[:, 10:12])  # the puck's xyz in the state part
    np.testing.assert_allclose(puck, [t.start for t in env.tasks], atol=1e-5)
    np.testing.assert_allclose(state.info["goal"], [t.goal for t in env.tasks], atol=1e-5)


def test_tasks_leave_the_random_goal_metrics_unchanged_and_are_scored_per_task():
    """`evaluate` with tasks gives the random-goal metrics it gives without them, bit for bit,
    in both modes (the tasks draw keys of their own). A policy that steers straight at the goal
    solves the U maze's task5 (down one straight corridor) and never task1 (the U's wall stands
    between its start and goal), and the metrics say so per task; overall_success is the mean."""
    vec = envs.VecEnv(envs.make("simple_u_maze", episode_length=100), 6)

    def policy(obs):  # a damped spring towards the goal: [x, y, vx, vy, goal x, goal y]
        return jnp.clip(0.5 * (obs[:, 4:6] - obs[:, :2]) - 0.6 * obs[:, 2:4], -1.0, 1.0)

    def sampled(obs, key):
        return jnp.clip(policy(obs) + 0.1 * jax.random.normal(key, (obs.shape[0], 2)), -1.0, 1.0)

    evaluate = jax.jit(lambda key, m: vec.evaluate(policy, key, sampled, m), static_argnums=1)
    without, _ = evaluate(jax.random.PRNGKey(1), 0)
    with_tasks, _ = evaluate(jax.random.PRNGKey(1), 3)
    assert set(without) == {name for name in with_tasks if not name.startswith("tasks/")}
    for name, value in without.items():
        np.testing.assert_array_equal(value, with_tasks[name], err_msg=name)
    for mode in ("", "sampled_"):
        each = [float(with_tasks[f"tasks/{mode}task{k}_success"]) for k in range(1, 6)]
        assert each[4] == 1.0 and each[0] == 0.0, (mode, each)
        assert float(with_tasks[f"tasks/{mode}overall_success"]) == pytest.approx(np.mean(each))
    line = task_line(jax.device_get(with_tasks))
    assert line.startswith("tasks, deterministic actions: task1 0.000") and "sampled actions" in line


def test_task_metrics_are_taken_per_task_in_task_order():
    """`_set_metrics` on hand-made per-episode successes: task k's m episodes are the k-th block
    after the random-goal envs."""
    vec = envs.VecEnv(make_env("reacher"), 2)
    steps = 4
    success = np.zeros((2 + 5 * 2, steps), np.float32)
    success[2 + 0 * 2 + 0, 1:] = 1.0  # task1: one of two episodes reaches (3 of 4 steps at the goal)
    success[2 + 3 * 2 : 2 + 4 * 2, -1] = 1.0  # task4: both reach on the last step
    per_env = {"success": jnp.asarray(success), "reward": jnp.zeros_like(success), "final_dist": jnp.zeros(12)}
    metrics = vec._set_metrics(per_env, 2, "sampled_")
    got = [float(metrics[f"tasks/sampled_task{k}_success"]) for k in range(1, 6)]
    assert got == [0.5, 0.0, 0.0, 1.0, 0.0]
    assert float(metrics["tasks/sampled_overall_success"]) == pytest.approx(0.3)
    episode_length = make_env("reacher").episode_length
    assert float(metrics["tasks/sampled_task1_time_at_goal"]) == pytest.approx(3 / 2 / episode_length)
    assert float(metrics["sampled_success_rate"]) == 0.0  # the random-goal envs never reached


def test_eval_tasks_on_an_env_without_tasks_is_a_config_error():
    from algorithms import crl_infonce

    env = envs.make("reacher")
    env.tasks = ()
    args = crl_infonce.Args(
        num_envs=8, unroll_length=10, total_timesteps=1000, learning_starts=20, batch_size=16, num_evals=2
    )
    with pytest.raises(run.ConfigError, match="has no named evaluation tasks.*--no-eval-tasks"):
        run.make_schedule(args, env)
    run.make_schedule(crl_infonce.Args(**{**args.__dict__, "eval_tasks": False}), env)  # fine without


def test_the_env_demo_refuses_an_unknown_task_with_exit_2(capsys):
    from envs.__main__ import Args, main

    assert main(Args(env_id="simple_u_maze", task="task9")) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --task: simple_u_maze has no task 'task9'") and "task1, task2" in err


def test_the_docs_list_every_envs_tasks_as_the_envs_define_them():
    """docs/environments.md holds the tables `python -m envs --list-tasks` prints, line for line."""
    from envs.__main__ import tasks_markdown

    docs = (REPO / "docs" / "environments.md").read_text()
    missing = [line for line in tasks_markdown().splitlines() if line and line not in docs]
    assert not missing, "docs/environments.md: rerun `python -m envs --list-tasks`; missing:\n" + "\n".join(missing)
