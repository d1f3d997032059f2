"""Maze geometry: walls where the grid says, merged wall boxes, start and goal cells, a ball
stopped by a wall."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from conftest import first_states, load_algorithm, make_env

import envs
from envs.maze import LAYOUTS, TASKS, Maze


# ------------------------------------------------------------------ maze walls
def _wall_contacts(env, qpos) -> int:
    model = env.sys.mj_model
    data = mujoco.MjData(model)
    data.qpos[:] = qpos
    mujoco.mj_forward(model, data)
    wall_ids = {i for i in range(model.ngeom) if (model.geom(i).name or "").startswith("wall_")}
    return sum(1 for c in data.contact[: data.ncon] if (c.geom1 in wall_ids or c.geom2 in wall_ids) and c.dist < 0)


@pytest.mark.parametrize(
    "env_id",
    [
        "simple_u_maze",
        "simple_big_maze",
        "simple_hardest_maze",
        "simple_giant_maze",
        "ant_u_maze",
        "ant_big_maze",
        "ant_hardest_maze",
        "humanoid_giant_maze",
    ],
)
def test_walls_sit_where_the_grid_says(env_id):
    env = make_env(env_id)
    maze = env.maze
    init_q = np.asarray(env.sys.init_q)
    for i, row in enumerate(maze.grid):
        for j, cell in enumerate(row):
            q = init_q.copy()
            q[:2] = (i * maze.cell_size, j * maze.cell_size)
            hits = _wall_contacts(env, q)
            assert (hits > 0) == (cell == "1"), (env_id, i, j, cell, hits)


def test_wall_boxes_cover_exactly_the_wall_cells():
    for layout in LAYOUTS:
        maze = Maze(layout, 4.0)
        covered = np.zeros((len(maze.grid), len(maze.grid[0])), int)
        for i0, j0, i1, j1 in maze.wall_boxes():
            covered[i0 : i1 + 1, j0 : j1 + 1] += 1
        walls = np.array([[c == "1" for c in row] for row in maze.grid])
        np.testing.assert_array_equal(covered, walls.astype(int))
        assert len(maze.wall_boxes()) < walls.sum()  # merged into fewer boxes


def test_maze_starts_and_goals_use_the_grid_cells():
    env = make_env("simple_big_maze")
    first = first_states("simple_big_maze")
    goal_cells = {tuple(c) for c in env.maze.cells("G")}
    for goal in np.asarray(first.info["goal"]):
        assert env.maze.cell_of(goal) in goal_cells
        np.testing.assert_allclose(goal % env.maze.cell_size, 0.0, atol=1e-5)  # a cell centre
    for obs in np.asarray(first.obs):
        assert env.maze.cell_of(obs[:2]) == tuple(env.maze.cells("R")[0])


def test_point_mass_stops_at_a_wall():
    env = make_env("simple_u_maze")
    state = jax.jit(env.reset)(jax.random.PRNGKey(3))
    step = jax.jit(env.step)
    for _ in range(40):  # push +y along the top corridor towards the wall cell (1, 4) at y = 14..18
        state = step(state, jnp.array([0.0, 1.0]))
    y = float(state.obs[1])
    assert 13.55 < y < 13.8  # ball radius 0.25: stops with its surface on the wall face at y = 14


@pytest.mark.parametrize("env_id", ["simple_u_maze", "simple_big_maze", "simple_hardest_maze"])
def test_walls_hold_under_random_bang_bang_actions(env_id):
    """256 envs, 1000 steps of bang-bang actions (the sign of a uniform draw: what a saturated
    tanh policy does), sampled every 10th step: no ball in a wall cell or outside the maze. The
    point mass before it had JaxGCRL's unit mass on spring (15.3 m/s^2 at full throttle, speeds
    to 94 m/s) fails it on all three layouts: 282, 152 and 138 of the 25,600 samples in a wall
    or outside (results/notes/maze_walls.md)."""
    walls = load_algorithm("maze_walls", folder="results/notes")
    env = make_env(env_id)  # env.step never resets: the episode length plays no part
    xy, velocity, ended = walls.bang_bang_walk(env, seed=0, num_envs=256, steps=1000, every=10)
    escaped = env.maze.in_wall_or_outside(xy)
    assert xy.shape == (100, 256, 2) and np.all(np.isfinite(xy)) and not ended.any()  # the ball never terminates
    assert not escaped.any(), (
        f"{escaped.sum()} of {escaped.size} samples in a wall or outside, e.g. {xy[escaped][:3]}; "
        f"largest velocity component {np.abs(velocity).max():.1f} m/s"
    )


def test_in_wall_or_outside_reads_the_grid():
    maze = Maze("u", 4.0)
    points = np.array([[4.0, 4.0], [5.9, 4.0], [6.1, 4.0], [4.0, 14.1], [-2.1, 4.0], [12.0, 12.0], [19.0, 8.0]])
    np.testing.assert_array_equal(maze.in_wall_or_outside(points), [False, False, True, True, True, False, True])
    assert maze.in_wall_or_outside(points.reshape(7, 1, 2)).shape == (7, 1)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_every_goal_cell_can_be_reached_from_the_start(layout):
    """Every G cell is joined to the R cell by free cells (steps to the 4 neighbours): a goal
    walled off from the start is one no policy reaches. The big maze's fourth row once sat one
    cell to the right of JaxGCRL's, which closed the start's four cells off from the other 22."""
    grid = LAYOUTS[layout]
    (start,) = [(i, j) for i, row in enumerate(grid) for j, c in enumerate(row) if c == "R"]
    seen, frontier = {start}, [start]
    while frontier:
        i, j = frontier.pop()
        for cell in ((i + 1, j), (i - 1, j), (i, j + 1), (i, j - 1)):
            if grid[cell[0]][cell[1]] != "1" and cell not in seen:
                seen.add(cell)
                frontier.append(cell)
    goals = {(i, j) for i, row in enumerate(grid) for j, c in enumerate(row) if c == "G"}
    assert goals <= seen, f"{layout}: goal cells {sorted(goals - seen)} cannot be reached from {start}"


def test_every_layout_is_jaxgcrls_grid_cell_by_cell():
    """The grids of results/notes/env_fidelity.py (read from JaxGCRL's maze files), compared by
    the function that writes the fidelity page's "maze grid" row; that row names a changed cell."""
    fidelity = load_algorithm("env_fidelity", folder="results/notes")
    assert sorted(LAYOUTS) == sorted([*fidelity.JAXGCRL_MAZES, "giant"])  # giant: OGBench's, below
    for layout, grid in LAYOUTS.items():
        if layout == "giant":
            continue
        assert fidelity.grid_difference(grid, fidelity.JAXGCRL_MAZES[layout]) == "the same grid, cell by cell"
    shifted = list(LAYOUTS["big"])
    shifted[3] = "111GGG11"  # the row this layout once had, which walled the start off
    difference = fidelity.grid_difference(tuple(shifted), fidelity.JAXGCRL_MAZES["big"])
    assert difference.startswith("differs at (3, 2): 1 / G") and "(3, 5): G / 1" in difference


# ------------------------------------------------------------------ OGBench's layouts and tasks
OGBENCH_NAMES = {"big": "medium", "hardest": "large", "giant": "giant"}


def test_big_hardest_and_giant_are_ogbenchs_medium_large_and_giant_with_its_tasks():
    """Our grids and tasks against OGBench's own definitions, read from its installed package
    (ogbench 1.2.2, a dev dependency): each maze map equals ours cell by cell (its 0 is our free
    cell, R or G), and its five tasks are ours, the same (start cell, goal cell) pairs in the same
    order, with its noise (+- cell/4) and its episode lengths per body."""
    import gymnasium
    import ogbench.locomaze  # noqa: F401  (registers OGBench's envs with gymnasium)

    for layout, name in OGBENCH_NAMES.items():
        theirs = gymnasium.make(f"pointmaze-{name}-v0").unwrapped
        ours = np.array([[c == "1" for c in row] for row in LAYOUTS[layout]], int)
        np.testing.assert_array_equal(ours, theirs.maze_map, err_msg=layout)
        pairs = [(tuple(t["init_ij"]), tuple(t["goal_ij"])) for t in theirs.task_infos]
        assert pairs == [tuple(map(tuple, task)) for task in TASKS[layout]], layout
        assert [t["task_name"] for t in theirs.task_infos] == [t.name for t in Maze(layout, 4.0).tasks()]
        assert theirs._noise * theirs._maze_unit / 4 == 4.0 / 4  # Maze.near's +- cell/4
    lengths = {f"{body}_giant_maze": gymnasium.spec(f"{body}maze-giant-v0").max_episode_steps for body in ("ant",)}
    lengths["simple_giant_maze"] = gymnasium.spec("pointmaze-giant-v0").max_episode_steps
    lengths["humanoid_giant_maze"] = gymnasium.spec("humanoidmaze-giant-v0").max_episode_steps
    for env_id, length in lengths.items():
        assert envs.make(env_id).episode_length == length, env_id
    assert envs.make("humanoid_giant_maze").maze.cell_size == 4.0  # OGBench's maze unit for every body


def test_a_broken_grid_or_task_list_would_fail_the_ogbench_comparison():
    """The comparison above can fail: one cell or one task changed is caught by the same checks."""
    import gymnasium
    import ogbench.locomaze  # noqa: F401

    theirs = gymnasium.make("pointmaze-giant-v0").unwrapped
    broken = [row for row in LAYOUTS["giant"]]
    broken[5] = broken[5][:4] + "G" + broken[5][5:]  # open a wall cell
    ours = np.array([[c == "1" for c in row] for row in broken], int)
    assert not np.array_equal(ours, theirs.maze_map)
    swapped = [TASKS["giant"][1], TASKS["giant"][0], *TASKS["giant"][2:]]
    assert [(tuple(t["init_ij"]), tuple(t["goal_ij"])) for t in theirs.task_infos] != swapped


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_every_task_joins_two_free_cells_by_a_path(layout):
    maze = Maze(layout, 4.0)
    for (start, goal), task in zip(TASKS[layout], maze.tasks()):
        assert maze.path_length(start, goal) >= 1
        assert task.why.endswith(f"{maze.path_length(start, goal)} cells along the shortest path")
    with pytest.raises(ValueError, match="cannot be reached"):
        Maze("u", 4.0).path_length((1, 1), (0, 0))


def test_maze_start_anywhere_draws_every_free_cell_within_a_quarter_cell():
    """maze_start="anywhere": training starts spread over every free cell, near its centre (the
    noise of the named tasks), never in a wall; the default keeps JaxGCRL's start cell."""
    env = envs.make("simple_big_maze", maze_start="anywhere")
    first = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(0), 2600))
    xy = np.asarray(first.obs[:, :2])
    cells = env.maze.cells_of(xy)
    free = {tuple(c) for c in env.maze.cells("RG")}
    assert {tuple(c) for c in cells} == free
    assert np.abs(xy - cells * env.maze.cell_size).max() <= env.maze.cell_size / 4 + 1e-5
    fixed = first_states("simple_big_maze")
    np.testing.assert_array_equal(fixed.obs[:, :2], np.broadcast_to(env.maze.start_xy, fixed.obs[:, :2].shape))
    with pytest.raises(ValueError, match="maze_start must be one of fixed, anywhere"):
        envs.make("simple_u_maze", maze_start="everywhere")
    with pytest.raises(ValueError, match="applies to the maze envs only"):
        envs.make("ant", maze_start="anywhere")
