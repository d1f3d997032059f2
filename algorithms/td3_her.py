"""Goal-conditioned TD3 with hindsight experience replay (HER), in one file.

Papers: Fujimoto, van Hoof, Meger, "Addressing Function Approximation Error in Actor-Critic
Methods", ICML 2018 (arXiv 1802.09477); Andrychowicz et al., "Hindsight Experience Replay", NeurIPS 2017 (arXiv
1707.01495); defaults and env suite from Bortkiewicz et al., "Accelerating Goal-Conditioned RL
Algorithms and Research", ICLR 2025 (arXiv 2408.11052).

The policy and twin critics see obs = concat(state, goal). Rewards are sparse: 1 when s_{t+1} is
within the env's threshold of the goal. HER ("future" strategy): each sampled transition keeps
its commanded goal with probability 1 - relabel_ratio and otherwise gets the achieved goal of a
later state of its own episode (P(k) ~ relabel_gamma^(k-1); `--relabel-gamma` defaults to 0.99
whatever `--gamma` is); its reward is then recomputed from s_{t+1} under that goal. Critic
targets bootstrap through time-limit truncation, never through termination. TD3's three
fixes: twin critics (the target takes their minimum), target policy smoothing (clipped noise
on the target action) and delayed policy updates (the actor and both targets move every
`policy_frequency` critic updates). The target policy is a Polyak average of
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
GIFs (TensorBoard tag videos/eval); `--num-seeds K` trains K seeds through one compile. With
several devices visible, the envs and the buffer's env columns are split over them (a
`jax.sharding.Mesh` with axis "data") and each gradient step's batch too, so XLA all-reduces
the gradients; the results equal a one-device run up to float rounding (`--num-devices 1`
turns it off).

Logged (x axis = env steps): charts/SPS (excluding compile and evaluation),
charts/episodic_return, eval/success_rate, eval/time_at_goal, eval/final_distance,
eval/episodic_return, losses/qf1_loss, losses/qf2_loss, losses/qf1_values, losses/qf2_values,
losses/actor_loss.
"""

from __future__ import annotations

import functools
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
from jax.experimental import multihost_utils
from tensorboardX import SummaryWriter

import buffers
import envs
from buffers import BufferMemoryError, CheckpointError, TrajectoryBuffer, Transition


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
    num_devices: int | None = None
    """devices to split the envs and the buffer over, gradients averaged (default: all visible)"""
    distributed: str | None = None
    """multi-host: "auto" (cluster detected by jax.distributed) or HOST:PORT,NUM_PROCESSES,PROCESS_ID"""
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
    """discount of the critic targets"""
    tau: float = 0.005
    """Polyak rate of the target actor and critics"""
    relabel_ratio: float = 0.8
    """fraction of sampled transitions whose goal becomes a future achieved goal (HER); 0 turns HER off"""
    relabel_gamma: float = 0.99
    """HER goal distribution: the goal is s_{t+k} with P(k) ~ relabel_gamma^(k-1) (1: uniform over the episode's later steps)"""
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
        ts = TrainState(actor, target_actor, critic, target_critic,
                        actor_opt_state, critic_opt_state, ts.env_steps, ts.grad_steps + 1)  # fmt: skip
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
    positive = "num_envs num_eval_envs unroll_length batch_size buffer_size num_evals total_timesteps"
    positive += " width depth video_every num_seeds"
    for name in positive.split():
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1 (got {getattr(args, name)}).")
    if args.learning_starts < 0:
        raise ConfigError(f"--learning-starts must be >= 0 (got {args.learning_starts}).")
    if args.capture_video:
        try:
            envs.check_rendering()
        except envs.RenderingUnavailable as error:
            raise ConfigError(f"--capture-video: {error}") from None
    if not 0.0 < args.gamma < 1.0:
        raise ConfigError(f"--gamma must be in (0, 1) (got {args.gamma}).")
    if not 0.0 < args.relabel_gamma <= 1.0:
        raise ConfigError(f"--relabel-gamma must be in (0, 1] (got {args.relabel_gamma}).")
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
    if training_steps * u < learning_start_rows and updates > 0:
        prefill = learning_start_rows * args.num_envs
        raise ConfigError(
            f"--total-timesteps ({args.total_timesteps:,}) ends before learning starts: --learning-starts "
            f"{args.learning_starts} rows per env (whole rollouts: {learning_start_rows}) x --num-envs "
            f"{args.num_envs} = {prefill:,} env steps are collected first. Raise --total-timesteps above "
            f"{prefill:,}, or lower --learning-starts or --num-envs."
        )
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


def make_train(args: Args, env, schedule: Schedule, mesh=None):
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
        gamma=args.relabel_gamma,
    )
    example = Transition.example(env.observation_size, action_dim)
    update, (actor_opt, critic_opt) = make_update(args)
    rollout = make_rollout(vec_env, args.unroll_length)
    # several devices: each sampled batch is split over them, so XLA computes the loss data-parallel
    # and all-reduces the gradients (still the mean over the whole batch, as on one device)
    split = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data")) if mesh else None
    spread = (lambda batch: jax.lax.with_sharding_constraint(batch, split)) if mesh else (lambda batch: batch)

    def init(key):
        actor_key, critic_key, env_key, train_key = jax.random.split(key, 4)
        actor = Actor(env.observation_size, action_dim, args, actor_key)
        critic = make_critic(env.observation_size, action_dim, args, critic_key)
        opt_states = [
            o.init(eqx.filter(n, eqx.is_inexact_array)) for o, n in [(actor_opt, actor), (critic_opt, critic)]
        ]
        counter = jnp.zeros((), jnp.int32)
        ts = TrainState(actor, actor, critic, critic, *opt_states, counter, counter)
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
                return update(ts, spread(batch), step_key)

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
def make_evaluate(args: Args, env):
    eval_env = envs.VecEnv(env, args.num_eval_envs)

    def evaluate(actor: Actor, key):
        """One episode per eval env, deterministic actions, fresh goals: (metrics, env 0's episode)."""
        return eval_env.evaluate(jax.vmap(actor.deterministic), key)

    return evaluate


# ======================================================================= LOGGING
ALGORITHM = os.path.basename(__file__)[: -len(".py")]


def model_of(ts: TrainState):
    """What --save-model writes and load_policy reads."""
    return ts.actor, ts.target_actor, ts.critic, ts.target_critic


def make_env(args: Args):
    try:
        return envs.make(args.env_id, backend=args.backend, episode_length=args.episode_length)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def start_distributed(spec: str) -> None:
    """--distributed: join the other processes of a multi-host run, before JAX touches a device."""
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU hosts; GPUs use NCCL
    if spec == "auto":
        return jax.distributed.initialize()  # SLURM, Open MPI, Kubernetes, ... as JAX detects them
    try:
        address, num_processes, process_id = spec.split(",")
        jax.distributed.initialize(address, int(num_processes), int(process_id))
    except ValueError as error:
        raise ConfigError(f"--distributed {spec}: {error} (use auto or HOST:PORT,NUM_PROCESSES,PROCESS_ID).") from None


def make_mesh(args: Args):
    """A 1-D mesh (axis "data") over --num-devices devices, or None for one device."""
    devices = jax.devices()
    n = len(devices) if args.num_devices is None else args.num_devices
    if not 1 <= n <= len(devices):
        raise ConfigError(f"--num-devices {n}: {len(devices)} device(s) are visible ({devices[0].platform}).")
    if args.num_envs % n or args.batch_size % n:
        raise ConfigError(f"--num-envs ({args.num_envs}) and --batch-size ({args.batch_size}) must be multiples "
                          f"of the {n} devices: set them so, or pass --num-devices.")  # fmt: skip
    return jax.sharding.Mesh(np.array(devices[:n]), ("data",)) if n > 1 else None


def carry_shardings(mesh, carry, num_envs: int):
    """Env states and the buffer's env columns split over the mesh's "data" axis (after the
    leading seed axis); networks, optimiser states, counters and keys replicated."""
    P, replicated = jax.sharding.PartitionSpec, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())

    def split(axis):
        shard = jax.sharding.NamedSharding(mesh, P(*[None] * axis, "data"))
        return lambda x: shard if x.ndim > axis and x.shape[axis] == num_envs else replicated

    ts, env_state, episode_return, buffer_state, key = carry
    data = jax.tree.map(split(2), buffer_state.data)
    return (jax.tree.map(lambda _: replicated, ts), jax.tree.map(split(1), env_state), split(1)(episode_return),
            buffer_state._replace(data=data, insert_index=replicated, size=replicated), replicated)  # fmt: skip


def make_run_dirs(args: Args) -> list[str]:
    """CleanRL's runs/{env_id}__{exp_name}__{seed}__{unix_time}, one per seed, each with an
    args.json; never reuses a directory."""
    stamp, dirs = int(time.time()), []
    for seed in range(args.seed, args.seed + args.num_seeds):
        base = path = os.path.join(args.run_root, f"{args.env_id}__{args.exp_name}__{seed}__{stamp}")
        while os.path.exists(path):
            path = f"{base}_{len(dirs) + 1}_{time.time_ns() % 10**6}"
        os.makedirs(path)
        dirs.append(path)
    for k, run_dir in enumerate(dirs):
        record = {"algorithm": ALGORITHM, "args": asdict(args), "seed": args.seed + k,
                  "run_names": [os.path.basename(d) for d in dirs]}  # fmt: skip
        with open(os.path.join(run_dir, "args.json"), "w") as f:
            json.dump(record, f, indent=1)
    return dirs


def hyperparameter_table(args: Args, schedule: Schedule) -> str:
    skip = ("eval_boundaries", "checkpoint_boundaries")
    rows = {**asdict(args), **{f"(derived) {k}": v for k, v in asdict(schedule).items() if k not in skip}}
    return "|param|value|\n|-|-|\n" + "\n".join(f"|{k}|{v}|" for k, v in rows.items())


def progress(env_steps, total, sps, eta_s, success):
    eta = time.strftime("%H:%M:%S", time.gmtime(eta_s))
    line = f"\r{env_steps:>12,}/{total:,} env steps | {sps:>9,.0f} SPS | ETA {eta} | eval success {success:.3f}"
    print(line, end="" if sys.stdout.isatty() else "\n", flush=True)


def load_model(path: str, args: Args | None = None):
    """(model, args, env, header) of a file written by --save-model. The networks' shapes come
    from the file; `args` (default: the file's) sets the env and evaluation flags."""
    header = buffers.read_header(path, kind="model", algorithm=ALGORITHM)
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
    return buffers.load_tree(path, model_of(jax.eval_shape(init, jax.random.PRNGKey(0))[0])), args, env, header


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
    try:
        with open(os.path.join(cli.resume, "args.json")) as f:
            saved = json.load(f)
        if saved["algorithm"] != ALGORITHM:
            raise ValueError(f"it is a run of {saved['algorithm']}.py")
        first = os.path.join(os.path.dirname(os.path.normpath(cli.resume)), saved["run_names"][0])
        args = replace(Args(**saved["args"]), resume=first)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"--resume {cli.resume}: not a run directory of {ALGORITHM}.py ({error}).") from None
    if os.path.normpath(first) != os.path.normpath(cli.resume):
        raise ConfigError(f"--resume {cli.resume}: this seed belongs to a --num-seeds run; resume {first}.")
    keep = ("resume", "num_devices", "distributed")  # the devices may change; the results do not depend on them
    changed = [f"--{f.name.replace('_', '-')}" for f in fields(Args) if f.name not in keep
               and getattr(cli, f.name) not in (getattr(Args(), f.name), getattr(args, f.name))]  # fmt: skip
    if changed:
        raise ConfigError(f"--resume continues the run with its own flags; drop {', '.join(changed)}.")
    return replace(args, num_devices=cli.num_devices, distributed=cli.distributed)


def log_video(env, writer, run_dir: str, rollout, env_steps: int) -> None:
    """Render one evaluation episode; write it as a GIF and as TensorBoard's animated image."""
    frames = envs.render(env, rollout[0], rollout[1])
    path = os.path.join(run_dir, "videos", f"eval_{env_steps:012d}.gif")
    envs.save_gif(frames, path, fps=1.0 / float(env.dt), writer=writer, step=env_steps, tag="videos/eval")


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
    metrics, rollout = jax.jit(make_evaluate(args, env))(model[0], jax.random.PRNGKey(args.seed))
    run_dir = make_run_dirs(args)[0]
    writer = SummaryWriter(run_dir)
    for k, v in metrics.items():
        writer.add_scalar(f"eval/{k}", float(v), header["env_steps"])
    if args.capture_video:
        log_video(env, writer, run_dir, jax.device_get(rollout), header["env_steps"])
    writer.close()
    print(f"{args.load_model} on {args.env_id}: " + ", ".join(f"{k} {float(v):.3f}" for k, v in metrics.items()))
    return [run_dir]


def log_chunk(writers, run_dirs, stats, sps: float, env_steps: int) -> None:
    """charts/* and losses/* of one chunk, per seed; stops on a non-finite loss."""
    for k, (writer, run_dir) in enumerate(zip(writers, run_dirs)):
        writer.add_scalar("charts/SPS", sps, env_steps)
        if stats["episodes"][k] > 0:
            writer.add_scalar("charts/episodic_return", stats["return_sum"][k] / stats["episodes"][k], env_steps)
        if stats["updated_steps"][k] > 0:
            losses = {name: float(v[k]) / stats["updated_steps"][k] for name, v in stats["losses"].items()}
            bad = [f"losses/{name}" for name, v in losses.items() if not np.isfinite(v)]
            if bad:
                for w in writers:
                    w.close()
                raise FloatingPointError(f"non-finite {', '.join(bad)} in {run_dir} in the training steps up to "
                                         f"env step {env_steps}; lower the learning rates or try --layer-norm.")  # fmt: skip
            for name, v in losses.items():
                writer.add_scalar(f"losses/{name}", v, env_steps)


def main(args: Args) -> list[str]:
    """Train (or with --eval-only evaluate) and return the run directories (in a multi-host
    run, the first process writes them and returns them; the others return [])."""
    if args.distributed and not args.eval_only:
        start_distributed(args.distributed)
    args = resumed_args(args) if args.resume is not None else args
    env = make_env(args)  # before anything starts JAX: an arm or pusher turns off XLA's fusion emitters
    lead = jax.process_index() == 0
    schedule = make_schedule(args, env)  # validates the flags before anything compiles
    if args.eval_only:
        return evaluate_model(args)
    mesh = make_mesh(args)
    init, chunk, buffer, example = make_train(args, env, schedule, mesh)
    buffer.check_memory(example, copies=args.num_seeds, devices=1 if mesh is None else mesh.size)
    init, chunk, evaluate = per_seed(init, chunk, make_evaluate(args, env), args.num_seeds)
    if args.track:
        try:
            import wandb
        except ImportError as error:
            raise ConfigError("--track needs Weights & Biases: `pip install wandb` and `wandb login`.") from error

    # host arrays (numpy) where a multi-host run needs every process to pass the same value
    seeds = np.stack([jax.random.split(jax.random.PRNGKey(args.seed + k)) for k in range(args.num_seeds)])
    init_keys, eval_keys = seeds[:, 0], seeds[:, 1]
    like = jax.eval_shape(init, init_keys)
    shardings = None if mesh is None else carry_shardings(mesh, like, args.num_envs)
    if args.resume is None:
        run_dirs, start, train_time = make_run_dirs(args) if lead else [], 0, 0.0
        carry = jax.jit(init, out_shardings=shardings)(init_keys) if mesh else jax.jit(init)(init_keys)
    else:
        with open(os.path.join(args.resume, "args.json")) as f:
            names = json.load(f)["run_names"] if lead else []
        run_dirs = [os.path.join(os.path.dirname(os.path.normpath(args.resume)), name) for name in names]
        try:
            carry, header = buffers.load_checkpoint(os.path.join(args.resume, "checkpoints"), like, algorithm=ALGORITHM)
        except CheckpointError as error:
            raise CheckpointError(f"--resume {args.resume}: {error} (written with --checkpoint-every).") from None
        carry = jax.device_put(jax.tree.map(np.asarray, carry), shardings)  # host values: any process count
        start, train_time = header["step"], header["train_time"]
        print(f"resuming {args.resume} after {start * schedule.steps_per_training_step:,} env steps")
    if args.track and lead:
        wandb.init(project=args.wandb_project_name, sync_tensorboard=True, config=asdict(args), name=run_dirs[0])
    # purge_step: TensorBoard hides whatever a killed run logged after its last checkpoint;
    # tensorboardX names event files by the second: a suffix keeps reopened writers apart
    purge = start * schedule.steps_per_training_step + 1 if start else None
    writers = [SummaryWriter(d, purge_step=purge, filename_suffix=f".{time.time_ns()}") for d in run_dirs]
    for k, writer in enumerate(writers if not start else []):
        writer.add_text("hyperparameters", hyperparameter_table(replace(args, seed=args.seed + k), schedule))
    if lead:
        print("run directory: " + ", ".join(run_dirs) + (f" ({mesh.size} devices)" if mesh else ""))
    fetch = (
        jax.device_get if jax.process_count() == 1 else functools.partial(multihost_utils.process_allgather, tiled=True)
    )

    compile_start = time.perf_counter()
    out = {"out_shardings": (shardings, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))} if mesh else {}
    chunk_fn = jax.jit(chunk, donate_argnums=0, **out).lower(carry, np.int32(0)).compile()

    def evaluate_at(actor, keys, index):
        return evaluate(actor, jax.vmap(jax.random.fold_in, (0, None))(keys, index))

    eval_fn = jax.jit(evaluate_at).lower(carry[0].actor, eval_keys, np.int32(0)).compile()
    print(f"compiled training chunk and evaluation in {time.perf_counter() - compile_start:.1f} s")
    videos, pending = ThreadPoolExecutor(max_workers=1), []  # rendering overlaps the next chunk

    def run_eval(actor, env_steps, index):
        metrics, rollout = eval_fn(actor, eval_keys, np.int32(index))
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
    evals, per_step = {b: i for i, b in enumerate(schedule.eval_boundaries)}, schedule.steps_per_training_step
    boundaries = sorted(set(schedule.eval_boundaries) | set(schedule.checkpoint_boundaries))
    for lo, hi in [(lo, hi) for lo, hi in zip(boundaries, boundaries[1:]) if lo >= start]:
        begin = time.perf_counter()
        carry, stats = chunk_fn(carry, np.int32(hi - lo))
        stats = jax.device_get(stats)
        elapsed = time.perf_counter() - begin
        train_time += elapsed
        log_chunk(writers, run_dirs, stats, (hi - lo) * per_step / elapsed, hi * per_step)
        if hi in evals:
            eval_metrics = run_eval(carry[0].actor, hi * per_step, evals[hi])
        if hi in schedule.checkpoint_boundaries:
            for job in pending:
                job.result()
            for writer in writers:
                writer.close()  # drains tensorboardX's queue: what the checkpoint covers is on disk first
            writers = [SummaryWriter(d, filename_suffix=f".{time.time_ns()}") for d in run_dirs]
            header, snapshot = {"algorithm": ALGORITHM, "kind": "checkpoint", "train_time": train_time}, fetch(carry)
            if lead:
                buffers.save_checkpoint(os.path.join(run_dirs[0], "checkpoints"), hi, header, snapshot)
        done = (hi - start) * per_step
        eta = (schedule.final_env_steps - hi * per_step) * train_time / done
        if lead:
            progress(hi * per_step, schedule.final_env_steps, done / train_time, eta, eval_metrics["success_rate"])
    print(f"\n{args.resume} had already finished" if start == schedule.training_steps else "")
    final = jax.device_get(carry[0])  # networks and counters (replicated over the devices)
    over = schedule.final_env_steps - args.total_timesteps
    exact = (
        "exactly --total-timesteps" if over == 0 else f"--total-timesteps + {over:,} to finish the last training step"
    )
    print(f"trained {schedule.final_env_steps:,} env steps ({exact}) x {args.num_seeds} seed(s), "
          f"{int(final.grad_steps[0]):,} gradient steps each, {schedule.final_env_steps / max(train_time, 1e-9):,.0f} "
          "SPS per seed; final eval (mean over seeds): " + ", ".join(f"{k} {v:.3f}" for k, v in eval_metrics.items()))  # fmt: skip
    for k, run_dir in enumerate(run_dirs if args.save_model else []):
        path = os.path.join(run_dir, f"{args.exp_name}.eqx")
        header = {"algorithm": ALGORITHM, "kind": "model", "args": asdict(args), "env_steps": schedule.final_env_steps}
        buffers.save_tree(path, header, model_of(jax.tree.map(lambda x, k=k: x[k], final)))
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
