"""Goal-conditioned TD3 with hindsight experience replay (HER), in one file.

Papers: Fujimoto, van Hoof, Meger, "Addressing Function Approximation Error in Actor-Critic
Methods", ICML 2018 (arXiv 1802.09477); Andrychowicz et al., "Hindsight Experience Replay", NeurIPS 2017 (arXiv
1707.01495); defaults and env suite from Bortkiewicz et al., "Accelerating Goal-Conditioned RL
Algorithms and Research", ICLR 2025 (arXiv 2408.11052).

The policy and twin critics see obs = concat(state, goal). Rewards are sparse: 1 when s_{t+1} is
within the env's threshold of the goal. HER ("future" strategy): each sampled transition keeps
its commanded goal with probability 1 - relabel_ratio and otherwise gets the achieved goal of a
later state of its own episode (P(k) ~ gamma^(k-1)); its reward is then recomputed from s_{t+1}
under that goal. Critic targets bootstrap through time-limit truncation, never through
termination. TD3's three fixes: twin critics (the target takes their minimum), target policy
smoothing (clipped noise on the target action) and delayed policy updates (the actor and both
targets move every `policy_frequency` critic updates). The target policy is a Polyak average of
the online policy and the *previous target policy*.

Run (then `tensorboard --logdir runs`):

    python algorithms/td3_her.py --env-id simple_u_maze --episode-length 200 --total-timesteps 1000000
    python algorithms/td3_her.py --env-id ant_maze --num-envs 512 --total-timesteps 10000000

Everything per training step runs in one compiled function: `unroll_length` steps of `num_envs`
envs, the buffer insert, and `updates_per_rollout` gradient steps on relabelled batches;
Python only loops over chunks of training steps to evaluate, log and print progress.

Research runs: `--checkpoint-every N` writes the whole training state (atomically, the last two
kept) and `--resume RUN_DIR` continues it exactly; `--save-model` writes the networks, which
`--eval-only --load-model PATH` evaluates and `load_policy(path) -> (act, env)` returns as a
policy act(state, goal) for any commanded goal; `--capture-video` logs evaluation episodes as
GIFs (TensorBoard tag videos/eval); `--num-seeds K` trains K seeds through one compile.

Logged (x axis = env steps): charts/SPS (excluding compile and evaluation),
charts/episodic_return, eval/success_rate, eval/time_at_goal, eval/final_distance,
eval/episodic_return, losses/qf1_loss, losses/qf2_loss, losses/qf1_values, losses/qf2_values,
losses/actor_loss.
"""

from __future__ import annotations

import glob
import hashlib
import json
import math
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields, replace

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import tyro
from tensorboardX import SummaryWriter

import envs
from buffers import BufferMemoryError, TrajectoryBuffer, Transition


@dataclass(frozen=True)
class Args:
    exp_name: str = os.path.basename(__file__)[: -len(".py")]
    """the name of this experiment (part of the run directory's name)"""
    seed: int = 1
    """seed of the experiment"""
    track: bool = False
    """also log to Weights & Biases (needs `pip install wandb` and a login)"""
    wandb_project_name: str = "gcrl-jax"
    """the Weights & Biases project, with --track"""
    capture_video: bool = False
    """log evaluation episodes as animated images (TensorBoard tag videos/eval) and GIFs in the run directory"""
    video_every: int = 5
    """with --capture-video: record every N-th evaluation and the last one"""
    save_model: bool = False
    """save the final model into the run directory as {exp_name}.eqx (see load_policy)"""
    checkpoint_every: int = 0
    """write the whole training state every N env steps (rounded up to training steps; 0: never); keeps two"""
    resume: str | None = None
    """continue the run in this run directory from its newest checkpoint; its other flags come from the run"""
    eval_only: bool = False
    """evaluate the model of --load-model (num_eval_envs episodes) and stop"""
    load_model: str | None = None
    """a model file written by --save-model, for --eval-only"""
    num_seeds: int = 1
    """train seeds seed, seed+1, ..., seed+K-1 through one compile (vmap), one run directory each"""
    run_root: str = "runs"
    """directory that holds the run directories"""

    # Environment
    env_id: str = "reacher"
    """environment id (see envs.ENV_IDS)"""
    backend: str | None = None
    """physics backend (generalized, spring, positional, mjx); default: the env's own"""
    episode_length: int | None = None
    """steps per episode; default: the env's own"""
    num_envs: int = 256
    """parallel training envs"""
    num_eval_envs: int = 128
    """evaluation episodes per evaluation, one per env, deterministic actions"""

    # Schedule
    total_timesteps: int = 1_000_000
    """env steps to train for (rounded up to whole training steps of num_envs x unroll_length)"""
    unroll_length: int = 62
    """env steps per env collected in one training step"""
    batch_size: int = 256
    """transitions per gradient step"""
    buffer_size: int = 10_000
    """replay capacity in time rows per env (rounded up to a multiple of --unroll-length)"""
    learning_starts: int = 1_000
    """time rows per env collected before gradient steps start (whole rollouts)"""
    updates_per_rollout: int | None = None
    """gradient steps per training step; default num_envs * (episode_length - 1) / batch_size"""
    num_evals: int = 20
    """evaluations during training (plus one before it)"""

    # Algorithm
    actor_lr: float = 3e-4
    """actor learning rate"""
    critic_lr: float = 3e-4
    """critic learning rate"""
    gamma: float = 0.99
    """discount of the critic targets and of the HER goal distribution P(k) ~ gamma^(k-1)"""
    tau: float = 0.005
    """Polyak rate of the target actor and critics"""
    relabel_ratio: float = 0.8
    """fraction of sampled transitions whose goal becomes a future achieved goal (HER); 0 turns HER off"""
    exploration_noise: float = 0.1
    """std of the Gaussian noise added to training actions (then clipped to [-1, 1])"""
    policy_noise: float = 0.2
    """std of the target policy smoothing noise"""
    noise_clip: float = 0.5
    """the target policy smoothing noise is clipped to [-noise_clip, noise_clip]"""
    policy_frequency: int = 2
    """critic updates per actor (and target) update"""
    width: int = 256
    """hidden units per layer (all networks)"""
    depth: int = 2
    """hidden layers (all networks)"""
    layer_norm: bool = False
    """LayerNorm after every hidden layer"""
    residual: bool = False
    """residual connections around hidden layers after the first (for deep networks)"""


class ConfigError(ValueError):
    """A flag combination that cannot run; the message names the flags to change."""


# ======================================================================= NETWORKS
class MLP(eqx.Module):
    """swish MLP, optional LayerNorm after each hidden layer and residual hidden blocks."""

    hidden: list
    norms: list
    out: eqx.nn.Linear
    residual: bool = eqx.field(static=True)

    def __init__(self, in_size, out_size, width, depth, layer_norm, residual, key):
        keys = jax.random.split(key, depth + 1)
        sizes = [in_size] + [width] * depth
        self.hidden = [eqx.nn.Linear(sizes[i], sizes[i + 1], key=keys[i]) for i in range(depth)]
        self.norms = [eqx.nn.LayerNorm(width) for _ in range(depth)] if layer_norm else []
        self.out = eqx.nn.Linear(sizes[-1], out_size, key=keys[-1])
        self.residual = residual

    def __call__(self, x):
        for i, layer in enumerate(self.hidden):
            h = layer(x)
            if self.norms:
                h = self.norms[i](h)
            h = jax.nn.swish(h)
            x = x + h if (self.residual and i > 0) else h
        return self.out(x)


class QNetwork(eqx.Module):
    """Q(s, g, a) on obs = concat(s, g)."""

    net: MLP

    def __init__(self, obs_dim, action_dim, args: Args, key):
        self.net = MLP(obs_dim + action_dim, 1, args.width, args.depth, args.layer_norm, args.residual, key)

    def __call__(self, obs, action):
        return self.net(jnp.concatenate([obs, action]))[0]


def make_critic(obs_dim, action_dim, args: Args, key):
    """Twin critics as one ensemble: every leaf gets a leading axis of size 2."""
    return eqx.filter_vmap(lambda k: QNetwork(obs_dim, action_dim, args, k))(jax.random.split(key, 2))


def q_values(critic, obs, action):
    """Both critics on a batch: (B, obs), (B, act) -> (2, B)."""
    return eqx.filter_vmap(lambda q: jax.vmap(q)(obs, action))(critic)


class Actor(eqx.Module):
    """Deterministic policy mu(s, g) = tanh(net(concat(s, g))); Gaussian exploration noise."""

    net: MLP
    exploration_noise: float = eqx.field(static=True)

    def __init__(self, obs_dim, action_dim, args: Args, key):
        self.net = MLP(obs_dim, action_dim, args.width, args.depth, args.layer_norm, args.residual, key)
        self.exploration_noise = args.exploration_noise

    def __call__(self, obs):
        return jnp.tanh(self.net(obs))

    def sample(self, obs, key):
        """An exploration action (and a placeholder log-probability, for the shared rollout)."""
        noise = self.exploration_noise * jax.random.normal(key, (self.net.out.out_features,))
        return jnp.clip(self(obs) + noise, -1.0, 1.0), jnp.zeros(())

    def deterministic(self, obs):
        return self(obs)


class TrainState(eqx.Module):
    actor: Actor
    target_actor: Actor
    critic: QNetwork  # ensemble of two
    target_critic: QNetwork
    actor_opt_state: optax.OptState
    critic_opt_state: optax.OptState
    env_steps: jax.Array
    grad_steps: jax.Array


# ======================================================================= LOSSES
def target_action(target_actor, next_obs, key, args: Args):
    """Target policy smoothing: mu'(s') + clip(N(0, policy_noise), +-noise_clip), clipped to [-1, 1]."""
    action = jax.vmap(target_actor)(next_obs)
    noise = jnp.clip(args.policy_noise * jax.random.normal(key, action.shape), -args.noise_clip, args.noise_clip)
    return jnp.clip(action + noise, -1.0, 1.0)


def critic_target(reward, terminated, next_q, gamma):
    """y = r + gamma (1 - terminated) min_k Q'_k(s', a'). A truncated (time-limit) transition is
    not terminated, so it bootstraps."""
    return reward + gamma * (1.0 - terminated) * jnp.min(next_q, axis=0)


def critic_loss_fn(critic, obs, action, target):
    q = q_values(critic, obs, action)
    losses = jnp.mean((q - target[None, :]) ** 2, axis=1)
    metrics = {"qf1_loss": losses[0], "qf2_loss": losses[1], "qf1_values": q[0].mean(), "qf2_values": q[1].mean()}
    return jnp.sum(losses), metrics


def actor_loss_fn(actor, critic, obs):
    """-Q_1(s, mu(s)): the first critic only, as in the TD3 paper."""
    return -jnp.mean(q_values(critic, obs, jax.vmap(actor)(obs))[0])


def soft_update(online, target, tau):
    """Polyak average toward the online network, starting from the *previous target*."""
    return optax.incremental_update(online, target, tau)


# ======================================================================= UPDATE
def make_update(args: Args):
    actor_opt, critic_opt = optax.adam(args.actor_lr), optax.adam(args.critic_lr)

    def update(ts: TrainState, batch, key):
        """One critic step; every `policy_frequency` steps also an actor step and both targets."""
        next_action = target_action(ts.target_actor, batch.next_obs, key, args)
        next_q = q_values(ts.target_critic, batch.next_obs, next_action)
        target = critic_target(batch.reward, batch.terminated, next_q, args.gamma)
        (_, critic_metrics), critic_grads = eqx.filter_value_and_grad(critic_loss_fn, has_aux=True)(
            ts.critic, batch.obs, batch.action, jax.lax.stop_gradient(target)
        )
        updates, critic_opt_state = critic_opt.update(critic_grads, ts.critic_opt_state, ts.critic)
        critic = eqx.apply_updates(ts.critic, updates)

        def delayed(_):
            actor_loss, actor_grads = eqx.filter_value_and_grad(actor_loss_fn)(ts.actor, critic, batch.obs)
            updates, actor_opt_state = actor_opt.update(actor_grads, ts.actor_opt_state, ts.actor)
            actor = eqx.apply_updates(ts.actor, updates)
            targets = (soft_update(actor, ts.target_actor, args.tau), soft_update(critic, ts.target_critic, args.tau))
            return actor, actor_opt_state, targets, actor_loss, jnp.ones(())

        def not_yet(_):
            return ts.actor, ts.actor_opt_state, (ts.target_actor, ts.target_critic), jnp.zeros(()), jnp.zeros(())

        actor, actor_opt_state, (target_actor, target_critic), actor_loss, actor_updated = jax.lax.cond(
            ts.grad_steps % args.policy_frequency == 0, delayed, not_yet, None
        )
        metrics = {**critic_metrics, "actor_loss": actor_loss, "actor_updated": actor_updated}
        ts = TrainState(
            actor,
            target_actor,
            critic,
            target_critic,
            actor_opt_state,
            critic_opt_state,
            ts.env_steps,
            ts.grad_steps + 1,
        )
        return ts, metrics

    return update, (actor_opt, critic_opt)


LOSS_TAGS = ("qf1_loss", "qf2_loss", "qf1_values", "qf2_values", "actor_loss")


# ======================================================================= ROLLOUT
def make_rollout(vec_env: envs.VecEnv, unroll_length: int):
    def rollout(actor: Actor, env_state, episode_return, key):
        """`unroll_length` steps of every env with stochastic actions; returns the transitions
        (time-major) and the returns of the episodes that finished."""

        def step(carry, k):
            env_state, episode_return = carry
            action, _ = jax.vmap(actor.sample)(env_state.obs, jax.random.split(k, vec_env.num_envs))
            nxt = vec_env.step(env_state, action)
            transition = Transition(
                obs=env_state.obs,
                action=action,
                next_obs=nxt.info["next_obs"],
                terminated=nxt.done,
                truncated=nxt.info["truncation"],
                episode_id=env_state.info["episode_id"],
            )
            episode_return = episode_return + nxt.reward
            ended = jnp.logical_or(nxt.done > 0, nxt.info["truncation"] > 0)
            finished = (jnp.sum(jnp.where(ended, episode_return, 0.0)), jnp.sum(ended))
            return (nxt, jnp.where(ended, 0.0, episode_return)), (transition, finished)

        (env_state, episode_return), (transitions, finished) = jax.lax.scan(
            step, (env_state, episode_return), jax.random.split(key, unroll_length)
        )
        return env_state, episode_return, transitions, (finished[0].sum(), finished[1].sum())

    return rollout


# ======================================================================= TRAIN
CHUNK_TRACES = [0]  # incremented each time the training chunk is traced (tests assert 1)


@dataclass(frozen=True)
class Schedule:
    """Sizes decided in Python before anything is traced."""

    episode_length: int
    buffer_rows: int
    learning_start_rows: int
    updates_per_rollout: int
    steps_per_training_step: int
    training_steps: int
    eval_boundaries: tuple[int, ...]  # training-step counts at which to evaluate
    checkpoint_boundaries: tuple[int, ...]  # training-step counts after which to write a checkpoint

    @property
    def final_env_steps(self) -> int:
        return self.training_steps * self.steps_per_training_step


def make_schedule(args: Args, env) -> Schedule:
    """Validate every flag combination before any compile; raise ConfigError naming the flags."""
    positive = [
        "num_envs",
        "num_eval_envs",
        "unroll_length",
        "batch_size",
        "buffer_size",
        "num_evals",
        "total_timesteps",
    ]
    for name in positive + ["width", "depth", "video_every", "num_seeds"]:
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1 (got {getattr(args, name)}).")
    if args.learning_starts < 0:
        raise ConfigError(f"--learning-starts must be >= 0 (got {args.learning_starts}).")
    if not 0.0 < args.gamma < 1.0:
        raise ConfigError(f"--gamma must be in (0, 1) (got {args.gamma}).")
    if not 0.0 <= args.relabel_ratio <= 1.0:
        raise ConfigError(f"--relabel-ratio must be in [0, 1] (got {args.relabel_ratio}).")
    if not 0.0 < args.tau <= 1.0:
        raise ConfigError(f"--tau must be in (0, 1] (got {args.tau}).")
    if args.policy_frequency < 1:
        raise ConfigError(f"--policy-frequency must be at least 1 (got {args.policy_frequency}).")
    for name in ("exploration_noise", "policy_noise", "noise_clip"):
        if getattr(args, name) < 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 0 (got {getattr(args, name)}).")
    episode_length = env.episode_length
    if episode_length < 2:
        raise ConfigError("--episode-length must be at least 2: a future goal needs a later step.")
    u = args.unroll_length
    buffer_rows = math.ceil(args.buffer_size / u) * u
    learning_start_rows = math.ceil(args.learning_starts / u) * u
    if learning_start_rows > buffer_rows:
        raise ConfigError(
            f"--learning-starts ({args.learning_starts}) exceeds the buffer ({buffer_rows} rows per env): "
            f"lower --learning-starts or raise --buffer-size to at least {learning_start_rows}."
        )
    rows_at_start = max(learning_start_rows, u)
    if args.batch_size > rows_at_start * args.num_envs:
        raise ConfigError(
            f"--batch-size ({args.batch_size}) is larger than what the buffer holds when learning starts "
            f"({rows_at_start} rows x {args.num_envs} envs = {rows_at_start * args.num_envs} transitions): lower "
            f"--batch-size or raise --learning-starts / --num-envs."
        )
    updates = args.updates_per_rollout
    if updates is None:
        updates = max(1, round(args.num_envs * (episode_length - 1) / args.batch_size))
    elif updates < 0:
        raise ConfigError(f"--updates-per-rollout must be >= 0 (got {updates}).")
    per_step = args.num_envs * u
    training_steps = math.ceil(args.total_timesteps / per_step)
    if args.num_evals > training_steps:
        raise ConfigError(
            f"--num-evals ({args.num_evals}) is more than the number of training steps ({training_steps} steps of "
            f"--num-envs x --unroll-length = {per_step} env steps): lower --num-evals to at most {training_steps} "
            f"or raise --total-timesteps."
        )
    boundaries = tuple(round(i * training_steps / args.num_evals) for i in range(args.num_evals + 1))
    if args.checkpoint_every < 0:
        raise ConfigError(f"--checkpoint-every must be >= 0 env steps (got {args.checkpoint_every}; 0 turns it off).")
    every = math.ceil(args.checkpoint_every / per_step)
    checkpoints = tuple(range(every, training_steps, every)) + (training_steps,) if every else ()
    if args.eval_only != (args.load_model is not None):
        raise ConfigError("--eval-only and --load-model go together: --eval-only --load-model PATH evaluates a model.")
    if args.track and args.num_seeds > 1:
        raise ConfigError("--track logs one run per process: drop --track or use --num-seeds 1.")
    return Schedule(
        episode_length, buffer_rows, learning_start_rows, updates, per_step, training_steps, boundaries, checkpoints
    )


def make_train(args: Args, env, schedule: Schedule):
    """Returns init(key) -> carry, chunk(carry, num_steps) -> (carry, stats), the buffer and an
    example transition."""
    vec_env = envs.VecEnv(env, args.num_envs)
    state_dim, action_dim = env.state_dim, env.action_size
    buffer = TrajectoryBuffer(
        capacity=schedule.buffer_rows,
        num_envs=args.num_envs,
        unroll_length=args.unroll_length,
        episode_length=schedule.episode_length,
        goal_indices=env.goal_indices,
        state_dim=state_dim,
        gamma=args.gamma,
    )
    example = Transition(
        obs=jnp.zeros(env.observation_size),
        action=jnp.zeros(action_dim),
        next_obs=jnp.zeros(env.observation_size),
        terminated=jnp.zeros(()),
        truncated=jnp.zeros(()),
        episode_id=jnp.zeros((), jnp.int32),
    )
    update, (actor_opt, critic_opt) = make_update(args)
    rollout = make_rollout(vec_env, args.unroll_length)

    def init(key):
        actor_key, critic_key, env_key, train_key = jax.random.split(key, 4)
        actor = Actor(env.observation_size, action_dim, args, actor_key)
        critic = make_critic(env.observation_size, action_dim, args, critic_key)
        ts = TrainState(
            actor,
            actor,
            critic,
            critic,
            actor_opt.init(eqx.filter(actor, eqx.is_inexact_array)),
            critic_opt.init(eqx.filter(critic, eqx.is_inexact_array)),
            jnp.zeros((), jnp.int32),
            jnp.zeros((), jnp.int32),
        )
        env_state = vec_env.reset(env_key)
        return (ts, env_state, jnp.zeros(args.num_envs), buffer.init(example), train_key)

    def training_step(carry):
        ts, env_state, episode_return, buffer_state, key = carry
        key, rollout_key, update_key = jax.random.split(key, 3)
        env_state, episode_return, transitions, finished = rollout(ts.actor, env_state, episode_return, rollout_key)
        buffer_state = buffer.insert(buffer_state, transitions)
        ts = eqx.tree_at(lambda t: t.env_steps, ts, ts.env_steps + schedule.steps_per_training_step)

        def gradient_steps(ts):
            def one(ts, k):
                sample_key, step_key = jax.random.split(k)
                batch = buffer.sample_her(
                    buffer_state,
                    sample_key,
                    args.batch_size,
                    args.relabel_ratio,
                    env.goal_reach_thresh,
                    success_fn=jax.vmap(env.success),  # the env's own test (composite for arm_grasp)
                )
                return update(ts, batch, step_key)

            ts, metrics = jax.lax.scan(one, ts, jax.random.split(update_key, schedule.updates_per_rollout))
            actor_updates = jnp.maximum(jnp.sum(metrics.pop("actor_updated")), 1.0)
            metrics = {**jax.tree.map(jnp.mean, metrics), "actor_loss": jnp.sum(metrics["actor_loss"]) / actor_updates}
            return ts, metrics, jnp.ones(())

        def no_steps(ts):
            return ts, {tag: jnp.zeros(()) for tag in LOSS_TAGS}, jnp.zeros(())

        learn = jnp.logical_and(buffer_state.size >= schedule.learning_start_rows, schedule.updates_per_rollout > 0)
        ts, metrics, learned = jax.lax.cond(learn, gradient_steps, no_steps, ts)
        return (ts, env_state, episode_return, buffer_state, key), metrics, learned, finished

    def chunk(carry, num_steps):
        """`num_steps` training steps (traced value: one compile serves every chunk length)."""
        CHUNK_TRACES[0] += 1
        stats = {
            "losses": {tag: jnp.zeros(()) for tag in LOSS_TAGS},
            "updated_steps": jnp.zeros(()),
            "return_sum": jnp.zeros(()),
            "episodes": jnp.zeros((), jnp.int32),
        }

        def body(_, loop):
            carry, stats = loop
            carry, metrics, learned, (return_sum, episodes) = training_step(carry)
            stats = {
                "losses": jax.tree.map(lambda s, m: s + learned * m, stats["losses"], metrics),
                "updated_steps": stats["updated_steps"] + learned,
                "return_sum": stats["return_sum"] + return_sum,
                "episodes": stats["episodes"] + episodes,
            }
            return carry, stats

        return jax.lax.fori_loop(0, num_steps, body, (carry, stats))

    return init, chunk, buffer, example


# ======================================================================= EVAL
def make_evaluate(args: Args, env, episode_length: int):
    eval_env = envs.VecEnv(env, args.num_eval_envs)

    def evaluate(actor: Actor, key):
        """One full episode per eval env, deterministic actions, fresh goals. Metrics count
        each env's first episode only (steps after its end are masked)."""

        def step(carry, _):
            state, alive, final_dist = carry
            nxt = eval_env.step(state, jax.vmap(actor.deterministic)(state.obs))
            ended = jnp.logical_or(nxt.done > 0, nxt.info["truncation"] > 0)
            final_dist = jnp.where(alive * ended > 0, nxt.metrics["dist"], final_dist)
            out = (
                nxt.metrics["success"] * alive,
                nxt.reward * alive,
                jax.tree.map(lambda x: x[0], state.pipeline_state),
            )
            return (nxt, alive * (1.0 - ended), final_dist), out + (state.info["goal"][0],)

        first = eval_env.reset(key)
        (_, _, final_dist), (success, reward, frames, goals) = jax.lax.scan(
            step, (first, jnp.ones(args.num_eval_envs), jnp.zeros(args.num_eval_envs)), None, episode_length
        )
        metrics = {
            "success_rate": jnp.mean(jnp.max(success, axis=0)),
            "time_at_goal": jnp.mean(jnp.sum(success, axis=0) / episode_length),
            "final_distance": jnp.mean(final_dist),
            "episodic_return": jnp.mean(jnp.sum(reward, axis=0)),
        }
        return metrics, (frames, goals)

    return evaluate


# ======================================================================= LOGGING
ALGORITHM = os.path.basename(__file__)[: -len(".py")]


class CheckpointError(ValueError):
    """A run directory, checkpoint or model file that cannot be used; the message says why."""


def model_of(ts: TrainState):
    """What --save-model writes and load_policy reads."""
    return ts.actor, ts.target_actor, ts.critic, ts.target_critic


def make_env(args: Args):
    try:
        return envs.make(args.env_id, backend=args.backend, episode_length=args.episode_length)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def make_run_dirs(args: Args) -> list[str]:
    """CleanRL's runs/{env_id}__{exp_name}__{seed}__{unix_time}, one per seed; never reuses a directory."""
    stamp, dirs = int(time.time()), []
    for seed in range(args.seed, args.seed + args.num_seeds):
        base = os.path.join(args.run_root, f"{args.env_id}__{args.exp_name}__{seed}__{stamp}")
        path, n = base, 0
        while os.path.exists(path):
            n += 1
            path = f"{base}_{n}"
        os.makedirs(path)
        dirs.append(path)
    return dirs


def hyperparameter_table(args: Args, schedule: Schedule) -> str:
    skip = ("eval_boundaries", "checkpoint_boundaries")
    rows = {**asdict(args), **{f"(derived) {k}": v for k, v in asdict(schedule).items() if k not in skip}}
    return "|param|value|\n|-|-|\n" + "\n".join(f"|{k}|{v}|" for k, v in rows.items())


def progress(env_steps, total, sps, eta_s, success):
    line = (
        f"\r{env_steps:>12,}/{total:,} env steps | {sps:>9,.0f} SPS | ETA {time.strftime('%H:%M:%S', time.gmtime(eta_s))}"
        f" | eval success {success:.3f}"
    )
    print(line, end="" if sys.stdout.isatty() else "\n", flush=True)


class _Hashing:
    """Writes through to a file and feeds the same bytes to a sha256."""

    def __init__(self, file, digest):
        self.file, self.digest = file, digest

    def write(self, data):
        self.digest.update(data)
        return self.file.write(data)


_FOOTER = len(b"\nsha256:") + 64


def write_file(path: str, header: dict, tree) -> None:
    """A JSON header line, the tree's leaves (Equinox serialisation) and a sha256 footer, written
    to a temp file, synced, then renamed: a crash never leaves a half-written file at `path`."""
    tmp, digest = f"{path}.tmp", hashlib.sha256()
    with open(tmp, "wb") as f:
        f.write(json.dumps(header).encode() + b"\n")
        eqx.tree_serialise_leaves(_Hashing(f, digest), tree)
        f.write(b"\nsha256:" + digest.hexdigest().encode())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_header(path: str, kind: str) -> dict:
    try:
        with open(path, "rb") as f:
            try:
                header = json.loads(f.readline())
            except ValueError:
                raise ValueError("it is not a model or checkpoint file of this project") from None
        if header.get("kind") != kind:
            raise ValueError(f"it is not a {kind} file")
        if header.get("algorithm") != ALGORITHM:
            raise ValueError(f"it was written by {header.get('algorithm')}.py, not {ALGORITHM}.py")
        return header
    except (OSError, ValueError, AttributeError) as error:
        raise CheckpointError(f"cannot use {path}: {error}.") from None


def read_tree(path: str, like):
    """The leaves stored in `path`, into the structure of `like`, after checking the file's
    sha256 and every leaf's shape and dtype."""

    def leaf(f, x):
        value = eqx.default_deserialise_filter_spec(f, x)
        if hasattr(x, "shape") and (value.shape != x.shape or value.dtype != x.dtype):
            raise ValueError(
                f"it holds a {value.dtype}{list(value.shape)} leaf where {x.dtype}{list(x.shape)} is expected"
            )
        return value

    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            f.readline()
            start, digest = f.tell(), hashlib.sha256()
            for offset in range(start, size - _FOOTER, 2**24):
                digest.update(f.read(min(2**24, size - _FOOTER - offset)))
            if f.read() != b"\nsha256:" + digest.hexdigest().encode():
                raise ValueError("its checksum does not match (truncated or damaged)")
            f.seek(start)
            tree = eqx.tree_deserialise_leaves(f, like, filter_spec=leaf)
            if f.tell() != size - _FOOTER:
                raise ValueError("it holds more data than this configuration's networks")
        return tree
    except (OSError, ValueError, EOFError) as error:
        raise CheckpointError(f"cannot load {path}: {error}.") from None


def load_model(path: str, args: Args | None = None):
    """(model, args, header) of a file written by --save-model. The networks' shapes come from
    the file; `args` (default: the file's) sets the env and evaluation flags."""
    header = read_header(path, "model")
    saved = Args(**header["args"])
    args = saved if args is None else args
    if envs.ALIASES.get(args.env_id, args.env_id) != envs.ALIASES.get(saved.env_id, saved.env_id):
        raise CheckpointError(
            f"{path} holds a model trained on {saved.env_id}, not {args.env_id}: pass --env-id {saved.env_id}."
        )
    keep = ("seed", "run_root", "exp_name", "backend", "episode_length", "num_eval_envs", "capture_video", "load_model")
    args = replace(saved, **{name: getattr(args, name) for name in keep}, num_seeds=1)
    env = make_env(args)
    init = make_train(args, env, make_schedule(replace(args, eval_only=False, load_model=None), env))[0]
    return read_tree(path, model_of(jax.eval_shape(init, jax.random.PRNGKey(0))[0])), args, env, header


def load_policy(path: str):
    """Load a model saved with --save-model: returns (act, env), where act(state, goal) -> action
    is the deterministic policy (tanh of the mean), jitted, for one state or a batch, and env
    is the environment it was trained on (state = obs[..., :env.state_dim])."""
    (actor, *_), _, env, _ = load_model(path)

    @jax.jit
    def act(state, goal):
        obs = jnp.concatenate([jnp.asarray(state), jnp.asarray(goal, jnp.float32)], axis=-1)
        return actor.deterministic(obs) if obs.ndim == 1 else jax.vmap(actor.deterministic)(obs)

    return act, env


def resumed_args(cli: Args) -> Args:
    """The flags of the run in `cli.resume`; flags given with --resume must agree with them."""
    path = os.path.join(cli.resume, "args.json")
    try:
        with open(path) as f:
            saved = json.load(f)
        if saved["algorithm"] != ALGORITHM:
            raise ValueError(f"it is a run of {saved['algorithm']}.py")
        first = os.path.join(os.path.dirname(os.path.normpath(cli.resume)), saved["run_names"][0])
        args = replace(Args(**saved["args"]), resume=first)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"--resume {cli.resume}: not a run directory of {ALGORITHM}.py ({error}).") from None
    if os.path.normpath(first) != os.path.normpath(cli.resume):
        raise ConfigError(f"--resume {cli.resume}: this seed belongs to a --num-seeds run; resume {first}.")
    defaults = Args()
    changed = [
        f"--{f.name.replace('_', '-')}"
        for f in fields(Args)
        if f.name != "resume" and getattr(cli, f.name) not in (getattr(defaults, f.name), getattr(args, f.name))
    ]
    if changed:
        raise ConfigError(f"--resume continues the run with its own flags; drop {', '.join(changed)}.")
    return args


def save_checkpoint(run_dir: str, carry, step: int, train_time: float) -> None:
    """The complete training state after `step` training steps; the two newest are kept."""
    folder = os.path.join(run_dir, "checkpoints")
    os.makedirs(folder, exist_ok=True)
    header = {"algorithm": ALGORITHM, "kind": "checkpoint", "training_steps": step, "train_time": train_time}
    write_file(os.path.join(folder, f"step_{step:09d}.ckpt"), header, carry)
    for old in sorted(glob.glob(os.path.join(folder, "step_*.ckpt")))[:-2]:
        os.remove(old)


def restore_checkpoint(run_dir: str, like):
    paths = sorted(glob.glob(os.path.join(run_dir, "checkpoints", "step_*.ckpt")))
    if not paths:
        raise CheckpointError(f"--resume {run_dir}: no checkpoint in {run_dir}/checkpoints (use --checkpoint-every).")
    try:
        header = read_header(paths[-1], "checkpoint")
        return read_tree(paths[-1], like), header["training_steps"], header["train_time"]
    except CheckpointError as error:
        older = f"; delete it to resume from {paths[-2]}" if len(paths) > 1 else ""
        raise CheckpointError(f"{error}{older}") from None


def log_video(env, writer, run_dir: str, rollout, env_steps: int) -> None:
    """Render one evaluation episode; write it as a GIF and as TensorBoard's animated image."""
    from tensorboardX.proto.summary_pb2 import Summary

    frames = envs.render(env, rollout[0], rollout[1])
    gif = envs.gif_bytes(frames, fps=1.0 / float(env.dt))
    os.makedirs(os.path.join(run_dir, "videos"), exist_ok=True)
    path = os.path.join(run_dir, "videos", f"eval_{env_steps:012d}.gif")
    with open(f"{path}.tmp", "wb") as f:
        f.write(gif)
    os.replace(f"{path}.tmp", path)
    height, width = frames[0].shape[:2]
    image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=gif)
    writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag="videos/eval", image=image)]), env_steps)


def per_seed(init, chunk, evaluate, num_seeds: int):
    """Give every function a leading seed axis: vmap for K > 1 seeds; one seed runs unbatched."""
    if num_seeds > 1:
        return jax.vmap(init), jax.vmap(chunk, in_axes=(0, None)), jax.vmap(evaluate)
    add, first = (lambda t: jax.tree.map(lambda x: x[None], t)), (lambda t: jax.tree.map(lambda x: x[0], t))
    return (
        lambda keys: add(init(keys[0])),
        lambda carry, n: add(chunk(first(carry), n)),
        lambda actor, keys: add(evaluate(first(actor), keys[0])),
    )


def evaluate_model(args: Args) -> list[str]:
    """--eval-only: num_eval_envs episodes of a saved model, logged as eval/* at its env steps."""
    model, args, env, header = load_model(args.load_model, args)
    evaluate = make_evaluate(args, env, env.episode_length)
    metrics, rollout = jax.jit(evaluate)(model[0], jax.random.PRNGKey(args.seed))
    run_dir = make_run_dirs(args)[0]
    writer = SummaryWriter(run_dir)
    for k, v in metrics.items():
        writer.add_scalar(f"eval/{k}", float(v), header["env_steps"])
    if args.capture_video:
        log_video(env, writer, run_dir, jax.device_get(rollout), header["env_steps"])
    writer.close()
    print(f"{args.load_model} on {args.env_id}: " + ", ".join(f"{k} {float(v):.3f}" for k, v in metrics.items()))
    return [run_dir]


def main(args: Args) -> list[str]:
    """Train (or with --eval-only evaluate) and return the run directories."""
    if args.resume is not None:
        args = resumed_args(args)
    if args.eval_only:
        make_schedule(args, make_env(args))  # validates the flags
        return evaluate_model(args)
    env = make_env(args)
    schedule = make_schedule(args, env)
    init, chunk, buffer, example = make_train(args, env, schedule)
    buffer.check_memory(example, copies=args.num_seeds)
    init, chunk, evaluate = per_seed(init, chunk, make_evaluate(args, env, schedule.episode_length), args.num_seeds)
    if args.track:
        try:
            import wandb
        except ImportError as error:
            raise ConfigError("--track needs Weights & Biases: `pip install wandb` and `wandb login`.") from error

    seeds = jnp.stack([jax.random.split(jax.random.PRNGKey(args.seed + k)) for k in range(args.num_seeds)])
    init_keys, eval_keys = seeds[:, 0], seeds[:, 1]
    if args.resume is None:
        run_dirs, start, train_time = make_run_dirs(args), 0, 0.0
        carry = jax.jit(init)(init_keys)
        names = [os.path.basename(d) for d in run_dirs]
        for k, run_dir in enumerate(run_dirs):
            record = {"algorithm": ALGORITHM, "args": asdict(args), "seed": args.seed + k, "run_names": names}
            with open(os.path.join(run_dir, "args.json"), "w") as f:
                json.dump(record, f, indent=1)
    else:
        with open(os.path.join(args.resume, "args.json")) as f:
            names = json.load(f)["run_names"]
        run_dirs = [os.path.join(os.path.dirname(os.path.normpath(args.resume)), name) for name in names]
        carry, start, train_time = restore_checkpoint(args.resume, jax.eval_shape(init, init_keys))
        print(f"resuming {args.resume} after {start * schedule.steps_per_training_step:,} env steps")
    if args.track:
        wandb.init(project=args.wandb_project_name, sync_tensorboard=True, config=asdict(args), name=run_dirs[0])
    # purge_step: TensorBoard hides whatever a killed run logged after its last checkpoint
    purge = start * schedule.steps_per_training_step + 1 if start else None
    # tensorboardX names event files by the second: a suffix keeps reopened writers apart
    writers = [SummaryWriter(d, purge_step=purge, filename_suffix=f".{time.time_ns()}") for d in run_dirs]
    if not start:
        for k, writer in enumerate(writers):
            writer.add_text("hyperparameters", hyperparameter_table(replace(args, seed=args.seed + k), schedule))
    print("run directory: " + ", ".join(run_dirs))

    compile_start = time.perf_counter()
    chunk_fn = jax.jit(chunk, donate_argnums=0).lower(carry, jnp.int32(0)).compile()
    eval_fn = jax.jit(evaluate).lower(carry[0].actor, eval_keys).compile()
    print(f"compiled training chunk and evaluation in {time.perf_counter() - compile_start:.1f} s")
    videos, pending = ThreadPoolExecutor(max_workers=1), []  # rendering overlaps the next chunk

    def run_eval(actor, env_steps, index):
        metrics, rollout = eval_fn(actor, jax.vmap(jax.random.fold_in, (0, None))(eval_keys, index))
        metrics = jax.device_get(metrics)
        for k, writer in enumerate(writers):
            for name, v in metrics.items():
                writer.add_scalar(f"eval/{name}", float(v[k]), env_steps)
        if args.capture_video and (index % args.video_every == 0 or index == args.num_evals):
            rollout = jax.device_get(rollout)
            for k, (writer, run_dir) in enumerate(zip(writers, run_dirs)):
                one = jax.tree.map(lambda x, k=k: x[k], rollout)
                pending.append(videos.submit(log_video, env, writer, run_dir, one, env_steps))
        return {name: float(np.mean(v)) for name, v in metrics.items()}

    loop_start = time.perf_counter()
    eval_metrics = run_eval(carry[0].actor, 0, 0) if not start else {"success_rate": float("nan")}
    evals = {b: i for i, b in enumerate(schedule.eval_boundaries)}
    boundaries = sorted(set(schedule.eval_boundaries) | set(schedule.checkpoint_boundaries))
    for lo, hi in zip(boundaries, boundaries[1:]):
        if lo < start:
            continue
        begin = time.perf_counter()
        carry, stats = chunk_fn(carry, jnp.int32(hi - lo))
        stats = jax.device_get(stats)
        elapsed = time.perf_counter() - begin
        train_time += elapsed
        env_steps = hi * schedule.steps_per_training_step
        for k, (writer, run_dir) in enumerate(zip(writers, run_dirs)):
            writer.add_scalar("charts/SPS", (hi - lo) * schedule.steps_per_training_step / elapsed, env_steps)
            if stats["episodes"][k] > 0:
                writer.add_scalar("charts/episodic_return", stats["return_sum"][k] / stats["episodes"][k], env_steps)
            if stats["updated_steps"][k] > 0:
                losses = {name: float(v[k]) / stats["updated_steps"][k] for name, v in stats["losses"].items()}
                bad = [name for name, v in losses.items() if not np.isfinite(v)]
                if bad:
                    for w in writers:
                        w.close()
                    raise FloatingPointError(
                        f"non-finite {', '.join('losses/' + name for name in bad)} in {run_dir} in the training "
                        f"steps up to env step {env_steps}; lower the learning rates or try --layer-norm."
                    )
                for name, v in losses.items():
                    writer.add_scalar(f"losses/{name}", v, env_steps)
        if hi in evals:
            eval_metrics = run_eval(carry[0].actor, env_steps, evals[hi])
        if hi in schedule.checkpoint_boundaries:
            for job in pending:
                job.result()
            for writer in writers:
                writer.close()  # drains tensorboardX's queue: what the checkpoint covers is on disk first
            writers = [SummaryWriter(d, filename_suffix=f".{time.time_ns()}") for d in run_dirs]
            save_checkpoint(run_dirs[0], jax.device_get(carry), hi, train_time)
        done = (hi - start) * schedule.steps_per_training_step
        remaining = schedule.final_env_steps - env_steps
        progress(
            env_steps,
            schedule.final_env_steps,
            done / train_time,
            remaining * train_time / done,
            eval_metrics["success_rate"],
        )
    print()
    if start == schedule.training_steps:
        print(f"{args.resume} had already finished")
    over = schedule.final_env_steps - args.total_timesteps
    print(
        f"trained {schedule.final_env_steps:,} env steps ("
        + (
            "exactly --total-timesteps"
            if over == 0
            else f"--total-timesteps {args.total_timesteps:,} + {over:,} to finish the last training step"
        )
        + f") x {args.num_seeds} seed(s), {int(carry[0].grad_steps[0]):,} gradient steps each, {schedule.final_env_steps / max(train_time, 1e-9):,.0f} SPS per seed; final eval (mean over seeds): "
        + ", ".join(f"{k} {v:.3f}" for k, v in eval_metrics.items())
    )
    if args.save_model:
        for k, run_dir in enumerate(run_dirs):
            path = os.path.join(run_dir, f"{args.exp_name}.eqx")
            header = {
                "algorithm": ALGORITHM,
                "kind": "model",
                "args": asdict(args),
                "env_steps": schedule.final_env_steps,
            }
            write_file(path, header, model_of(jax.tree.map(lambda x, k=k: x[k], carry[0])))
            print(f"model saved to {path}")
    videos.shutdown(wait=True)
    for job in pending:
        job.result()  # re-raises a rendering error
    print(f"training loop: {time.perf_counter() - loop_start:.1f} s wall (training, evaluations, checkpoints, videos)")
    for writer in writers:
        writer.close()
    return run_dirs


if __name__ == "__main__":
    try:
        main(tyro.cli(Args))
    except (ConfigError, BufferMemoryError, FloatingPointError, CheckpointError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
