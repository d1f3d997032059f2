"""Do the maze walls hold, and does the point mass move as JaxGCRL's does?

    python results/notes/maze_walls.py                      # every maze id, ours only
    python results/notes/maze_walls.py --env-ids simple_big_maze --point-backends spring mjx
    python results/notes/maze_walls.py --env-ids simple_big_maze --peer-root ~/.cache/peer

`results/notes/maze_walls.md` quotes this script's tables with their commands and reads them;
`--output` writes the bare tables to a file of your choosing.

Two measurements per (env id, backend):

* **Full throttle** (point mass only): the ball at rest in the start cell, action (0, 1) every
  step. Its velocity gain per control step over the first ten steps (the acceleration is that
  divided by the control step), and where it is 60 steps later: pressed against the wall
  across the corridor, and how fast it still moves.
* **Bang-bang walk**: `--num-envs` envs from their resets, `--steps` control steps of random
  bang-bang actions (the sign of a uniform draw per action dimension, which is what a
  saturated tanh policy does), the root's x, y and velocity sampled every `--every` steps.
  The envs are never reset, so bodies that fall (ant, humanoid) lie where they fell. The table
  gives the largest velocity component, its 99th percentile, and how many sampled positions
  lie in a wall cell or outside the maze (`envs.maze.Maze.in_wall_or_outside`): of all samples,
  and of those taken before the env's episode terminated (what a training run, which resets a
  fallen body, can see). A maze whose walls hold has none.

`--peer-root` adds JaxGCRL's point mazes, measured by the same two functions in JaxGCRL's own
virtual environment at its pins (a checkout of commit 6dccab2 in `{peer_root}/jaxgcrl`, its venv
in `{peer_root}/venv`, as `shared/tools/setup_peer.sh`-style setups make them): the functions
below use only the brax `PipelineEnv` interface both codebases share (`reset`, `step`,
`pipeline_init`, `pipeline_state.q`/`qd`), and their source is sent to that interpreter.
"""

from __future__ import annotations

import datetime
import inspect
import json
import os
import pathlib
import platform
import subprocess
import sys
import textwrap
from dataclasses import dataclass

import numpy as np
import tyro

MAZE_IDS = tuple(
    f"{body}_{layout}_maze" for body in ("simple", "ant", "humanoid") for layout in ("u", "big", "hardest")
)


@dataclass(frozen=True)
class Args:
    env_ids: tuple[str, ...] = MAZE_IDS
    """the maze envs to check"""
    backends: tuple[str, ...] = ("default",)
    """physics backends for the ant and humanoid mazes ('default': the env's own)"""
    point_backends: tuple[str, ...] = ("spring", "generalized", "positional", "mjx")
    """physics backends for the point mazes (every one they allow)"""
    num_envs: int = 256
    """envs in the bang-bang walk"""
    steps: int = 1000
    """control steps of the walk"""
    every: int = 10
    """sample the walk every this many steps"""
    seed: int = 0
    """the walk's random key"""
    peer_root: str = ""
    """where JaxGCRL's checkout (jaxgcrl/) and venv (venv/) are; empty: ours only"""
    peer_env_ids: tuple[str, ...] = ("simple_u_maze", "simple_big_maze", "simple_hardest_maze")
    """with --peer-root: the point mazes to measure JaxGCRL's env on too"""
    peer_backends: tuple[str, ...] = ("spring",)
    """with --peer-root: on these backends only (JaxGCRL's compiles are slow)"""
    peer_timeout: int = 3600
    """seconds one JaxGCRL measurement may take (its generalized backend took about 25 minutes here)"""
    output: str = ""
    """write the markdown page here (empty: print it)"""


# ------------------------------------------------------------------ the measurements
# Both run unchanged in JaxGCRL's environment (jax 0.4.25, brax 0.12.1): keep them to the API
# the two share, and import inside, as their source is sent there on its own.
def full_throttle(env, start_xy, steps=60):
    """The ball at rest at `start_xy`, pushed along +y every step: (velocity gain per step over
    the first 10 steps, y after `steps` steps, |velocity| after `steps` steps)."""
    import jax
    import jax.numpy as jnp

    state = env.reset(jax.random.PRNGKey(0))
    q = state.pipeline_state.q.at[:2].set(jnp.asarray(start_xy, jnp.float32))
    state = state.replace(pipeline_state=env.pipeline_init(q, jnp.zeros_like(state.pipeline_state.qd)))
    push = jnp.zeros(env.action_size).at[1].set(1.0)

    def body(state, _):
        state = env.step(state, push)
        return state, (state.pipeline_state.q[:2], state.pipeline_state.qd[:2])

    _, (xy, velocity) = jax.jit(lambda s: jax.lax.scan(body, s, None, length=steps))(state)
    gain = float(velocity[9, 1]) / 10
    return gain, float(xy[-1, 1]), float(jnp.linalg.norm(velocity[-1]))


def bang_bang_walk(env, seed, num_envs, steps, every):
    """`num_envs` envs from their resets under random bang-bang actions for `steps` control
    steps, never reset: the root's (x, y) and (vx, vy) every `every` steps, as numpy arrays of
    shape (steps // every, num_envs, 2), and whether each env's episode has terminated by then
    (its body fell: a training run would have reset it), of shape (steps // every, num_envs)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    reset_key, action_key = jax.random.split(jax.random.PRNGKey(seed))
    states = jax.vmap(env.reset)(jax.random.split(reset_key, num_envs))

    def one_step(carry, key):
        states, ended = carry
        draw = jax.random.uniform(key, (num_envs, env.action_size), minval=-1.0, maxval=1.0)
        states = jax.vmap(env.step)(states, jnp.sign(draw))
        return (states, jnp.logical_or(ended, states.done > 0)), None

    def sample(carry, key):
        carry, _ = jax.lax.scan(one_step, carry, jax.random.split(key, every))
        states, ended = carry
        return carry, (states.pipeline_state.q[:, :2], states.pipeline_state.qd[:, :2], ended)

    walk = jax.jit(lambda carry, keys: jax.lax.scan(sample, carry, keys)[1])
    xy, velocity, ended = walk((states, jnp.zeros(num_envs, bool)), jax.random.split(action_key, steps // every))
    return np.asarray(xy), np.asarray(velocity), np.asarray(ended)


# ------------------------------------------------------------------ ours and JaxGCRL's
def summarise(maze, xy, velocity, ended) -> dict:
    """The walk's largest velocity component and its 99th percentile, and how many sampled
    positions lie in a wall cell or outside the maze: of all samples, and of those taken before
    the env's episode terminated (the states a training run sees)."""
    speed = np.abs(velocity).max(axis=-1)
    escaped = maze.in_wall_or_outside(xy)
    return {
        "max_velocity": float(speed.max()),
        "p99_velocity": float(np.percentile(speed, 99)),
        "escaped": int(escaped.sum()),
        "samples": int(escaped.size),
        "escaped_live": int((escaped & ~ended).sum()),
        "live": int((~ended).sum()),
    }


def measure_ours(env_id: str, backend: str, args: Args) -> dict:
    import envs

    env = envs.make(env_id, backend=None if backend == "default" else backend)
    row = {"codebase": "ours", "env_id": env_id, "backend": env.backend, "dt": float(env.dt)}
    if env_id.startswith("simple_"):
        row["gain"], row["end_y"], row["end_speed"] = full_throttle(env, env.maze.start_xy)
    return row | summarise(env.maze, *bang_bang_walk(env, args.seed, args.num_envs, args.steps, args.every))


PEER_MAIN = """
import json
from jaxgcrl.envs.simple_maze import SimpleMaze
env = SimpleMaze(backend={backend!r}, maze_layout_name={layout!r})
result = dict(gain=None)
result["gain"], result["end_y"], result["end_speed"] = full_throttle(env, env.possible_starts[0])
xy, velocity, ended = bang_bang_walk(env, {seed}, {num_envs}, {steps}, {every})
np.save({xy_path!r}, xy)
np.save({velocity_path!r}, velocity)
np.save({ended_path!r}, ended)
print("PEER_RESULT " + json.dumps(result))
"""


def measure_peer(env_id: str, backend: str, args: Args, scratch: pathlib.Path) -> dict:
    """JaxGCRL's point maze `env_id` (its default backend is spring), run by its own Python."""
    import envs

    backend = "spring" if backend == "default" else backend
    root = pathlib.Path(args.peer_root).expanduser()
    xy_path, velocity_path, ended_path = (str(scratch / f"{name}.npy") for name in ("xy", "velocity", "ended"))
    layout = env_id.removeprefix("simple_")
    source = "import numpy as np\n" + inspect.getsource(full_throttle) + inspect.getsource(bang_bang_walk)
    source += PEER_MAIN.format(
        backend=backend,
        layout=layout,
        seed=args.seed,
        num_envs=args.num_envs,
        steps=args.steps,
        every=args.every,
        xy_path=xy_path,
        velocity_path=velocity_path,
        ended_path=ended_path,
    )
    python = root / "venv" / "bin" / "python"
    try:
        done = subprocess.run(
            [str(python), "-c", textwrap.dedent(source)],
            capture_output=True,
            text=True,
            cwd="/",
            env={**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(root / "jaxgcrl")},  # imports its package
            timeout=args.peer_timeout,
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"JaxGCRL's {env_id} ({backend}) ran past --peer-timeout {args.peer_timeout} s") from None
    lines = [line for line in done.stdout.splitlines() if line.startswith("PEER_RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"JaxGCRL's {env_id} ({backend}) failed:\n{done.stderr[-3000:]}")
    result = json.loads(lines[-1].removeprefix("PEER_RESULT "))
    maze = envs.make(env_id).maze  # the same grid and cell size (tests/test_mazes.py checks it)
    summary = summarise(maze, *(np.load(path) for path in (xy_path, velocity_path, ended_path)))
    return {"codebase": "JaxGCRL", "env_id": env_id, "backend": backend, "dt": 0.05} | result | summary


# ------------------------------------------------------------------ the page
def table(rows: list[dict]) -> str:
    lines = [
        "| env id | backend | codebase | full throttle: velocity gain per step | acceleration | y after 60 steps "
        "| speed after 60 steps | largest velocity component | 99th percentile | samples in a wall or outside "
        "| of them before the episode terminated |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        if row.get("gain") is None:
            throttle = ["-"] * 4
        else:
            throttle = [
                f"{row['gain']:.3f} m/s",
                f"{row['gain'] / row['dt']:.2f} m/s^2",
                f"{row['end_y']:.3f} m",
                f"{row['end_speed']:.3f} m/s",
            ]
        escaped = f"{row['escaped']} of {row['samples']:,} ({100 * row['escaped'] / row['samples']:.2f}%)"
        escaped_live = f"{row['escaped_live']} of {row['live']:,}"
        lines.append(
            f"| `{row['env_id']}` | {row['backend']} | {row['codebase']} | "
            + " | ".join(throttle)
            + f" | {row['max_velocity']:.1f} m/s | {row['p99_velocity']:.1f} m/s | {escaped} | {escaped_live} |"
        )
    return "\n".join(lines)


def main(args: Args) -> None:
    import jax

    root = pathlib.Path(args.peer_root).expanduser()
    if args.peer_root and not (
        (root / "venv" / "bin" / "python").exists()
        and (root / "jaxgcrl" / "jaxgcrl" / "envs" / "simple_maze.py").exists()
    ):
        print(f"--peer-root {root}: expected JaxGCRL's checkout in jaxgcrl/ and its venv in venv/", file=sys.stderr)
        raise SystemExit(2)
    rows = []
    scratch = pathlib.Path("/tmp") / f"maze_walls_{os.getpid()}"
    scratch.mkdir(parents=True, exist_ok=True)
    for env_id in args.env_ids:
        for backend in args.point_backends if env_id.startswith("simple_") else args.backends:
            rows.append(measure_ours(env_id, backend, args))
            print(table(rows[-1:]), flush=True)
            if args.peer_root and env_id in args.peer_env_ids and backend in args.peer_backends:
                rows.append(measure_peer(env_id, backend, args, scratch))
                print(table(rows[-1:]), flush=True)
    command = "python results/notes/maze_walls.py " + " ".join(
        f"--{k.replace('_', '-')} {' '.join(v) if isinstance(v, tuple) else v}"
        for k, v in vars(args).items()
        if v != getattr(Args, k) and k != "output"
    )
    page = f"""# Maze walls under bang-bang actions, and the point mass's acceleration

Made by `{command.strip()}` on {datetime.date.today()}, {platform.machine()} CPU, jax {jax.__version__}
(the script's docstring says what each column measures). {args.num_envs} envs, {args.steps} control
steps of random bang-bang actions, sampled every {args.every}th step.

{table(rows)}
"""
    if args.output:
        pathlib.Path(args.output).write_text(page)
    else:
        print(page)


if __name__ == "__main__":
    main(tyro.cli(Args))
