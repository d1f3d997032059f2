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

The file reads top to bottom: the flags (`Args`), the algorithm (networks, losses, update,
training step and loop, evaluation), then its hand-over to the harness, `algorithms/run/`.
Everything per training step runs in one compiled function: `unroll_length` steps of `num_envs`
envs, the buffer insert, and `updates_per_rollout` gradient steps on relabelled batches;
Python only loops over chunks of training steps to evaluate, log and print progress.

Research runs (resume, saved policies and commanded goals, videos, many seeds, several devices
and hosts) are the harness's, the same for every file: docs/research_runs.md.

Logged (x axis = env steps): charts/SPS (excluding compile and evaluation),
charts/episodic_return; with deterministic actions eval/success_rate, eval/time_at_goal,
eval/final_distance, eval/episodic_return, eval/steps_to_success (first step at the goal, over
the episodes that got there; absent when none did), and the same five with sampled actions from
the same goals: eval/sampled_success_rate, eval/sampled_time_at_goal,
eval/sampled_final_distance, eval/sampled_episodic_return, eval/sampled_steps_to_success;
with --eval-tasks (the default), per named task of the env (k = 1 ... 5)
eval/tasks/task{k}_success and eval/tasks/task{k}_time_at_goal, their means
eval/tasks/overall_success and eval/tasks/overall_time_at_goal, and the same with sampled
actions: eval/tasks/sampled_task{k}_success, eval/tasks/sampled_task{k}_time_at_goal,
eval/tasks/sampled_overall_success, eval/tasks/sampled_overall_time_at_goal;
losses/qf1_loss, losses/qf2_loss, losses/qf1_values, losses/qf2_values,
losses/actor_loss.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

import envs
from algorithms import run
from algorithms.networks import MLP, linear_weights
from algorithms.run import require
from algorithms.splus import evaluated, splus
from buffers import TrajectoryBuffer, Transition


@dataclass(frozen=True)
class Args(run.ScheduleArgs):
    """The algorithm's flags; the run's (--env-id, --num-envs, --total-timesteps, --seed, ...)
    and the schedule's come first, from run.ScheduleArgs (algorithms/run/contract.py). `--help`
    lists them all."""

    exp_name: str = os.path.basename(__file__)[: -len(".py")]
    """the name of this experiment (part of the run directory's name)"""

    # Schedule: how env steps and gradient steps interleave. The flags and their help are
    # run.ScheduleArgs's (algorithms/run/contract.py); these are this file's defaults. The update
    # ratio: --updates-per-rollout, default num_envs * (episode_length - 1) / batch_size.
    unroll_length: int = 62
    batch_size: int = 256
    buffer_size: int = 10_000
    learning_starts: int = 1_000
    presample: bool = False  # not faster here on CPU (results/notes/step_latency.md)

    # Algorithm
    actor_lr: float = 3e-4
    """actor learning rate"""
    critic_lr: float = 3e-4
    """critic learning rate"""
    # >>> shared: optimiser flags | crl_infonce crl_dpo sac_her td3_her
    optimizer: Literal["adam", "splus"] = "adam"
    """adam at the learning rates above, or splus at --splus-lr (algorithms/splus.py); a temperature keeps Adam"""
    splus_lr: float = 0.15
    """--optimizer splus: learning rate of the actor and critic (the reference's rule for width 256)"""
    splus_b1: float = 0.9
    """--optimizer splus: rate of the gradients' momentum"""
    splus_b2: float = 0.999
    """--optimizer splus: rate of the running averages of G G^T and G^T G"""
    splus_inverse_every: int = 100
    """--optimizer splus: gradient steps between refreshes of their eigenbases (and at the first)"""
    splus_weight_decay: float = 0.01
    """--optimizer splus: weight decay"""
    splus_ema_rate: float = 0.999
    """--optimizer splus: rate of the parameters' running average used for evaluation and --save-model"""
    # <<< shared: optimiser flags
    gamma: float = 0.99
    """discount of the critic targets"""
    tau: float = 0.005
    """Polyak rate of the target actor and critics"""
    relabel_ratio: float = 0.8
    """fraction of sampled transitions whose goal becomes a future achieved goal (HER); 0 turns HER off"""
    relabel_gamma: float = 0.99
    """HER's goal is s_{t+k} with P(k) ~ relabel_gamma^(k-1) (1: uniform over the episode's later steps)"""
    exploration_noise: float = 0.1
    """std of the Gaussian noise added to training actions (then clipped to [-1, 1])"""
    policy_noise: float = 0.2
    """std of the target policy smoothing noise"""
    noise_clip: float = 0.5
    """the target policy smoothing noise is clipped to [-noise_clip, noise_clip]"""
    policy_frequency: int = 2
    """critic updates per actor (and target) update"""
    # >>> shared: network flags | crl_infonce crl_dpo sac_her td3_her
    width: int = 256
    """hidden units per layer (all networks)"""
    depth: int = 2
    """hidden layers of every network (the shorthand for --critic-depth and --actor-depth)"""
    critic_depth: int | None = None
    """hidden layers of the critic's networks (default: --depth)"""
    actor_depth: int | None = None
    """hidden layers of the actor (default: --depth)"""
    layer_norm: bool = False
    """LayerNorm after every hidden layer"""
    residual: bool = False
    """deep networks: an input layer, then depth/4 residual blocks of four layers (depth a multiple of 4)"""
    scan_unroll: int | None = None
    """blocks of hidden layers written out per loop iteration, 0 for none (default: networks.SCAN_UNROLL)"""
    # <<< shared: network flags

    def __post_init__(self):
        """The algorithm's flags are checked here, as they are parsed; the run's flags and the
        schedule's are checked by the harness (`run.make_schedule`)."""
        run.require_network_sizes(self)
        require(self.splus_lr > 0, f"--splus-lr must be positive (got {self.splus_lr}).")
        require(
            self.splus_inverse_every >= 1, f"--splus-inverse-every must be at least 1 (got {self.splus_inverse_every})."
        )
        rates = {"--splus-b1": self.splus_b1, "--splus-b2": self.splus_b2, "--splus-ema-rate": self.splus_ema_rate}
        for flag, rate in rates.items():
            require(0.0 <= rate < 1.0, f"{flag} must be in [0, 1) (got {rate}).")
        require((self.scan_unroll or 0) >= 0, f"--scan-unroll must be at least 0 (got {self.scan_unroll}).")
        require(0.0 < self.gamma < 1.0, f"--gamma must be in (0, 1) (got {self.gamma}).")
        require(0.0 < self.relabel_gamma <= 1.0, f"--relabel-gamma must be in (0, 1] (got {self.relabel_gamma}).")
        require(0.0 <= self.relabel_ratio <= 1.0, f"--relabel-ratio must be in [0, 1] (got {self.relabel_ratio}).")
        require(0.0 < self.tau <= 1.0, f"--tau must be in (0, 1] (got {self.tau}).")
        require(self.policy_frequency >= 1, f"--policy-frequency must be at least 1 (got {self.policy_frequency}).")
        for name in ("exploration_noise", "policy_noise", "noise_clip"):
            value = getattr(self, name)
            require(value >= 0, f"--{name.replace('_', '-')} must be >= 0 (got {value}).")


# ======================================================================= NETWORKS
# Built from algorithms/networks.py's MLP: an input layer, the hidden layers in scanned blocks
# (--residual: blocks of four with a skip), a linear output.
class QNetwork(eqx.Module):
    """Q(s, g, a) on obs = concat(s, g)."""

    net: MLP

    def __init__(self, obs_dim, action_dim, args: Args, key):
        depth = args.critic_depth or args.depth
        self.net = MLP(
            obs_dim + action_dim, 1, args.width, depth, args.layer_norm, args.residual, key, args.scan_unroll
        )

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
        depth = args.actor_depth or args.depth
        self.net = MLP(obs_dim, action_dim, args.width, depth, args.layer_norm, args.residual, key, args.scan_unroll)
        self.exploration_noise = args.exploration_noise

    def __call__(self, obs):
        return jnp.tanh(self.net(obs))

    def explore(self, obs, key):
        """A training action (and evaluation's sampled one): Gaussian noise added, then clipped."""
        noise = self.exploration_noise * jax.random.normal(key, (self.net.out.out_features,))
        return jnp.clip(self(obs) + noise, -1.0, 1.0)

    def deterministic(self, obs):
        return self(obs)


class TrainState(eqx.Module):
    actor: Actor
    target_actor: Actor
    critic: QNetwork  # ensemble of two
    target_critic: QNetwork  # ensemble of two
    actor_opt_state: optax.OptState
    critic_opt_state: optax.OptState
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


def model_of(ts: TrainState):
    """What --save-model writes, load_policy reads and evaluation runs (with --optimizer splus, the
    actor and critic as SPlus evaluates them: its running average of their parameters)."""
    actor, critic = evaluated(ts.actor, ts.actor_opt_state), evaluated(ts.critic, ts.critic_opt_state)
    return actor, ts.target_actor, critic, ts.target_critic


# ======================================================================= UPDATE
# >>> shared: make_optimizer | crl_infonce crl_dpo sac_her td3_her
def make_optimizer(args: Args, adam_lr: float) -> optax.GradientTransformation:
    """--optimizer: Adam at `adam_lr`, or SPlus with the --splus-* flags, its matrices the
    networks' Linear weights."""
    if args.optimizer == "adam":
        return optax.adam(adam_lr)
    hyper = dict(b1=args.splus_b1, b2=args.splus_b2, inverse_every=args.splus_inverse_every)
    hyper.update(weight_decay=args.splus_weight_decay, ema_rate=args.splus_ema_rate)
    return splus(args.splus_lr, matrices=linear_weights, **hyper)


# <<< shared: make_optimizer


def make_update(args: Args, env):
    """init(key) -> a fresh TrainState, and update(ts, batch, key) -> (ts, metrics): one
    gradient step."""
    actor_opt, critic_opt = make_optimizer(args, args.actor_lr), make_optimizer(args, args.critic_lr)

    def init(key):
        actor_key, critic_key = jax.random.split(key)
        actor = Actor(env.observation_size, env.action_size, args, actor_key)
        critic = make_critic(env.observation_size, env.action_size, args, critic_key)
        actor_opt_state = actor_opt.init(eqx.filter(actor, eqx.is_inexact_array))
        critic_opt_state = critic_opt.init(eqx.filter(critic, eqx.is_inexact_array))
        zero = jnp.zeros((), jnp.int32)
        return TrainState(actor, actor, critic, critic, actor_opt_state, critic_opt_state, zero)

    def update(ts: TrainState, batch, key):
        """One critic step; every `policy_frequency` steps also an actor step and both targets."""
        next_action = target_action(ts.target_actor, batch.next_obs, key, args)
        next_q = q_values(ts.target_critic, batch.next_obs, next_action)
        target = critic_target(batch.reward, batch.terminated, next_q, args.gamma)
        (_, critic_metrics), critic_grads = eqx.filter_value_and_grad(critic_loss_fn, has_aux=True)(
            ts.critic, batch.obs, batch.action, jax.lax.stop_gradient(target)
        )
        updates, critic_opt_state = critic_opt.update(
            critic_grads, ts.critic_opt_state, eqx.filter(ts.critic, eqx.is_inexact_array)
        )
        critic = eqx.apply_updates(ts.critic, updates)

        def delayed(_):
            actor_loss, actor_grads = eqx.filter_value_and_grad(actor_loss_fn)(ts.actor, critic, batch.obs)
            updates, actor_opt_state = actor_opt.update(
                actor_grads, ts.actor_opt_state, eqx.filter(ts.actor, eqx.is_inexact_array)
            )
            actor = eqx.apply_updates(ts.actor, updates)
            targets = (soft_update(actor, ts.target_actor, args.tau), soft_update(critic, ts.target_critic, args.tau))
            return actor, actor_opt_state, targets, actor_loss, jnp.ones(())

        def not_yet(_):
            return ts.actor, ts.actor_opt_state, (ts.target_actor, ts.target_critic), jnp.zeros(()), jnp.zeros(())

        actor, actor_opt_state, (target_actor, target_critic), actor_loss, actor_updated = jax.lax.cond(
            ts.grad_steps % args.policy_frequency == 0, delayed, not_yet, None
        )
        # every entry is logged as losses/<name> (actor_updated is folded into actor_loss by
        # `summarise`): a new metric needs no other edit
        metrics = {**critic_metrics, "actor_loss": actor_loss, "actor_updated": actor_updated}
        nets = (actor, target_actor, critic, target_critic)
        return TrainState(*nets, actor_opt_state, critic_opt_state, ts.grad_steps + 1), metrics

    return init, update


# ======================================================================= TRAINING STEP
def summarise(metrics):
    """The update's metrics over a training step's gradient steps: each one's mean, but
    actor_loss's over the steps that updated the actor (every policy_frequency-th)."""
    updated = metrics["actor_updated"]
    means = jax.tree.map(jnp.mean, {name: v for name, v in metrics.items() if name != "actor_updated"})
    return {**means, "actor_loss": jnp.sum(metrics["actor_loss"]) / jnp.maximum(jnp.sum(updated), 1.0)}


def make_train(args: Args, env, schedule, spread=lambda batch: batch):
    """(init, training_step, vec_env, buffer) as algorithms/run/contract.py says: this file's
    buffer, its batches relabelled by HER, and its update, stepped by the shared
    `make_training_step` below; `spread` places a batch on the devices."""
    buffer = TrajectoryBuffer(
        capacity=schedule.buffer_rows,
        num_envs=args.num_envs,
        unroll_length=args.unroll_length,
        episode_length=schedule.episode_length,
        goal_indices=env.goal_indices,
        state_dim=env.state_dim,
        gamma=args.relabel_gamma,
    )

    def sample(buffer_state, key):
        return buffer.sample_her(
            buffer_state,
            key,
            args.batch_size,
            args.relabel_ratio,
            env.goal_reach_thresh,
            success_fn=jax.vmap(env.success),  # the env's own test (composite for arm_grasp)
        )

    return make_training_step(args, env, schedule, spread, buffer, sample, *make_update(args, env), summarise=summarise)


# >>> shared: training step | crl_infonce crl_dpo sac_her td3_her
def make_rollout(vec_env: envs.VecEnv, unroll_length: int):
    def rollout(actor: Actor, env_state, key):
        """`unroll_length` steps of every env with exploration actions (`actor.explore`): the
        transitions (time-major) and the (sum, count) of the returns of the episodes that ended."""

        def step(env_state, k):
            action = jax.vmap(actor.explore)(env_state.obs, jax.random.split(k, vec_env.num_envs))
            nxt = vec_env.step(env_state, action)
            transition = Transition(
                obs=env_state.obs,
                action=action,
                next_obs=nxt.info["next_obs"],
                terminated=nxt.done,
                truncated=nxt.info["truncation"],
                episode_id=env_state.info["episode_id"],
            )
            return nxt, (transition, vec_env.ended_returns(env_state, nxt))

        keys = jax.random.split(key, unroll_length)
        env_state, (transitions, (return_sums, episodes)) = jax.lax.scan(step, env_state, keys)
        return env_state, transitions, (return_sums.sum(), episodes.sum())

    return rollout


def mean_over_steps(metrics):
    """The update's metrics over a training step's gradient steps: each one's mean."""
    return jax.tree.map(jnp.mean, metrics)


def make_training_step(
    args: Args, env, schedule, spread, buffer, sample, init_train_state, update, summarise=mean_over_steps
):
    """make_train's result from this file's parts: init(key) -> run.Carry (train state, env
    states, buffer state, key); training_step(carry) -> run.Step (the next carry, the update's
    metrics as `summarise` reduces them over the gradient steps, whether it learned, and the
    (sum, count) of the finished episodes' returns); the VecEnv; the buffer.
    `sample(buffer_state, key)` draws a gradient step's batch."""
    vec_env = envs.VecEnv(env, args.num_envs, args.fixed_goals)
    rollout = make_rollout(vec_env, args.unroll_length)

    def init(key):
        ts_key, env_key, key = jax.random.split(key, 3)
        example = Transition.example(env.observation_size, env.action_size)
        return run.Carry(init_train_state(ts_key), vec_env.reset(env_key), buffer.init(example), key)

    def training_step(carry):
        ts, env_state, buffer_state, key = carry
        key, rollout_key, update_key = jax.random.split(key, 3)
        env_state, transitions, finished = rollout(ts.actor, env_state, rollout_key)
        buffer_state = buffer.insert(buffer_state, transitions)

        def gradient_steps(ts):
            def draw(k):  # a gradient step's batch and key
                sample_key, step_key = jax.random.split(k)
                return sample(buffer_state, sample_key), step_key

            def one(ts, xs):  # xs: a key, or with --presample its batch and key, drawn already
                batch, step_key = xs if args.presample else draw(xs)
                return update(ts, spread(batch), step_key)

            xs = jax.random.split(update_key, schedule.updates_per_rollout)  # a key per gradient step
            if args.presample:  # all batches at once, each split over the devices as `one` splits it
                batches, step_keys = jax.vmap(draw)(xs)
                xs = (jax.vmap(spread)(batches), step_keys)
            ts, metrics = jax.lax.scan(one, ts, xs)
            return ts, summarise(metrics)

        def no_steps(ts):  # before learning starts: zeros shaped like the update's metrics
            metrics = jax.eval_shape(gradient_steps, ts)[1]
            return ts, jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), metrics)

        learn = jnp.logical_and(buffer_state.size >= schedule.learning_start_rows, schedule.updates_per_rollout > 0)
        ts, metrics = jax.lax.cond(learn, gradient_steps, no_steps, ts)
        return run.Step(run.Carry(ts, env_state, buffer_state, key), metrics, learn, finished)

    return init, training_step, vec_env, buffer


def make_chunk(training_step):
    """The loop over training steps: chunk(carry, num_steps) -> (carry, run.ChunkStats) runs
    `num_steps` training steps (rollout, buffer insert, the gated gradient steps) in one compiled
    loop (a traced count: one compile serves every chunk length), summing what the logs need.
    The harness calls it between evaluations and checkpoints, with Python only in between."""

    def chunk(carry, num_steps):
        stats = run.ChunkStats.zeros(jax.eval_shape(training_step, carry).metrics)

        def body(_, loop):
            carry, stats = loop
            step = training_step(carry)
            return step.carry, stats.add(step)

        return jax.lax.fori_loop(0, num_steps, body, (carry, stats))

    return chunk


# <<< shared: training step


# ======================================================================= EVALUATION
# >>> shared: evaluation and the run | crl_infonce crl_dpo sac_her td3_her
def make_evaluate(args: Args, env):
    eval_env = envs.VecEnv(env, args.num_eval_envs)

    task_episodes = args.eval_task_episodes if args.eval_tasks else 0

    def evaluate(actor: Actor, key):
        """One episode per eval env with deterministic actions and one with sampled actions, from
        the same fresh starts and goals, and as many of each named task (--eval-tasks):
        (metrics, env 0's deterministic episode)."""

        def sampled(obs, k):
            return jax.vmap(actor.explore)(obs, jax.random.split(k, obs.shape[0]))

        return eval_env.evaluate(jax.vmap(actor.deterministic), key, sampled, task_episodes)

    return evaluate


# ======================================================================= RUN
# The run harness (algorithms/run/main.py) takes the algorithm as this description.
ALGORITHM = run.Algorithm(
    name=os.path.basename(__file__)[: -len(".py")],
    Args=Args,
    make_train=make_train,
    make_chunk=make_chunk,
    make_evaluate=make_evaluate,
    model_of=model_of,
)


def main(args: Args) -> list[str]:
    """Train (or with --eval-only evaluate); returns the run directories."""
    return run.main(ALGORITHM, args)


def load_policy(path: str):
    """A model saved with --save-model as (act, env): act(state, goal) -> action, the deterministic
    policy, and the env it was trained on (algorithms/run/models.py)."""
    return run.load_policy(ALGORITHM, path)


if __name__ == "__main__":
    run.cli(ALGORITHM)
# <<< shared: evaluation and the run
