"""The env contract (README, "Environments") for every registered id, plus maze geometry and rendering.

Each env is compiled once: one jitted function resets a small batch and runs 100 random steps
through `VecEnv` with a short episode length (so that auto-resets happen), and every contract
test reads that rollout.
"""

from __future__ import annotations

import functools
import importlib
import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

import envs
from envs.maze import LAYOUTS, Maze

NUM_ENVS = 4
NUM_STEPS = 100
EPISODE_LENGTH = 10


@functools.cache
def make_env(env_id: str):
    return envs.make(env_id, episode_length=EPISODE_LENGTH)


@functools.cache
def rollout(env_id: str):
    """Reset NUM_ENVS envs and take NUM_STEPS uniformly random actions in [-1, 1]."""
    env = make_env(env_id)
    vec = envs.VecEnv(env, NUM_ENVS)

    @jax.jit
    def run(key):
        reset_key, action_key = jax.random.split(key)
        first = vec.reset(reset_key)

        def body(state, k):
            action = jax.random.uniform(k, (NUM_ENVS, env.action_size), minval=-1.0, maxval=1.0)
            nxt = vec.step(state, action)
            record = dict(
                obs=state.obs,
                goal=state.info["goal"],
                episode_id=state.info["episode_id"],
                next_obs=nxt.info["next_obs"],
                new_obs=nxt.obs,
                new_goal=nxt.info["goal"],
                new_episode_id=nxt.info["episode_id"],
                reward=nxt.reward,
                done=nxt.done,
                truncation=nxt.info["truncation"],
                dist=nxt.metrics["dist"],
                success=nxt.metrics["success"],
            )
            return nxt, record

        _, records = jax.lax.scan(body, first, jax.random.split(action_key, NUM_STEPS))
        return first, records

    first, records = run(jax.random.PRNGKey(0))
    return first, jax.tree.map(np.asarray, records)


ALL_IDS = envs.ENV_IDS


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


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_sizes_and_goal_indices(env_id):
    env = make_env(env_id)
    first, records = rollout(env_id)
    assert env.observation_size == env.state_dim + env.goal_dim
    assert first.obs.shape == (NUM_ENVS, env.observation_size)
    assert env.goal_dim == len(env.goal_indices) and all(0 <= i < env.state_dim for i in env.goal_indices)
    # the goal part of obs is the commanded goal, the state part does not contain it
    np.testing.assert_array_equal(records["obs"][..., env.state_dim :], records["goal"])


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_no_nan_or_inf_over_random_steps(env_id):
    _, records = rollout(env_id)
    for name in ("obs", "next_obs", "reward", "dist"):
        assert np.isfinite(records[name]).all(), name


@pytest.mark.parametrize("env_id", ALL_IDS)
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


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_success_flips_exactly_at_threshold(env_id):
    env = make_env(env_id)
    first, _ = rollout(env_id)
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


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_different_keys_give_different_goals(env_id):
    first, _ = rollout(env_id)
    goals = np.asarray(first.info["goal"])
    if make_env(env_id).fixed_goal:  # one goal by definition (cheetah): the starts must differ
        assert len(np.unique(goals, axis=0)) == 1
        assert len({tuple(o) for o in np.asarray(first.obs).round(5)}) == NUM_ENVS
        return
    assert len({tuple(g) for g in goals.round(5)}) > 1  # NUM_ENVS resets from distinct keys


@pytest.mark.parametrize("env_id", ALL_IDS)
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
    ["simple_u_maze", "simple_big_maze", "simple_hardest_maze", "ant_u_maze", "ant_big_maze", "ant_hardest_maze"],
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
    first, _ = rollout("simple_big_maze")
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


def _collide(model, name_a: str, name_b: str) -> bool:
    """MuJoCo's contype/conaffinity rule for two named geoms."""
    a, b = model.geom(name_a), model.geom(name_b)
    return bool((a.contype[0] & b.conaffinity[0]) or (b.contype[0] & a.conaffinity[0]))


@pytest.mark.parametrize("env_id", ["ant_u_maze", "humanoid_u_maze"])
def test_walls_stop_the_trunk_and_only_the_feet_touch_the_floor(env_id):
    model = make_env(env_id).sys.mj_model
    names = [model.geom(i).name for i in range(model.ngeom)]
    walls = [n for n in names if n.startswith("wall_")]
    trunk = ["torso_geom"] if env_id.startswith("ant") else ["torso1", "uwaist", "lwaist", "butt"]
    feet = [n for n in names if n.endswith("foot_geom") or n.endswith("_foot")]
    assert walls and len(feet) in (2, 4)
    for part in trunk + feet:
        assert all(_collide(model, part, wall) for wall in walls), part
    assert not any(_collide(model, part, "floor") for part in trunk)
    assert all(_collide(model, foot, "floor") for foot in feet)
    touching_floor = {n for n in names if n != "floor" and not n.startswith("wall_") and _collide(model, n, "floor")}
    assert touching_floor == set(feet)


def test_flipped_ant_terminates():
    """Only the feet touch the floor, so an ant dropped upside down sinks below the 0.2 m
    termination height (a torso that collided with the floor would rest on it at 0.25 m)."""
    env, reset, step, init = jitted("ant")
    state = reset(jax.random.PRNGKey(0))
    q = state.pipeline_state.q.at[2].set(0.6).at[3:7].set(jnp.array([0.0, 1.0, 0.0, 0.0]))
    state = state.replace(pipeline_state=init(q, jnp.zeros(env.sys.qd_size())))
    for _ in range(30):
        state = step(state, jnp.zeros(env.action_size))
        if float(state.done):
            break
    assert float(state.done) == 1.0 and float(state.pipeline_state.x.pos[0, 2]) < 0.2


def test_ant_thrown_at_a_wall_stops_at_its_face():
    env, reset, step, init = jitted("ant_u_maze")
    state = reset(jax.random.PRNGKey(1))  # the start cell (1, 1) is centred at (4, 4)
    qd = jnp.zeros(env.sys.qd_size()).at[0].set(-6.0)  # towards the wall cell (0, 1), face at x = 2
    state = state.replace(pipeline_state=init(state.pipeline_state.q, qd))
    xs = []
    for _ in range(30):
        state = step(state, jnp.zeros(env.action_size))
        xs.append(float(state.pipeline_state.x.pos[0, 0]))
    assert min(xs) > 2.0 + 0.2 and xs[-1] < 3.2  # it got there and the torso (radius 0.25) stayed out


def test_point_mass_has_the_benchmarks_undamped_dynamics():
    """JaxGCRL's ball: density 5 and radius 0.25 (0.327 kg), gear 5, no damping. On the default
    spring backend brax ignores the joints' armature, so full throttle accelerates it at
    5 / 0.327 = 15.3 m/s^2 and its speed grows linearly (a damped ball would level off)."""
    env, reset, step, init = jitted("simple_u_maze")
    mass = float(env.sys.mj_model.body("ball").mass[0])
    np.testing.assert_allclose(mass, 5 * 4 / 3 * math.pi * 0.25**3, rtol=1e-4)
    state = reset(jax.random.PRNGKey(0))
    state = state.replace(pipeline_state=init(state.pipeline_state.q, jnp.zeros(2)))
    speeds = {}
    for t in range(1, 11):  # 0.5 s along the free corridor +y
        state = step(state, jnp.array([0.0, 1.0]))
        speeds[t] = float(state.obs[3])
    for t in (5, 10):
        np.testing.assert_allclose(speeds[t], 5.0 / mass * env.dt * t, rtol=0.01)


@pytest.mark.parametrize(
    "env_id, goal_box",
    [("pusher_easy", ((0.25, -0.60), (0.65, -0.30))), ("pusher_hard", ((-0.10, -0.70), (0.90, 0.30)))],
)
def test_pusher_goals_and_pucks_lie_in_the_benchmarks_world_regions(env_id, goal_box):
    """JaxGCRL's regions in world coordinates (its first sampled coordinate drives the y slide):
    the puck starts in x [0.25, 0.65], y [-0.35, -0.05]; the easy goal is a push in -y."""
    env = make_env(env_id)
    first = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(0), 2000))
    goal, puck = np.asarray(first.info["goal"]), np.asarray(first.obs[:, 10:13])
    (gx0, gy0), (gx1, gy1) = goal_box
    assert gx0 <= goal[:, 0].min() < gx0 + 0.02 and gx1 - 0.02 < goal[:, 0].max() <= gx1
    assert gy0 <= goal[:, 1].min() < gy0 + 0.02 and gy1 - 0.02 < goal[:, 1].max() <= gy1
    np.testing.assert_allclose(goal[:, 2], puck[:, 2], atol=1e-6)  # the goal sits at the puck's height
    kept = np.linalg.norm(puck[:, :2] - goal[:, :2], axis=1) > 0.17 + 1e-4  # not moved off its goal
    assert kept.mean() > 0.8
    assert (puck[kept, 0] >= 0.25 - 1e-6).all() and (puck[kept, 0] <= 0.65 + 1e-6).all()
    assert (puck[kept, 1] >= -0.35 - 1e-6).all() and (puck[kept, 1] <= -0.05 + 1e-6).all()
    assert np.linalg.norm(puck[:, :2] - goal[:, :2], axis=1).min() > 0.17 - 1e-4


def test_render_returns_frames_with_the_goal_drawn():
    env = make_env("simple_u_maze")
    first, _ = rollout("simple_u_maze")
    pipeline_state = jax.tree.map(lambda x: x[0], first.pipeline_state)
    goal = np.asarray(first.info["goal"][0])
    with_goal = envs.render(env, [pipeline_state], goal, height=64, width=64)
    without = envs.render(env, [pipeline_state], None, height=64, width=64)
    assert with_goal[0].shape == (64, 64, 3) and with_goal[0].dtype == np.uint8
    assert with_goal[0].std() > 5  # not blank
    green = (with_goal[0][..., 1].astype(int) - with_goal[0][..., 0]) > 60
    green_without = (without[0][..., 1].astype(int) - without[0][..., 0]) > 60
    assert green.sum() > green_without.sum()


def test_gl_backend_is_chosen_among_installed_libraries(monkeypatch):
    render_module = importlib.import_module("envs.render")  # `envs.render` is the function

    for libraries, nvidia, expected in [
        ({"OSMesa"}, False, "osmesa"),
        ({"EGL", "OSMesa"}, True, "egl"),
        ({"EGL"}, False, "disable"),  # EGL without an NVIDIA device: no headless context here
        (set(), False, "disable"),
    ]:
        monkeypatch.delenv("MUJOCO_GL", raising=False)
        monkeypatch.setattr(
            render_module.ctypes.util, "find_library", lambda name, libs=libraries: name if name in libs else None
        )
        monkeypatch.setattr(
            render_module.glob, "glob", lambda pattern, nvidia=nvidia: ["/dev/nvidia0"] if nvidia else []
        )
        assert render_module.choose_gl_backend() == expected
    monkeypatch.setenv("MUJOCO_GL", "osmesa")  # the user's choice wins
    assert render_module.choose_gl_backend() == "osmesa"


def test_without_opengl_envs_import_and_train_and_videos_are_refused(tmp_path):
    """MUJOCO_GL=disable is what `envs` picks on a machine without an OpenGL library: importing
    envs and stepping work, and --capture-video stops before compiling with what to install."""
    env = {**os.environ, "MUJOCO_GL": "disable"}
    code = (
        "import envs, jax\nenv = envs.make('reacher')\nprint(float(jax.jit(env.reset)(jax.random.PRNGKey(0)).obs[0]))"
    )
    stepped = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert stepped.returncode == 0, stepped.stderr[-2000:]
    script = os.path.join(os.path.dirname(__file__), "..", "algorithms", "crl_infonce.py")
    video = subprocess.run(
        [sys.executable, script, "--capture-video", "--run-root", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert video.returncode == 2 and "apt-get install libosmesa6" in video.stderr, video.stderr[-2000:]
    assert "Traceback" not in video.stderr and not os.listdir(tmp_path)  # nothing was started


def test_env_demo_runs_and_writes_a_gif_with_one_frame_per_step(tmp_path):
    import subprocess
    import sys

    from PIL import Image

    gif = tmp_path / "demo.gif"
    command = [sys.executable, "-m", "envs", "--env-id", "simple_u_maze", "--num-envs", "2", "--steps", "12"]
    result = subprocess.run([*command, "--video", str(gif)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "env steps/s" in result.stdout
    with Image.open(gif) as image:
        assert image.n_frames >= 10  # 12 steps; GIF writers may merge identical frames
    bad = subprocess.run([*command[:3], "--env-id", "simple_maze_u"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "Did you mean" in bad.stderr and "Traceback" not in bad.stderr


# ------------------------------------------------------------------ physical checks per family
@functools.cache
def jitted(env_id: str):
    """(env, jitted reset, jitted step, jitted pipeline_init) of the cached test env."""
    env = make_env(env_id)
    return env, jax.jit(env.reset), jax.jit(env.step), jax.jit(env.pipeline_init)


def _run(step, state, action, n):
    for _ in range(n):
        state = step(state, action)
    return state


def test_arm_end_effector_moves_to_the_commanded_joint_targets():
    env, reset, step, _ = jitted("arm_reach")
    state = reset(jax.random.PRNGKey(0))
    action = jnp.array([0.3, -0.2, 0.2, 0.0, -1.0])  # an end-effector target 0.5 m above the table
    ranges = np.array([[0.3491, 2.7925], [0.0, 1.48353], [-3.0718, -0.0698], [2.3562, 3.7525]])
    targets = ranges[:, 0] + (np.asarray(action[:4]) + 1) / 2 * (ranges[:, 1] - ranges[:, 0])
    # where the end effector would be with the joints exactly at their targets (MuJoCo forward kinematics)
    model = env.sys.mj_model
    data = mujoco.MjData(model)
    data.qpos[:7] = (targets[0], targets[1], 0.0, targets[2], 0.0, targets[3], 1.4487)
    mujoco.mj_kinematics(model, data)
    expected = data.site_xpos[model.site("tcp").id]
    start = np.asarray(state.obs[7:10])
    state = _run(step, state, action, 30)
    joints, eef = np.asarray(state.obs[:7]), np.asarray(state.obs[7:10])
    np.testing.assert_allclose(joints[[0, 1, 3, 5]], targets, atol=0.01)  # gravity-compensated position servos
    np.testing.assert_allclose(joints[[2, 4, 6]], (0.0, 0.0, 1.4487), atol=0.01)  # the held joints
    assert np.linalg.norm(eef - expected) < 0.02 < 0.2 < np.linalg.norm(start - expected)
    assert np.linalg.norm(np.asarray(state.obs[10:13])) < 0.05  # settled


def test_arm_gripper_opens_and_closes_on_command():
    env, reset, step, _ = jitted("arm_push_easy")
    state = reset(jax.random.PRNGKey(1))
    opening = 16  # state layout: cube (3), joints (7), eef (3), eef velocity (3), opening, force
    state = _run(step, state, jnp.array([0.0, 0.0, 0.0, 0.0, -1.0]), 5)
    assert float(state.obs[opening]) > 0.075
    state = _run(step, state, jnp.array([0.0, 0.0, 0.0, 0.0, 1.0]), 5)
    assert float(state.obs[opening]) < 0.005
    state = _run(step, state, jnp.array([0.0, 0.0, 0.0, 0.0, -1.0]), 5)
    assert float(state.obs[opening]) > 0.075


def test_arm_picks_up_the_cube_with_a_scripted_grasp():
    """Joint targets from a small numerical IK: above the cube, down, close, lift 0.2 m."""
    from scipy.optimize import least_squares

    env, reset, step, _ = jitted("arm_push_easy")
    model = env.sys.mj_model
    data = mujoco.MjData(model)
    ranges = np.array([[0.3491, 2.7925], [0.0, 1.48353], [-3.0718, -0.0698], [2.3562, 3.7525]])

    def tcp_and_hand_axis(a):
        t = ranges[:, 0] + (a + 1) / 2 * (ranges[:, 1] - ranges[:, 0])
        data.qpos[:7] = (t[0], t[1], 0.0, t[2], 0.0, t[3], 1.4487)
        mujoco.mj_kinematics(model, data)
        return data.site_xpos[model.site("tcp").id], data.xmat[model.body("hand").id].reshape(3, 3)[:, 2]

    def joint_action(point):  # the tool point at `point`, the fingers pointing down
        def residual(a):
            tcp, axis = tcp_and_hand_axis(a)
            return np.concatenate([tcp - point, 0.3 * (axis - (0.0, 0.0, -1.0))])

        return least_squares(residual, np.zeros(4), bounds=(-1.0, 1.0)).x

    state = reset(jax.random.PRNGKey(0))
    cube = np.asarray(state.obs[:3])
    for offset, gripper, steps in [(0.15, -1.0, 15), (0.0, -1.0, 15), (0.0, 1.0, 10), (0.2, 1.0, 20)]:
        action = np.append(joint_action(cube + (0.0, 0.0, offset)), gripper)
        state = _run(step, state, jnp.asarray(action, jnp.float32), steps)
    lifted = np.asarray(state.obs[:3])
    assert lifted[2] > cube[2] + 0.15  # the cube went up with the gripper
    assert np.linalg.norm(lifted[:2] - cube[:2]) < 0.02
    assert 0.03 < float(state.obs[16]) < 0.06  # the fingers rest on the 5 cm cube


def test_ant_push_block_moves_only_when_pushed():
    env, reset, step, init = jitted("ant_push")
    state = reset(jax.random.PRNGKey(2))
    idle = _run(step, state, jnp.zeros(8), 10)
    np.testing.assert_allclose(idle.obs[29:31], (8.5, 8.5), atol=1e-4)  # nobody touches it: it stays
    # the torso runs at 4 m/s in +x into the block's west face (x = 7)
    q = state.pipeline_state.q.at[:2].set(jnp.array([6.5, 8.5]))
    qd = jnp.zeros(env.sys.qd_size()).at[0].set(4.0)
    pushed = _run(step, state.replace(pipeline_state=init(q, qd)), jnp.zeros(8), 10)
    assert float(pushed.obs[29]) > 8.6 and abs(float(pushed.obs[30]) - 8.5) < 0.2


def test_ant_ball_rolls_when_kicked():
    env, reset, step, init = jitted("ant_ball")
    state = reset(jax.random.PRNGKey(3))
    q = state.pipeline_state.q.at[15:17].set(jnp.array([3.0, 3.0]))  # well away from the ant
    qd = jnp.zeros(env.sys.qd_size()).at[14].set(2.0)  # a kick: 2 m/s along +x
    state = _run(step, state.replace(pipeline_state=init(q, qd)), jnp.zeros(8), 10)
    ball = state.pipeline_state.x.pos[-1]
    spin = state.pipeline_state.xd.ang[-1]
    speed = float(state.pipeline_state.xd.vel[-1][0])
    assert float(ball[0]) > 3.5 and abs(float(ball[1]) - 3.0) < 0.05
    assert abs(float(ball[2]) - env.BALL_RADIUS) < 0.02  # on the floor
    assert speed > 0.2 and float(spin[1]) > 0.5 * speed / env.BALL_RADIUS  # rolling, not sliding


@pytest.mark.parametrize("backend", ["spring", "generalized"])
def test_humanoid_body_features_equal_brax_humanoids(backend):
    """The inertia and centre-of-mass velocity features are brax's own (its humanoid env's
    observation, which JaxGCRL's humanoid repeats), on a state in motion."""
    from brax.envs.humanoid import Humanoid as BraxHumanoid

    env = envs.make("humanoid", backend=backend)
    state = jax.jit(env.reset)(jax.random.PRNGKey(0))
    step = jax.jit(env.step)
    for k in range(5):
        state = step(state, jax.random.uniform(jax.random.PRNGKey(k), (env.action_size,), minval=-1.0, maxval=1.0))
    brax_obs = jax.jit(BraxHumanoid(backend=backend)._get_obs)(state.pipeline_state, jnp.zeros(env.action_size))
    # ours: [q (24), qd (23), features (176)]; brax's: [q without x, y (22), qd (23), features (176), forces]
    np.testing.assert_allclose(state.obs[47 : env.state_dim], brax_obs[45 : 45 + 176], atol=1e-5)


def test_humanoid_state_part_ignores_the_goal():
    env, reset, step, _ = jitted("humanoid")
    state = reset(jax.random.PRNGKey(4))
    moved = state.replace(info={**state.info, "goal": state.info["goal"] + jnp.array([3.0, -2.0, 0.5])})
    action = jax.random.uniform(jax.random.PRNGKey(5), (env.action_size,), minval=-1.0, maxval=1.0)
    a, b = step(state, action), step(moved, action)
    np.testing.assert_array_equal(a.obs[: env.state_dim], b.obs[: env.state_dim])
    assert not np.allclose(a.obs[env.state_dim :], b.obs[env.state_dim :])
    assert float(a.metrics["dist"]) != float(b.metrics["dist"])


ARM_STEP_AT_256 = """
import os, sys, jax, envs
env = envs.make(sys.argv[1], episode_length=2)  # every other step auto-resets all 256 envs
jax.config.update("jax_compilation_cache_dir", os.path.expanduser("~/.cache/gcrl-jax-tests"))
vec = envs.VecEnv(env, 256)

@jax.jit
def run(key):
    def body(state, k):
        action = jax.random.uniform(k, (256, env.action_size), minval=-1.0, maxval=1.0)
        return vec.step(state, action), None

    return jax.lax.scan(body, vec.reset(key), jax.random.split(key, 4))[0].obs

for call in range(3):
    run(jax.random.PRNGKey(call)).block_until_ready()
print("stepped", flush=True)
"""


@pytest.mark.parametrize("env_id", [i for i in ALL_IDS if i.startswith("arm_")])
def test_arm_task_steps_256_envs_on_cpu_without_hanging(env_id):
    """At 256 envs with auto-resets, XLA's concurrency-optimised CPU scheduler made the cube
    tasks hang within one or two calls; the arm now turns it off (envs/base.py:
    set_cpu_xla_flags). A fresh process, as a user's `--num-envs 256` run; a hang fails the
    test at the timeout instead of stalling the suite."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    try:
        result = subprocess.run(
            [sys.executable, "-c", ARM_STEP_AT_256, env_id], capture_output=True, text=True, env=env, timeout=420
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{env_id} at 256 envs did not finish 3 calls of 4 steps in 420 s (a hang)")
    assert result.returncode == 0 and "stepped" in result.stdout, result.stderr[-3000:]


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
