"""Physics per env family, against the benchmark's tasks: contacts (walls, floor), termination,
the point mass's dynamics, the pusher's regions and a scripted push, the arm's servos and a
scripted grasp, the bins and a scripted bin pick, the block and the ball, the humanoid's
features."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from conftest import jitted, load_algorithm, make_env

import envs


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
    """JaxGCRL's ball: gear 5, no damping, and (its XML's spring_mass_scale 1) unit mass on the
    default spring backend, so full throttle gains 0.25 m/s per 0.05 s step (5 m/s^2), measured
    with JaxGCRL's own env at its pins (results/notes/maze_walls.md), and its speed grows linearly
    (a damped ball would level off). Without the scale brax used the sphere's 0.327 kg: 15.3 m/s^2."""
    env, reset, step, init = jitted("simple_u_maze")
    state = reset(jax.random.PRNGKey(0))
    state = state.replace(pipeline_state=init(state.pipeline_state.q, jnp.zeros(2)))
    speeds = {}
    for t in range(1, 11):  # 0.5 s along the free corridor +y
        state = step(state, jnp.array([0.0, 1.0]))
        speeds[t] = float(state.obs[3])
    for t in (5, 10):
        np.testing.assert_allclose(speeds[t], 0.25 * t, rtol=0.01)


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


@pytest.mark.slow  # its own compiled 100-step evaluation with inverse kinematics in the policy: 25 s
def test_pusher_puck_can_be_pushed_onto_its_goal():
    """results/tools/scripted_policy.py's pusher controller (the gripper's cross bar behind the puck,
    inverse kinematics and joint PD torques) puts the puck on pusher_easy's goals within the
    env's 100 steps: 0.59 success over 128 episodes (results/notes/scripted_policy.md), the random policy 0.00.
    A change that stops the gripper from moving the puck, or the puck from stopping within the
    threshold, fails it."""
    scripted = load_algorithm("scripted_policy", folder="results/tools")
    env = envs.make("pusher_easy")
    vec = envs.VecEnv(env, 16)
    metrics, _ = jax.jit(vec.evaluate, static_argnums=0)(scripted.pusher_policy(env), jax.random.PRNGKey(1))
    assert float(metrics["success_rate"]) >= 0.25, metrics  # 0.56 (9 of these 16 episodes)


@pytest.mark.slow  # its own compiled 150-step evaluation with inverse kinematics in the policy
def test_arm_cube_can_be_carried_from_bin_to_bin():
    """results/tools/scripted_policy.py's bin-picking controller (grasp, up over the walls, across,
    down) puts the cube on arm_binpick_easy's goals: 0.97 success over 32 episodes
    (results/notes/scripted_policy.md), the random policy 0.00. Walls too tall to clear, a goal the cube cannot
    reach, or a grip that cannot hold the cube fail it."""
    scripted = load_algorithm("scripted_policy", folder="results/tools")
    env = envs.make("arm_binpick_easy")  # its 150-step episodes
    vec = envs.VecEnv(env, 8)
    metrics, _ = jax.jit(vec.evaluate, static_argnums=0)(scripted.arm_binpick_policy(env), jax.random.PRNGKey(1))
    assert float(metrics["success_rate"]) >= 0.5, metrics  # 0.875 (7 of these 8 episodes)


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
    expected = data.xpos[model.body("link7").id]  # the end effector: link 7's origin
    start = np.asarray(state.obs[7:10])
    state = _run(step, state, action, 30)
    joints, eef = np.asarray(state.obs[:7]), np.asarray(state.obs[7:10])
    np.testing.assert_allclose(joints[[0, 1, 3, 5]], targets, atol=0.01)  # gravity-compensated position servos
    np.testing.assert_allclose(joints[[2, 4, 6]], (0.0, 0.0, 1.4487), atol=0.01)  # the held joints
    assert np.linalg.norm(eef - expected) < 0.02 < 0.2 < np.linalg.norm(start - expected)
    assert np.linalg.norm(np.asarray(state.obs[10:13])) < 0.05  # settled


def test_every_arm_reach_goal_is_within_reach_of_the_driven_joints():
    """Numerical IK over the action box (the four driven joints, the others held) puts the end
    effector within 0.05 m of each of 64 goals drawn by the env (success needs 0.1; the farthest
    measured 0.021). With the point between the fingertips as the end effector, 27% of the goals
    were more than 0.1 m from anywhere the arm can put it."""
    from scipy.optimize import least_squares

    env = make_env("arm_reach")
    _, _, goals = jax.vmap(env._sample_init)(jax.random.split(jax.random.PRNGKey(3), 64))
    model = env.sys.mj_model
    data = mujoco.MjData(model)
    ranges = np.array([[0.3491, 2.7925], [0.0, 1.48353], [-3.0718, -0.0698], [2.3562, 3.7525]])

    def end_effector(a):
        t = ranges[:, 0] + (a + 1) / 2 * (ranges[:, 1] - ranges[:, 0])
        data.qpos[:7] = (t[0], t[1], 0.0, t[2], 0.0, t[3], 1.4487)
        mujoco.mj_kinematics(model, data)
        return data.xpos[model.body("link7").id].copy()

    misses = []
    for goal in np.asarray(goals):
        fit = least_squares(lambda a, g=goal: end_effector(a) - g, np.zeros(4), bounds=(-1.0, 1.0))
        misses.append(np.linalg.norm(end_effector(fit.x) - goal))
    assert max(misses) < 0.05, sorted(misses)[-5:]


def test_arm_end_effector_stays_under_2_5_m_per_s_under_full_range_swings():
    """Joint targets swung between the ends of the action box every 10 steps: the torque limits
    (the Panda's 87 Nm and 12 Nm, as JaxGCRL's model has) keep the end effector under 2.5 m/s
    (1.15 m/s here, at most 1.9 m/s under random actions; the Panda's Cartesian limit is 1.7
    m/s). Without them it reached 14.9 m/s here, and random actions flung the cube metres away."""
    env, reset, step, _ = jitted("arm_push_easy")
    state = reset(jax.random.PRNGKey(2))
    speeds = []
    for swing in range(4):
        action = jnp.full(env.action_size, 1.0 if swing % 2 == 0 else -1.0)
        for _ in range(10):
            state = step(state, action)
            speeds.append(float(np.linalg.norm(np.asarray(state.obs[13:16]))))  # end-effector velocity
    assert 0.5 < max(speeds) < 2.5, max(speeds)


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


# JaxGCRL's bins (its panda_binpick_easy.xml and panda_binpick_hard.xml): the centre x of the left
# bin, the walls' distance from a bin's centre, and whether the hand and fingers touch them
BINS = {"arm_binpick_easy": (-0.17, 0.14, False), "arm_binpick_hard": (-0.3, 0.19, True)}


@pytest.mark.parametrize("env_id", sorted(BINS))
def test_binpick_walls_are_the_benchmarks_and_stop_the_cube(env_id):
    """The bins' walls (1 cm thick, 6.6 cm tall) stand where JaxGCRL's do and touch the cube, and
    in the hard task the hand and fingers. The cube, sliding at 3 m/s from its bin's centre
    towards the other bin, stops at the wall; on the bare table it slides over 0.3 m. MuJoCo's
    own simulator on the env's model: the geometry and contacts are what is tested, and the
    contract tests step the same model through MJX."""
    centre_x, wall_distance, hand_hits = BINS[env_id]
    model = make_env(env_id).sys.mj_model
    walls = [model.geom(i) for i in range(model.ngeom) if model.geom(i).name.startswith("bin")]
    assert len(walls) == 8
    for wall in walls:
        assert wall.size[0] == pytest.approx(0.005) or wall.size[1] == pytest.approx(0.005)
        assert wall.size[2] == pytest.approx(0.033) and wall.pos[2] == pytest.approx(0.033)
        assert _collide(model, "cube", wall.name)
        for part in ("hand", "left_pad", "right_pad"):
            assert _collide(model, part, wall.name) == hand_hits, (part, wall.name)
    x_walls = [w.pos[0] for w in walls if w.size[0] == pytest.approx(0.005)]
    for bin_x in (centre_x, -centre_x):  # each bin's two nearest x walls stand +-wall_distance away
        assert sorted(abs(x - bin_x) for x in x_walls)[:2] == pytest.approx([wall_distance] * 2)
    inner_face = centre_x + wall_distance - 0.005
    data = mujoco.MjData(model)
    cube = model.jnt_qposadr[model.body("cube").jntadr[0]]
    cube_dof = model.jnt_dofadr[model.body("cube").jntadr[0]]
    data.qpos[cube : cube + 7] = (centre_x, 0.6, 0.025, 1.0, 0.0, 0.0, 0.0)
    data.qvel[cube_dof] = 3.0
    xs = []
    for _ in range(250):  # 0.5 s
        mujoco.mj_step(model, data)
        xs.append(data.qpos[cube])
    half = 0.025
    assert max(xs) > inner_face - half - 0.01  # it got to the wall
    assert max(xs) < inner_face  # soft contact: it sank into the wall, by under half its width
    assert xs[-1] < inner_face - half + 0.003  # and came to rest in its bin


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
