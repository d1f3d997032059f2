"""The goal-conditioned environment contract and the batched auto-reset that every env shares.

A `GoalEnv` is a brax `PipelineEnv` whose observation is `concat(state, goal)`:

* `state_dim` entries of the body's own state (never the commanded goal), then
* `goal_dim` entries of the commanded goal, in the same coordinates as
  `state[goal_indices]`, the *achieved goal* of that state.

`step` computes `metrics["dist"]` (achieved goal to goal) and `metrics["success"]`
(`dist < goal_reach_thresh`, float 0/1) on the post-step state; the reward is `success`
(sparse, the default) or `-dist` when built with `dense_reward=True`. `done` is termination
only (the physics made the episode meaningless); `info["truncation"]` marks the step that hit
`episode_length`, counted in `info["episode_steps"]`. A single `GoalEnv` never resets itself.

The envs also follow brax's `Env` conventions, so brax's training wrappers and agents take them
(docs/environments.md, "Using the envs with brax's agents"): `reset`, `step` and `with_goal`
keep every metric and info entry a wrapper put in the state and set their own on top, and the
episode counter is named `episode_steps`, which no brax wrapper uses: under brax's
`EpisodeWrapper` (which counts `info["steps"]` and sets `info["truncation"]` itself) an episode
lasts the wrapper's `episode_length`.

Every env has five named evaluation tasks, `env.tasks` (`Task`: a goal, and for the envs whose
start is part of the task, a start), listed in docs/environments.md; `reset_to_task(rng, index)`
starts an episode of one, and `VecEnv.evaluate(..., task_episodes=m)` runs m episodes of each
beside its random goals.

`VecEnv` runs a batch of envs and resets every finished episode with a *fresh* start and goal
(drawn from a key carried per env), keeping the true post-step observation in
`info["next_obs"]` and numbering episodes per env in `info["episode_id"]` so that a replay
buffer never pairs states from two episodes.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import mujoco
from brax.envs.base import PipelineEnv, State

# brax warns on every model load that its env layer is unmaintained; we only use the stable
# `PipelineEnv`/`State`/`mjcf`/pipelines surface, so the warning is noise here.
warnings.filterwarnings("ignore", message="Brax System, piplines and environments")


def fast_mjx_solver(sys: Any) -> Any:
    """MJX solver settings for locomotion bodies: one Newton iteration with 4 line-search
    steps (brax's choice for the ant; MuJoCo's defaults are many times slower on CPU)."""
    return sys.tree_replace(
        {
            "opt.solver": mujoco.mjtSolver.mjSOL_NEWTON,
            "opt.disableflags": mujoco.mjtDisableBit.mjDSBL_EULERDAMP,
            "opt.iterations": 1,
            "opt.ls_iterations": 4,
        }
    )


FUSION_FLAG = "--xla_cpu_use_fusion_emitters=false"
SCHEDULER_FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler=false"


def set_cpu_xla_flags(env_name: str, flags: tuple[str, ...]) -> None:
    """Add XLA CPU flags that an env needs, before JAX starts its backends.

    * `FUSION_FLAG`: XLA's CPU fusion emitters (jaxlib 0.10's default) recompute shared work
      exponentially in the depth of a kinematic chain: MJX's forward kinematics of the arm (10
      bodies deep) takes about 9 ms per substep with them and 0.4 ms without, and the pusher
      (also 10 deep) is slowed alike (results/notes/env_throughput.md).
    * `SCHEDULER_FLAG`: with XLA's concurrency-optimised CPU scheduler (the default), a batch of
      256 arm envs whose auto-reset runs inside the step sometimes never returns: every XLA
      worker thread idles and the caller waits forever (seen within 1-2 calls at 256 envs, never
      at 128; results/notes/env_throughput.md, last section). With the scheduler off, 12 calls in a row ran.

    Envs call this first thing in their constructor. XLA reads XLA_FLAGS when JAX first touches
    a device, so each flag is added here if that has not happened yet (build such an env before
    any other JAX work; the algorithm scripts do) and not already named in XLA_FLAGS. Otherwise
    a warning says how to set them. GPU backends ignore them."""
    current = os.environ.get("XLA_FLAGS", "")
    missing = [flag for flag in flags if flag.split("=")[0] not in current]
    if not missing:
        return
    try:
        from jax._src import xla_bridge

        initialized = xla_bridge.backends_are_initialized()
    except (ImportError, AttributeError):  # private API: assume the worst
        initialized = True
    if not initialized:
        os.environ["XLA_FLAGS"] = " ".join([current, *missing]).strip()
    elif jax.default_backend() == "cpu":
        warnings.warn(
            f"{env_name} needs XLA_FLAGS={' '.join(flags)} on CPU (see envs/base.py: set_cpu_xla_flags), and JAX "
            "was already running when it was built, too late to set them. Start Python with that variable set "
            "(or build this env before any other JAX work).",
            stacklevel=3,
        )


def xla_flag_is_set(flag: str) -> bool:
    """Whether XLA_FLAGS holds exactly this flag (name and value)."""
    return flag in os.environ.get("XLA_FLAGS", "").split()


@dataclass(frozen=True)
class Task:
    """A named evaluation task of an env.

    `goal` is in goal space (the env's `goal_dim` numbers). `start` is what of the start the task
    fixes, in the env's own terms: a maze's start cell centre (x, y) (the body lands within +-
    cell/4 of it, and the goal within +- cell/4 of `goal`), the puck's (x, y) of the pushers and
    the cube's (x, y) of the arm's cube tasks (placed exactly); empty where the env's own random
    start is kept (reacher, cheetah, ant, ant_ball, ant_push, humanoid, arm_reach). `why` says
    what the task tests."""

    name: str
    goal: tuple[float, ...]
    start: tuple[float, ...] = ()
    why: str = ""


def ring_tasks(radii, suffix: tuple[float, ...] = (), unit: str = "away") -> tuple[Task, ...]:
    """Five tasks around the start: task k+1's goal is radii[k] from the origin at 72k degrees (every
    direction), then `suffix` (a fixed goal height). For the envs whose goal region is a disc or
    circle around the start (reacher, ant, ant_ball, humanoid)."""
    tasks = []
    for k, radius in enumerate(radii):
        angle = 2 * math.pi * k / 5
        goal = (round(radius * math.cos(angle), 4), round(radius * math.sin(angle), 4), *suffix)
        tasks.append(Task(f"task{k + 1}", goal, why=f"{radius:g} m {unit} at {72 * k} degrees"))
    return tuple(tasks)


class GoalEnv(PipelineEnv):
    """Base class: subclasses implement `_sample_init`, `_state_obs`, `tasks` and optionally
    `_action_to_ctrl`, `_is_terminated`, `_goal_metrics`, `_dense_reward`, `goal_marker_xyz`,
    `render_camera`."""

    fixed_goal = False  # True for tasks whose goal is the same every episode (only the start varies)

    def __init__(
        self,
        sys: Any,
        *,
        backend: str,
        n_frames: int,
        state_dim: int,
        goal_indices: tuple[int, ...],
        goal_reach_thresh: float,
        episode_length: int,
        dense_reward: bool = False,
    ):
        super().__init__(sys=sys, backend=backend, n_frames=n_frames)
        if episode_length < 1:
            raise ValueError(f"episode_length must be >= 1, got {episode_length}")
        self.state_dim = int(state_dim)
        self.goal_indices = tuple(int(i) for i in goal_indices)
        self.goal_dim = len(self.goal_indices)
        self.goal_reach_thresh = float(goal_reach_thresh)
        self.episode_length = int(episode_length)
        self.dense_reward = bool(dense_reward)

    # The five named evaluation tasks (set by each env's constructor; see `Task`).
    tasks: tuple[Task, ...] = ()

    # ----------------------------------------------------------------- subclass hooks
    def _sample_init(self, key: jax.Array, task: tuple[jax.Array, jax.Array] | None = None):
        """Return (q, qd, goal) for a fresh episode: with `task = (start, goal)` (a `Task`'s
        arrays), the episode of that task, else a training episode's random start and goal."""
        raise NotImplementedError

    def _state_obs(self, pipeline_state: Any) -> jax.Array:
        """Return the `state_dim` vector of the body's own state."""
        raise NotImplementedError

    def _action_to_ctrl(self, action: jax.Array) -> jax.Array:
        """Map the policy's action in [-1, 1]^action_size to the actuators' controls."""
        return action

    # (low, high) for bodies that fall (ant, humanoid): the episode terminates when the root
    # link's height leaves it. None: never terminates.
    healthy_z_range: tuple[float, float] | None = None

    def _is_terminated(self, pipeline_state: Any) -> jax.Array:
        if self.healthy_z_range is None:
            return jnp.array(False)
        z = pipeline_state.x.pos[0, 2]
        low, high = self.healthy_z_range
        return jnp.logical_or(z < low, z > high)

    def _goal_metrics(self, state_obs: jax.Array, goal: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(dist, success) of a state part against a goal. Overridden by composite goals."""
        dist = jnp.linalg.norm(state_obs[jnp.array(self.goal_indices)] - goal)
        return dist, (dist < self.goal_reach_thresh).astype(jnp.float32)

    def success(self, state_part: jax.Array, goal: jax.Array) -> jax.Array:
        """1.0 where a state part reaches a goal (the `success` metric), else 0.0; one state
        (vmap it for a batch). Hindsight relabelling recomputes rewards with it."""
        return self._goal_metrics(state_part, goal)[1]

    def _dense_reward(self, dist: jax.Array) -> jax.Array:
        return -dist

    def goal_marker_xyz(self, goal: jax.Array) -> jax.Array:
        """World position at which `render` draws the goal."""
        goal = jnp.asarray(goal)
        return (
            goal if goal.shape[-1] == 3 else jnp.concatenate([goal[..., :2], jnp.full(goal.shape[:-1] + (1,), 0.5)], -1)
        )

    def render_camera(self, pipeline_state: Any) -> dict:
        """Free-camera settings for `render`: lookat, distance, azimuth, elevation."""
        return dict(lookat=(0.0, 0.0, 0.0), distance=3.0, azimuth=90.0, elevation=-45.0)

    # ----------------------------------------------------------------- contract
    @property
    def observation_size(self) -> int:  # known statically, no reset needed
        return self.state_dim + self.goal_dim

    def achieved_goal(self, obs: jax.Array) -> jax.Array:
        """The achieved-goal part of (a batch of) observations or state parts."""
        return obs[..., jnp.array(self.goal_indices)]

    def task_index(self, name: str) -> int:
        """The index in `tasks` of the task called `name`; an unknown name is a ValueError that
        lists the env's tasks."""
        names = [task.name for task in self.tasks]
        if name not in names:
            env_id = getattr(self, "env_id", type(self).__name__)
            known = f"its tasks are {', '.join(names)}" if names else "it has no named tasks"
            raise ValueError(f"{env_id} has no task '{name}': {known} (docs/environments.md).")
        return names.index(name)

    def task_arrays(self) -> tuple[jax.Array, jax.Array]:
        """(starts, goals) of `tasks`, stacked: (num_tasks, start size) and (num_tasks, goal_dim)."""
        if not self.tasks:
            raise ValueError(f"{getattr(self, 'env_id', type(self).__name__)} has no named tasks.")
        starts = jnp.array([task.start for task in self.tasks], jnp.float32).reshape(len(self.tasks), -1)
        return starts, jnp.array([task.goal for task in self.tasks], jnp.float32)

    def reset(self, rng: jax.Array) -> State:
        """A training episode: the env's random start and goal."""
        return self._reset(rng, None)

    def reset_to_task(self, rng: jax.Array, index: jax.Array) -> State:
        """An episode of `tasks[index]` (`index` may be traced: vmap it over a batch of tasks)."""
        starts, goals = self.task_arrays()
        return self._reset(rng, (starts[index], goals[index]))

    def _reset(self, rng: jax.Array, task: tuple[jax.Array, jax.Array] | None) -> State:
        rng, init_key = jax.random.split(rng)
        # one value for the goal everywhere: without the barrier XLA may compute it once for the
        # observation and once for info["goal"], with different rounding
        q, qd, goal = jax.lax.optimization_barrier(self._sample_init(init_key, task))
        pipeline_state = self.pipeline_init(q, qd)
        state_obs = self._state_obs(pipeline_state)
        obs = jnp.concatenate([state_obs, goal])
        dist, success = self._goal_metrics(state_obs, goal)
        zero = jnp.zeros(())
        info = {
            "goal": goal,
            "rng": rng,
            "episode_steps": jnp.zeros((), jnp.int32),
            "episode_id": jnp.zeros((), jnp.int32),
            "truncation": zero,
            "next_obs": obs,
        }
        return State(pipeline_state, obs, zero, zero, {"dist": dist, "success": success}, info)

    def with_goal(self, state: State, goal: Any) -> State:
        """The same (single-env) state commanded toward `goal`, given in goal space (for the
        mazes: an (x, y) position): sets info["goal"], the goal part of obs and the metrics."""
        goal = jnp.asarray(goal, jnp.float32).reshape(self.goal_dim)
        state_obs = state.obs[: self.state_dim]
        obs = jnp.concatenate([state_obs, goal])
        dist, success = self._goal_metrics(state_obs, goal)
        info = {**state.info, "goal": goal, "next_obs": obs}
        return state.replace(obs=obs, metrics={**state.metrics, "dist": dist, "success": success}, info=info)

    def step(self, state: State, action: jax.Array) -> State:
        pipeline_state = self.pipeline_step(state.pipeline_state, self._action_to_ctrl(action))
        goal = state.info["goal"]
        state_obs = self._state_obs(pipeline_state)
        obs = jnp.concatenate([state_obs, goal])
        dist, success = self._goal_metrics(state_obs, goal)
        reward = self._dense_reward(dist) if self.dense_reward else success
        terminated = self._is_terminated(pipeline_state)
        steps = state.info["episode_steps"] + 1
        truncated = jnp.logical_and(steps >= self.episode_length, jnp.logical_not(terminated))
        info = {
            **state.info,
            "episode_steps": steps,
            "truncation": truncated.astype(jnp.float32),
            "next_obs": obs,
        }
        return State(
            pipeline_state,
            obs,
            reward.astype(jnp.float32),
            terminated.astype(jnp.float32),
            {**state.metrics, "dist": dist, "success": success},  # a wrapper's metrics are kept
            info,
        )


class VecEnv:
    """A batch of `num_envs` copies of a `GoalEnv` with auto-reset to a fresh start and goal
    (`fixed_goals=True`: to the env's first start and goal, every episode, as JaxGCRL's
    training envs do, whose auto-reset restores the first reset's state).

        `reset(key)` returns a batched `State`; `step(state, action)` steps every env and, for
        envs whose episode ended (terminated or truncated), draws a new start and goal from that
        env's own key. After the step:

        * `obs` is the observation to act on next (the new episode's first one after a reset);
        * `info["next_obs"]` is the true post-step observation s_{t+1} (before any reset);
        * `reward`, `done` (termination), `info["truncation"]` and `metrics` describe the step;
        * `info["episode_id"]` numbers the episode that `obs` belongs to, per env, and
          `info["episode_return"]` is that episode's return so far (0 on its first step);
          `ended_returns(state, next_state)` sums the returns of the episodes that ended in a step.

    `shardings(mesh, state)` splits a batched state's env axis over a device mesh.

        The reset runs under one `lax.cond` for the whole batch, so the (rare) steps on which no
        episode ends pay nothing for it.
    """

    def __init__(self, env: GoalEnv, num_envs: int, fixed_goals: bool = False):
        self.env = env
        self.num_envs = int(num_envs)
        self.fixed_goals = bool(fixed_goals)
        limit = getattr(env, "cpu_max_envs_without_scheduler_flag", None)
        if (
            limit is not None
            and self.num_envs > limit
            and jax.default_backend() == "cpu"
            and not xla_flag_is_set(SCHEDULER_FLAG)
        ):
            raise ValueError(
                f"{getattr(env, 'env_id', type(env).__name__)} with {self.num_envs} envs on CPU can hang inside "
                f"XLA's CPU runtime unless JAX starts with XLA_FLAGS={SCHEDULER_FLAG} (envs/base.py: "
                "set_cpu_xla_flags). Build the env before any other JAX work (it then sets the flag), start "
                f"Python with that variable set, or use at most {limit} envs."
            )

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)

    def reset(self, key: jax.Array) -> State:
        keys = jax.random.split(key, self.num_envs)
        state = jax.vmap(self.env.reset)(keys)
        fixed = {"reset_key": keys} if self.fixed_goals else {}  # what every later reset repeats
        return state.replace(info={**state.info, "episode_return": jnp.zeros(self.num_envs), **fixed})

    def step(self, state: State, action: jax.Array) -> State:
        stepped = jax.vmap(self.env.step)(state, action)
        ended = jnp.logical_or(stepped.done > 0, stepped.info["truncation"] > 0)
        episode_return = jnp.where(ended, 0.0, state.info["episode_return"] + stepped.reward)
        stepped = stepped.replace(info={**stepped.info, "episode_return": episode_return})

        def reset_ended(s: State) -> State:
            keys = jax.vmap(jax.random.split)(s.info["rng"])  # (num_envs, 2, key)
            # fixed_goals: the env's first reset again, the same start and goal every episode
            fresh = jax.vmap(self.env.reset)(s.info["reset_key"] if self.fixed_goals else keys[:, 1])

            def pick(new, old):
                mask = ended.reshape(ended.shape + (1,) * (old.ndim - 1))
                return jnp.where(mask, new, old)

            pipeline_state = jax.tree.map(pick, fresh.pipeline_state, s.pipeline_state)
            info = dict(s.info)
            info["goal"] = pick(fresh.info["goal"], s.info["goal"])
            info["rng"] = pick(keys[:, 0], s.info["rng"])
            info["episode_steps"] = jnp.where(ended, 0, s.info["episode_steps"])
            info["episode_id"] = s.info["episode_id"] + ended.astype(jnp.int32)
            return s.replace(pipeline_state=pipeline_state, obs=pick(fresh.obs, s.obs), info=info)

        return jax.lax.cond(jnp.any(ended), reset_ended, lambda s: s, stepped)

    @staticmethod
    def ended_returns(state: State, next_state: State) -> tuple[jax.Array, jax.Array]:
        """(sum of returns, count) of the episodes that ended in the step from `state` to
        `next_state` (terminated or truncated)."""
        ended = jnp.logical_or(next_state.done > 0, next_state.info["truncation"] > 0)
        returns = state.info["episode_return"] + next_state.reward
        return jnp.sum(jnp.where(ended, returns, 0.0)), jnp.sum(ended)

    def shardings(self, mesh: jax.sharding.Mesh, state: State, lead: int = 0) -> State:
        """Shardings for a batched state (or its `jax.eval_shape`) with `lead` leading axes (a
        seed axis): every leaf's env axis split over the mesh's "data" axis (the model's
        constants, which have no env axis, replicated)."""
        P = jax.sharding.PartitionSpec
        split = jax.sharding.NamedSharding(mesh, P(*[None] * lead, "data"))
        replicated = jax.sharding.NamedSharding(mesh, P())

        def spec(x):
            return split if x.ndim > lead and x.shape[lead] == self.num_envs else replicated

        return jax.tree.map(spec, state)

    def evaluate(
        self,
        policy: Callable[[jax.Array], jax.Array] | None,
        key: jax.Array,
        sampled: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
        task_episodes: int = 0,
    ) -> tuple[dict, tuple]:
        """One full episode per env from `reset(key)` with `policy(obs batch) -> action batch`
        (`None`: uniformly random actions in [-1, 1], the random-policy baseline), and with
        `sampled(obs batch, key) -> action batch` too when given: a second set of episodes from
        the same starts and goals, with a fresh key at every step. With `task_episodes = m`, m
        episodes of each of the env's named tasks (`reset_to_task`) join each set. Everything
        runs as one batch, so the evaluation compiles one episode loop.

        Returns `(metrics, (pipeline_states, goals))`. The metrics are means over envs:
        `success_rate` (the goal was reached at some step), `time_at_goal` (fraction of the
        episode's steps at the goal), `final_distance` (goal distance at the episode's last
        step), `episodic_return` (sum of the env's reward) and `steps_to_success` (the first step
        at the goal, 1-based, averaged over the episodes that got there; NaN when none did); with
        `sampled`, the same five again prefixed `sampled_`. With tasks, per task k (1-based)
        `tasks/task{k}_success` and `tasks/task{k}_time_at_goal` (means over its m episodes),
        and `tasks/overall_success` and `tasks/overall_time_at_goal`, their means over the tasks
        (OGBench's "overall success"); with `sampled`, the same again as `tasks/sampled_...`.
        The random-goal metrics do not depend on `task_episodes` (the tasks draw their own
        keys). The episode is env 0's under `policy` (pipeline states with a leading time axis,
        one goal per step) for `envs.render`. Each env's first episode only counts: steps after
        it ends are masked. Pure; jit it (or a function around it).
        """
        start, n = self.reset(key), self.num_envs
        if task_episodes:
            tasks = self._task_starts(jax.random.fold_in(key, 2), task_episodes)
            start = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), start, tasks)
        per_mode = start.obs.shape[0]  # envs per set: n random goals, then the tasks' episodes
        step_keys = jax.random.split(jax.random.fold_in(key, 1), self.env.episode_length)

        def draw(draw_part, obs, k):
            """Actions of one set: its random-goal envs and its task envs with keys of their own."""
            parts = [draw_part(obs[:n], k)]
            if per_mode > n:
                parts.append(draw_part(obs[n:], jax.random.fold_in(k, 1)))
            return jnp.concatenate(parts)

        def uniform(obs, k):
            return jax.random.uniform(k, (obs.shape[0], self.env.action_size), minval=-1.0, maxval=1.0)

        def act(obs, k):
            if policy is None:
                return draw(uniform, obs, k)
            if sampled is None:
                return policy(obs)
            # both sets in one batch: the first per_mode envs deterministic, the rest sampled
            return jnp.concatenate([policy(obs[:per_mode]), draw(sampled, obs[per_mode:], k)])

        if sampled is not None and policy is not None:
            start = jax.tree.map(lambda x: jnp.concatenate([x, x]), start)  # the same starts and goals twice
        per_env, episode = self._episodes(act, start, step_keys)
        metrics = self._set_metrics({name: v[:per_mode] for name, v in per_env.items()}, task_episodes, "")
        if sampled is not None and policy is not None:
            more = {name: v[per_mode:] for name, v in per_env.items()}
            metrics.update(self._set_metrics(more, task_episodes, "sampled_"))
        return metrics, episode

    def _task_starts(self, key: jax.Array, episodes: int) -> State:
        """A batch of `episodes` fresh starts of each named task, task by task."""
        num_tasks = len(self.env.tasks)
        keys = jax.random.split(key, num_tasks * episodes)
        state = jax.vmap(self.env.reset_to_task)(keys, jnp.repeat(jnp.arange(num_tasks), episodes))
        # the info keys of `reset`'s states, so that the two batches join (a later auto-reset of a
        # task env, whose steps no longer count, then draws a training episode)
        fixed = {"reset_key": keys} if self.fixed_goals else {}
        return state.replace(info={**state.info, "episode_return": jnp.zeros(num_tasks * episodes), **fixed})

    def _set_metrics(self, per_env: dict, task_episodes: int, prefix: str) -> dict:
        """The metrics of one set of `evaluate`'s episodes (its random goals, then its tasks)."""
        n = self.num_envs
        means = self._means({name: v[:n] for name, v in per_env.items()})
        metrics = {f"{prefix}{name}": value for name, value in means.items()}
        if task_episodes:
            success = per_env["success"][n:].reshape(len(self.env.tasks), task_episodes, -1)
            reached = jnp.mean(jnp.max(success, axis=2), axis=1)  # per task
            time_at_goal = jnp.mean(jnp.sum(success, axis=2), axis=1) / self.env.episode_length
            for k in range(len(self.env.tasks)):
                metrics[f"tasks/{prefix}task{k + 1}_success"] = reached[k]
                metrics[f"tasks/{prefix}task{k + 1}_time_at_goal"] = time_at_goal[k]
            metrics[f"tasks/{prefix}overall_success"] = jnp.mean(reached)
            metrics[f"tasks/{prefix}overall_time_at_goal"] = jnp.mean(time_at_goal)
        return metrics

    def _episodes(self, act, start: State, step_keys: jax.Array) -> tuple[dict, tuple]:
        """`evaluate`'s episodes under `act(obs batch, key)` from the batched state `start`: per
        env, the success and reward of each step, the final distance; and env 0's episode."""

        def step(carry, k):
            state, alive, final_dist = carry
            nxt = self.step(state, act(state.obs, k))
            ended = jnp.logical_or(nxt.done > 0, nxt.info["truncation"] > 0)
            final_dist = jnp.where(alive * ended > 0, nxt.metrics["dist"], final_dist)
            out = (nxt.metrics["success"] * alive, nxt.reward * alive)
            first_env = (jax.tree.map(lambda x: x[0], state.pipeline_state), state.info["goal"][0])
            return (nxt, alive * (1.0 - ended), final_dist), out + first_env

        batch = start.obs.shape[0]
        carry = (start, jnp.ones(batch), jnp.zeros(batch))
        (_, _, final_dist), (success, reward, frames, goals) = jax.lax.scan(step, carry, step_keys)
        # env axis first, for splitting the two modes apart
        return {"success": success.T, "reward": reward.T, "final_dist": final_dist}, (frames, goals)

    def _means(self, per_env: dict) -> dict:
        """The evaluation metrics (means over envs) of `_episodes`'s per-env arrays."""
        success = per_env["success"]  # (envs, steps)
        reached = jnp.max(success, axis=1)
        first_step = jnp.argmax(success > 0, axis=1) + 1.0
        return {
            "success_rate": jnp.mean(reached),
            "time_at_goal": jnp.mean(jnp.sum(success, axis=1) / self.env.episode_length),
            "final_distance": jnp.mean(per_env["final_dist"]),
            "episodic_return": jnp.mean(jnp.sum(per_env["reward"], axis=1)),
            "steps_to_success": jnp.sum(first_step * reached) / jnp.sum(reached),
        }
