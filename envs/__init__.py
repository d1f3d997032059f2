"""Goal-conditioned brax environments and their registry.

    import envs
    env = envs.make("ant_u_maze")                 # a GoalEnv (see envs/base.py)
    vec = envs.VecEnv(env, num_envs=256)          # batched, auto-resets to fresh goals
    state = vec.reset(jax.random.PRNGKey(0))
    state = vec.step(state, actions)              # actions: (256, env.action_size)
    metrics, episode = vec.evaluate(policy, key)  # one episode per env; env 0's states to render
    metrics, _ = vec.evaluate(policy, key, task_episodes=8)  # and 8 of each of env.tasks (named tasks)
    frames = envs.render(env, pipeline_states, goals)

`envs.ENV_IDS` lists every id; `ant_maze`, `humanoid_maze` and `simple_maze` are aliases of the
U mazes. Every env has five named evaluation tasks, `env.tasks` (`python -m envs --list-tasks`). `make(env_id, backend=None, episode_length=None, **overrides)` passes `overrides` to the
env's constructor (for example `dense_reward=True`).
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import io

from envs.render import choose_gl_backend

# mujoco reads MUJOCO_GL when it is imported, so the headless rendering backend is chosen here,
# among those whose library is installed (none is needed to train; see envs/render.py).
choose_gl_backend()

# mujoco's MJX prints a line about its optional `warp` backend on import; we do not use it.
with contextlib.redirect_stdout(io.StringIO()):
    import jax
    from mujoco import mjx

    from envs.ant import Ant, AntBall, AntPush
    from envs.arm import Arm
    from envs.base import GoalEnv, VecEnv
    from envs.cheetah import Cheetah
    from envs.humanoid import Humanoid
    from envs.point import PointMaze
    from envs.pusher import Pusher
    from envs.reacher import Reacher
    from envs.render import RenderingUnavailable, check_rendering, episode_video, gif_bytes, render, save_gif

# env_id -> (constructor, fixed keyword arguments)
_REGISTRY = {
    "reacher": (Reacher, {}),
    "cheetah": (Cheetah, {}),
    "pusher_easy": (Pusher, {"difficulty": "easy"}),
    "pusher_hard": (Pusher, {"difficulty": "hard"}),
    "ant": (Ant, {}),
    "ant_ball": (AntBall, {}),
    "ant_push": (AntPush, {}),
    "ant_u_maze": (Ant, {"maze": "u"}),
    "ant_big_maze": (Ant, {"maze": "big"}),
    "ant_hardest_maze": (Ant, {"maze": "hardest"}),
    "ant_giant_maze": (Ant, {"maze": "giant"}),
    "humanoid": (Humanoid, {}),
    "humanoid_u_maze": (Humanoid, {"maze": "u"}),
    "humanoid_big_maze": (Humanoid, {"maze": "big"}),
    "humanoid_hardest_maze": (Humanoid, {"maze": "hardest"}),
    "humanoid_giant_maze": (Humanoid, {"maze": "giant"}),
    "simple_u_maze": (PointMaze, {"layout": "u"}),
    "simple_big_maze": (PointMaze, {"layout": "big"}),
    "simple_hardest_maze": (PointMaze, {"layout": "hardest"}),
    "simple_giant_maze": (PointMaze, {"layout": "giant"}),
    "arm_reach": (Arm, {"task": "reach"}),
    "arm_grasp": (Arm, {"task": "grasp"}),
    "arm_push_easy": (Arm, {"task": "push_easy"}),
    "arm_push_hard": (Arm, {"task": "push_hard"}),
    "arm_binpick_easy": (Arm, {"task": "binpick_easy"}),
    "arm_binpick_hard": (Arm, {"task": "binpick_hard"}),
}
ALIASES = {"ant_maze": "ant_u_maze", "humanoid_maze": "humanoid_u_maze", "simple_maze": "simple_u_maze"}
ENV_IDS = tuple(sorted(_REGISTRY))
BACKENDS = ("generalized", "spring", "positional", "mjx")

__all__ = [
    "ENV_IDS",
    "ALIASES",
    "BACKENDS",
    "GoalEnv",
    "VecEnv",
    "make",
    "render",
    "check_rendering",
    "episode_video",
    "RenderingUnavailable",
    "save_gif",
    "gif_bytes",
]


def make(env_id: str, backend: str | None = None, episode_length: int | None = None, **overrides) -> GoalEnv:
    """Build the env registered as `env_id` (or an alias); `backend=None` keeps its default."""
    env_id = ALIASES.get(env_id, env_id)
    if env_id not in _REGISTRY:
        known = ENV_IDS + tuple(ALIASES)
        close = difflib.get_close_matches(env_id, known, n=1, cutoff=0.0)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ValueError(
            f"Unknown env id '{env_id}'.{hint} Valid ids: {', '.join(ENV_IDS)} (aliases: {', '.join(sorted(ALIASES))})."
        )
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"Unknown backend '{backend}'; choose one of {', '.join(BACKENDS)}.")
    constructor, fixed = _REGISTRY[env_id]
    kwargs = {**fixed, **overrides}
    if backend is not None:
        kwargs["backend"] = backend
    if episode_length is not None:
        kwargs["episode_length"] = episode_length
    with _models_on_this_process():
        env = constructor(**kwargs)
    env.env_id = env_id
    return env


@contextlib.contextmanager
def _models_on_this_process():
    """MJX places a model on jax.devices()[0] unless told otherwise (brax does not tell it). In
    a multi-process run (jax.distributed) that device belongs to process 0, so the other
    processes could not use their env; place the model on this process's first device. (Asking
    jax.process_count() here would start JAX's backends before an arm or pusher constructor can
    turn off XLA's CPU fusion emitters.)"""
    if not jax.distributed.is_initialized() or jax.process_count() == 1:
        yield
        return
    put_model = mjx.put_model
    mjx.put_model = functools.partial(put_model, device=jax.local_devices()[0])
    try:
        yield
    finally:
        mjx.put_model = put_model
