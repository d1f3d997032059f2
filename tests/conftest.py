"""Shared test setup and helpers.

Setup: a persistent XLA compilation cache outside the repository, so that a second run of the
suite on the same machine skips most compiles (the algorithms' subprocesses use it too). The
headless GL backend is chosen by `envs` itself, as for a user; the rendering tests need one
installed.

Helpers: the algorithm files (discovered in algorithms/), loading one as a module, the tiny
training flags the fast tests use, TensorBoard's reader, the random-policy baseline and the
learning tests' configuration.

Markers: `slow` marks the tests that train to a success threshold, or start fresh processes that
each compile a whole training run (resume, several devices, the results scripts end to end, the
arm at 256 envs), or compile a whole run beyond each file's one compile-once run (the 16-layer
critic); `pytest -m "not slow"` is the quick subset (docs/tests.md).

Two workers (pyproject.toml: `-n 2`, pytest-xdist): the tests that share a process-level build
(one env's compiled rollout, one algorithm's resumed runs or two-device runs) are one group and
run in one worker (`work_unit` below); the slow tests are handed out first, so that the long
ones do not finish alone. `-n 0` runs in this process, for debugging one test.
"""

import json
import os

# The suite builds envs after JAX has started, too late for an arm or pusher to set the XLA
# flags it needs on CPU (envs/base.py: set_cpu_xla_flags), so it sets them for every test, as
# a user's process gets them when it builds an arm first. This differs from a user's reacher
# or maze run, which keeps XLA's defaults: the fusion-emitter flag also shortens every compile
# by a third (results/notes/env_throughput.md), which a 2-core suite needs.
from envs.base import FUSION_FLAG, SCHEDULER_FLAG, set_cpu_xla_flags

# The XLA_FLAGS the suite was started with (None: unset), before it adds its own below: what the
# learning runs get (`user_process_env`). The first process to import this file (pytest's, or
# xdist's controller) records them in a variable that its workers inherit, since they inherit
# XLA_FLAGS with the suite's flags already added.
USER_FLAGS_VARIABLE = "GCRL_TESTS_USER_XLA_FLAGS"
os.environ.setdefault(USER_FLAGS_VARIABLE, json.dumps(os.environ.get("XLA_FLAGS")))
USER_XLA_FLAGS = json.loads(os.environ[USER_FLAGS_VARIABLE])
set_cpu_xla_flags("the test suite", (FUSION_FLAG, SCHEDULER_FLAG))

# The suite compiles a few hundred programs and runs most of them for a handful of steps, so it
# turns off LLVM's optimisation of the compiled code, 40-50% of every CPU compile (the pusher's
# step: 20 s against 10 s, results/notes/test_suite.md). The code then runs 2-5x slower, which only
# the tests that train for minutes notice: those start a fresh process with the XLA flags a
# user's process has, without this one or the two above (`train_like_a_user`). XLA's own graph
# optimisations are unchanged.
SUITE_ONLY_FLAG = "--xla_backend_optimization_level=0"
if SUITE_ONLY_FLAG not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {SUITE_ONLY_FLAG}".strip()
# Two workers on one GPU must not each reserve most of its memory.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
CACHE_DIR = os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.expanduser("~/.cache/gcrl-jax-tests"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "1.0")  # subprocesses inherit both

import jax  # noqa: E402

jax.config.update("jax_compilation_cache_dir", CACHE_DIR)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)

import ast  # noqa: E402
import dataclasses  # noqa: E402
import functools  # noqa: E402
import importlib.util  # noqa: E402
import pathlib  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import types  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

import envs  # noqa: E402
from algorithms import run  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parent.parent
# The algorithm files under test: each names itself in ALGORITHM and has its own test file,
# tests/test_{name}.py. A new algorithm file joins the suite's shared tests (a tiny run and its
# tags, resume, videos, seeds) when it gets that file, not merely by existing.
ALGORITHMS = tuple(
    sorted(
        path.stem
        for path in (REPO / "algorithms").glob("*.py")
        if "\nALGORITHM = " in path.read_text() and (REPO / "tests" / f"test_{path.stem}.py").exists()
    )
)


# A fork, as a researcher makes one: crl_infonce.py copied to a new name outside the repository,
# with another critic objective, a new metric in the update's dict, a new field in the train
# state and a changed host loop (the README's recipe: a subclass of run.main.Run, started by a
# copy of run.main). The tests that every algorithm file passes (a tiny run and its tags,
# resume, two devices) run on it too, with no edit anywhere else.
FORK = "crl_fork"


class ForkEdits(ast.NodeTransformer):
    """The fork's edits, made on crl_infonce.py's syntax tree rather than on its text, so that a
    cosmetic change of the file (a comment, a line break, a reformatted call) cannot break the
    fork. Each edit counts where it applied; `fork_dir` checks that each applied once."""

    def __init__(self):
        self.applied = {"objective": 0, "metric": 0, "field": 0, "init": 0, "update": 0, "main": 0, "cli": 0}

    def visit_Call(self, node):
        self.generic_visit(node)
        name = node.func.id if isinstance(node.func, ast.Name) else None
        # the objective: the symmetric InfoNCE, whatever --contrastive-loss says
        arg = node.args[1] if name == "contrastive_loss" and len(node.args) == 2 else None
        if isinstance(arg, ast.Attribute) and arg.attr == "contrastive_loss":
            node.args[1] = ast.Constant("sym_infonce")
            self.applied["objective"] += 1
        # the new train-state field's value: zero at the start, then the transitions seen
        if name == "TrainState":
            updating = any(isinstance(n, ast.Name) and n.id == "ts" for n in ast.walk(node))
            value = "ts.transitions_seen + args.batch_size" if updating else "jnp.zeros(())"
            node.args.append(ast.parse(value, mode="eval").body)
            self.applied["update" if updating else "init"] += 1
        return node

    def visit_Dict(self, node):  # a new metric, in the update's dict of metrics
        self.generic_visit(node)
        if any(isinstance(k, ast.Constant) and k.value == "entropy" for k in node.keys):
            node.keys.append(ast.Constant("twice_critic_loss"))
            node.values.append(ast.parse("2 * critic_loss", mode="eval").body)
            self.applied["metric"] += 1
        return node

    def visit_Module(self, node):  # the changed host loop, above the file's `main`
        self.generic_visit(node)
        copied = ast.parse((REPO / "algorithms" / "run" / "main.py").read_text())
        (run_main,) = [n for n in copied.body if isinstance(n, ast.FunctionDef) and n.name == "main"]
        run_main.name = "fork_main"
        for call in ast.walk(run_main):
            if isinstance(call, ast.Attribute) and isinstance(call.value, ast.Name) and call.value.id == "Run":
                call.value.id = "ForkRun"
        host_loop = ast.parse(FORK_RUN).body + [run_main]
        at = next(i for i, n in enumerate(node.body) if isinstance(n, ast.FunctionDef) and n.name == "main")
        node.body[at:at] = host_loop
        return node

    def visit_FunctionDef(self, node):  # the file's main(args) calls the fork's copy of run.main
        self.generic_visit(node)
        if node.name == "main" and len(node.args.args) == 1:
            node.body = [ast.parse("return fork_main(ALGORITHM, args)").body[0]]
            self.applied["main"] += 1
        return node

    def visit_If(self, node):  # and so does `python crl_fork.py`
        self.generic_visit(node)
        if "__main__" in ast.unparse(node.test):
            node.body = [ast.parse("run.cli(ALGORITHM, fork_main)").body[0]]
            self.applied["cli"] += 1
        return node

    def visit_ClassDef(self, node):  # a new train-state field: the transitions the update has seen
        self.generic_visit(node)
        if node.name == "TrainState":
            node.body.append(ast.parse("transitions_seen: jax.Array").body[0])
            self.applied["field"] += 1
        return node


FORK_RUN = """
from algorithms.run.main import *


class ForkRun(Run):
    \"\"\"The host loop with one change: it says how far it trained.\"\"\"

    def train(self, stop):
        super().train(stop)
        print(f"fork: trained to training step {self.reached}")
"""


@functools.cache
def fork_dir() -> pathlib.Path:
    """A folder outside the repository holding FORK.py, made once per test process."""
    import tempfile

    folder = pathlib.Path(tempfile.mkdtemp(prefix="fork_"))
    (folder / f"{FORK}.py").write_text(fork_source((REPO / "algorithms" / "crl_infonce.py").read_text()))
    return folder


def fork_source(source: str) -> str:
    """The fork of crl_infonce.py's `source` (see ForkEdits)."""
    edits = ForkEdits()
    tree = edits.visit(ast.parse(source))
    missed = [edit for edit, count in edits.applied.items() if count != 1]
    assert not missed, f"the fork's edits {missed} no longer apply once each to crl_infonce.py: {edits.applied}"
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


def algorithm_path(name: str) -> pathlib.Path:
    """Where an algorithm file is: algorithms/{name}.py, or the fork's folder for FORK."""
    return fork_dir() / f"{name}.py" if name == FORK else REPO / "algorithms" / f"{name}.py"


def load_algorithm(name: str, folder: str = "algorithms"):
    """Import {folder}/{name}.py as a module (for FORK, the fork's file); each file is executed
    once per test process."""
    module_name = f"{folder.replace('/', '_')}_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    path = algorithm_path(name) if folder == "algorithms" else REPO / folder / f"{name}.py"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


# A run small enough to compile and train in seconds; flags an algorithm does not have are
# dropped by `tiny`.
TINY = dict(
    env_id="reacher",
    num_envs=4,
    num_eval_envs=2,
    # the named tasks add about 5 s to each compile of a tiny run; test_research_runs.py's
    # compile-once test turns them back on and reads their tags, and the learning runs keep them
    eval_tasks=False,
    unroll_length=10,
    batch_size=16,
    buffer_size=100,
    learning_starts=10,
    width=16,
    depth=1,
    repr_dim=8,
    updates_per_rollout=2,
)


def tiny(name: str, **changes) -> dict:
    """TINY (without the flags this algorithm does not have) plus `changes`, as keyword
    arguments of algorithms/{name}.py's Args."""
    known = {f.name for f in dataclasses.fields(load_algorithm(name).Args)}
    return {**{k: v for k, v in TINY.items() if k in known}, **changes}


def as_flags(kwargs: dict) -> list[str]:
    """Args keyword arguments as command-line flags (a boolean as --name or --no-name)."""
    flags = []
    for k, v in kwargs.items():
        name = k.replace("_", "-")
        flags.append((f"--{name}" if v else f"--no-{name}") if isinstance(v, bool) else f"--{name}={v}")
    return flags


def read_scalars(run_dir: str) -> EventAccumulator:
    """A run directory's event files, read back with TensorBoard's own reader."""
    accumulator = EventAccumulator(run_dir)
    accumulator.Reload()
    return accumulator


def random_policy_success(env_id: str, episode_length: int, num_episodes: int, seed: int) -> float:
    """The algorithms' evaluation protocol (first episode per env, reached the goal at least
    once) with uniformly random actions in [-1, 1]."""
    vec = envs.VecEnv(envs.make(env_id, episode_length=episode_length), num_episodes)
    metrics, _ = jax.jit(vec.evaluate, static_argnums=0)(None, jax.random.PRNGKey(seed))
    return float(metrics["success_rate"])


# The learning tests: the point-mass U maze, 200-step episodes, 640k env steps on 256 envs,
# evaluated at 0, half-way and the end.
LEARNING = dict(
    env_id="simple_u_maze",
    episode_length=200,
    num_envs=256,
    unroll_length=50,
    total_timesteps=640_000,
    learning_starts=200,
    num_evals=2,
    num_eval_envs=256,
    seed=1,
)


def user_process_env() -> dict[str, str]:
    """This process's environment with the XLA settings a user's run gets: the XLA_FLAGS the suite
    started with, none of the flags it adds for itself.

    The flags change the compiled code's floating-point rounding, and a learning run magnifies
    that: crl_infonce's learning run ended at 0.281 success with the suite's fusion and scheduler
    flags and 0.629 without (seed 1, the same command; results/notes/test_suite.md)."""
    env = {key: value for key, value in os.environ.items() if key not in ("XLA_FLAGS", USER_FLAGS_VARIABLE)}
    if USER_XLA_FLAGS is not None:
        env["XLA_FLAGS"] = USER_XLA_FLAGS
    return env


def train_like_a_user(name: str, run_root, **flags) -> list[str]:
    """Run `python algorithms/{name}.py` with these Args keyword arguments in a fresh process
    (`user_process_env`). Returns its run directories. For the tests that train for minutes."""
    env = user_process_env()
    command = [sys.executable, str(REPO / "algorithms" / f"{name}.py"), *as_flags({**flags, "run_root": run_root})]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1200)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return sorted(str(path) for path in pathlib.Path(run_root).iterdir())


# ------------------------------------------------------------------ running on two workers
# The tests that share a process-level build run in one worker: in these files, the tests with
# the same parameter (an env's compiled rollout, an algorithm's resumed or two-device runs), and
# the tests named in SAME_WORKER (one jitted env).
GROUPED_BY_PARAMETER = {"test_env_contract.py", "test_research_runs.py", "test_devices.py"}
SAME_WORKER = {
    "test_arm_gripper_opens_and_closes_on_command": "jitted arm_push_easy",
    "test_arm_picks_up_the_cube_with_a_scripted_grasp": "jitted arm_push_easy",
    "test_arm_end_effector_stays_under_2_5_m_per_s_under_full_range_swings": "jitted arm_push_easy",
}


def work_unit(nodeid: str) -> str:
    """The name of the group a test (by its pytest id) is scheduled with; its own id if none."""
    path, _, test = nodeid.partition("::")
    name, _, parameter = test.partition("[")
    if name in SAME_WORKER:
        return SAME_WORKER[name]
    if parameter and pathlib.Path(path).name in GROUPED_BY_PARAMETER:
        return f"{path}[{parameter}"
    return nodeid


def pytest_xdist_make_scheduler(config, log):
    """pytest-xdist's scope scheduler with the groups of `work_unit` as its scopes: a worker
    takes a whole group, in the order of the collection (see below)."""
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return GroupScheduling(config, log)


@pytest.hookimpl(trylast=True)  # after pytest has grouped the tests that share a fixture
def pytest_collection_modifyitems(config, items):
    """The longest first: the learning tests (minutes each), then the other slow tests, then
    the rest. The sort is stable, so each fixture's tests stay together."""

    def rank(item) -> int:
        if item.originalname.startswith("test_learns"):
            return 0
        return 1 if item.get_closest_marker("slow") else 2

    items.sort(key=rank)


# ------------------------------------------------------------------ sac_her and td3_her
def check_her_rewards_are_recomputed_on_real_transitions(module) -> None:
    """A HER batch (relabel ratio 0.5) from the buffer after six tiny rollouts of reacher: half
    the goals are relabelled to future states, every reward is the env's success for the
    transition's next state and its goal, and hindsight goals are reached more often."""
    args = module.Args(**tiny(module.ALGORITHM.name), relabel_ratio=0.5)
    env = run.make_env(args)
    init, training_step, _, buffer = module.make_train(args, env, run.make_schedule(args, env))
    chunk = jax.jit(module.make_chunk(training_step))
    carry, _ = chunk(jax.jit(init)(jax.random.PRNGKey(0)), jax.numpy.int32(6))  # 6 rollouts of 10 steps
    batch = buffer.sample_her(carry.buffer_state, jax.random.PRNGKey(1), 4000, 0.5, env.goal_reach_thresh)
    relabelled = np.asarray(batch.relabelled)
    assert abs(relabelled.mean() - 0.5) < 4 * np.sqrt(0.25 / relabelled.size)
    goal = batch.obs[:, env.state_dim :]
    np.testing.assert_array_equal(goal[relabelled], batch.future_goal[relabelled])
    success = jax.vmap(lambda s, g: env._goal_metrics(s, g)[1])(batch.next_obs[:, : env.state_dim], goal)
    np.testing.assert_array_equal(batch.reward, success)
    assert batch.reward[relabelled].mean() > batch.reward[~relabelled].mean()


def check_relabelling_discount_is_its_own_flag(module) -> None:
    """--gamma 0.9 (JaxGCRL's critic discount) leaves HER's goal distribution at 0.99 unless
    --relabel-gamma says otherwise; gamma 1 (uniform) is accepted, beyond 1 is refused."""

    def relabel_gamma_of(**flags) -> float:
        args = module.Args(**tiny(module.ALGORITHM.name), **flags)
        env = run.make_env(args)
        return module.make_train(args, env, run.make_schedule(args, env))[3].gamma

    assert relabel_gamma_of(gamma=0.9) == 0.99
    assert relabel_gamma_of(gamma=0.9, relabel_gamma=0.5) == 0.5
    assert relabel_gamma_of(relabel_gamma=1.0) == 1.0
    with pytest.raises(run.ConfigError, match="--relabel-gamma"):
        relabel_gamma_of(relabel_gamma=1.5)


def random_update_inputs(module):
    """(args, init, update, batch): `module.make_update` for tiny networks on a 4-d state with a
    2-d goal and a 2-d action, and 16 random transitions."""
    from buffers import Batch

    args = module.Args(**tiny(module.ALGORITHM.name))
    obs_dim, action_dim = 6, 2
    env = types.SimpleNamespace(observation_size=obs_dim, state_dim=4, goal_dim=2, action_size=action_dim)
    init, update = module.make_update(args, env)
    keys = jax.random.split(jax.random.PRNGKey(2), 4)
    batch = Batch(
        obs=jax.random.normal(keys[0], (16, obs_dim)),
        action=jax.random.uniform(keys[1], (16, action_dim), minval=-1, maxval=1),
        next_obs=jax.random.normal(keys[2], (16, obs_dim)),
        terminated=jax.numpy.zeros(16),
        truncated=jax.numpy.zeros(16),
        future_goal=jax.numpy.zeros((16, 2)),
        reward=(jax.random.uniform(keys[3], (16,)) < 0.3).astype(jax.numpy.float32),
        relabelled=jax.numpy.zeros(16, bool),
    )
    return args, init, update, batch


def perturbed(tree, key, scale: float = 0.3):
    """`tree` with Gaussian noise of std `scale` added to every leaf."""
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(treedef, [x + scale * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)])


# ------------------------------------------------------------------ envs
NUM_ENVS = 4
NUM_STEPS = 100
EPISODE_LENGTH = 10


# One env per family runs in the quick subset; the rest of a family shares its code and is
# marked slow (each env is one compile: 20-60 s cold on 2 cores, the arm's the longest).
FIRST_OF_FAMILY = {
    "reacher",
    "cheetah",
    "pusher_easy",
    "ant",
    "ant_ball",
    "ant_push",
    "ant_u_maze",
    "humanoid",
    "humanoid_u_maze",
    "simple_u_maze",
    "arm_reach",
}
SAME_STEP_AS = {
    "pusher_hard": "pusher_easy",
    "ant_big_maze": "ant_u_maze",
    "ant_hardest_maze": "ant_u_maze",
    "ant_giant_maze": "ant_u_maze",
    "humanoid_big_maze": "humanoid_u_maze",
    "humanoid_hardest_maze": "humanoid_u_maze",
    "humanoid_giant_maze": "humanoid_u_maze",
    "simple_big_maze": "simple_u_maze",
    "simple_hardest_maze": "simple_u_maze",
    "simple_giant_maze": "simple_u_maze",
    "arm_push_hard": "arm_push_easy",
    "arm_binpick_hard": "arm_binpick_easy",
}


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


@functools.cache
def first_states(env_id: str):
    """The first states of `rollout` (the same NUM_ENVS reset keys) from a compiled reset alone:
    a few seconds, where the rollout compiles the step too."""
    vec = envs.VecEnv(make_env(env_id), NUM_ENVS)
    return jax.jit(vec.reset)(jax.random.split(jax.random.PRNGKey(0))[0])


# ------------------------------------------------------------------ physical checks per family
@functools.cache
def jitted(env_id: str):
    """(env, jitted reset, jitted step, jitted pipeline_init) of the cached test env."""
    env = make_env(env_id)
    return env, jax.jit(env.reset), jax.jit(env.step), jax.jit(env.pipeline_init)
