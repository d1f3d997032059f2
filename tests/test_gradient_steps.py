"""The ways of running gradient steps that keep results: the contrastive files' one gradient of
actor loss + critic loss, and `--presample` (a training step's batches drawn in one call).
`--scan-unroll`'s equality is tested in test_deep_networks.py; what each costs is measured by
results/notes/step_latency.py."""

import equinox as eqx
import jax
import numpy as np
import pytest
from conftest import ALGORITHMS, load_algorithm, tiny

from algorithms import run


@pytest.mark.parametrize("name", ["crl_infonce", "crl_dpo"])
def test_the_joint_gradient_gives_each_network_its_own_losss_gradient(name):
    """`loss_fn`'s one gradient against two, as JaxGCRL takes them: the actor's loss with the
    critic held fixed, and the critic's loss, each computing its own psi(g)."""
    module = load_algorithm(name)
    args = module.Args(**tiny(name, width=8, depth=8, residual=True, layer_norm=True, scan_unroll=1))
    state_dim, action_dim, goal_dim = 4, 2, 2
    actor = module.Actor(state_dim + goal_dim, action_dim, args, jax.random.PRNGKey(0))
    critic = module.Critic(state_dim, action_dim, goal_dim, args, jax.random.PRNGKey(1))
    keys = jax.random.split(jax.random.PRNGKey(2), 4)
    state = jax.random.normal(keys[0], (16, state_dim))
    action = jax.random.uniform(keys[1], (16, action_dim), minval=-1, maxval=1)
    goal = jax.random.normal(keys[2], (16, goal_dim))
    alpha = 0.3

    @eqx.filter_jit
    def gradients(actor, critic):
        (_, losses), joint = eqx.filter_value_and_grad(module.loss_fn, has_aux=True)(
            (actor, critic), alpha, state, action, goal, keys[3], args
        )

        def actor_only(actor):
            psi = jax.vmap(critic.psi)(goal)
            return module.actor_loss_fn(actor, critic, alpha, state, goal, psi, keys[3], args)

        def critic_only(critic):
            return module.critic_loss_fn(critic, state, action, jax.vmap(critic.psi)(goal), args)

        (actor_loss, _), actor_grads = eqx.filter_value_and_grad(actor_only, has_aux=True)(actor)
        (critic_loss, _), critic_grads = eqx.filter_value_and_grad(critic_only, has_aux=True)(critic)
        return joint, (actor_grads, critic_grads), losses, (actor_loss, critic_loss)

    joint, separate, losses, separate_losses = gradients(actor, critic)
    np.testing.assert_allclose(losses[0], separate_losses[0], rtol=1e-6)  # the actor's loss
    np.testing.assert_allclose(losses[2], separate_losses[1], rtol=1e-6)  # the critic's
    joint_leaves, separate_leaves = jax.tree.leaves(joint), jax.tree.leaves(separate)
    assert len(joint_leaves) == len(separate_leaves) > 0
    for a, b in zip(joint_leaves, separate_leaves):
        assert np.abs(np.asarray(b)).max() > 0  # every parameter has a gradient to compare
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", ALGORITHMS)
def test_presampled_batches_give_the_same_training_steps(name):
    """Two training steps, each with gradient steps, with `--presample` and without, from one start."""
    module = load_algorithm(name)
    parameters = []
    for presample in (False, True):
        args = module.Args(**tiny(name, presample=presample))
        env = run.make_env(args)
        init, training_step, _, _ = module.make_train(args, env, run.make_schedule(args, env))
        training_step = jax.jit(training_step)
        carry, learned = init(jax.random.PRNGKey(0)), []
        for _ in range(2):
            step = training_step(carry)
            carry = step.carry
            learned.append(int(step.learned))
        assert learned == [1, 1]
        model = eqx.filter(module.model_of(carry.train_state), eqx.is_inexact_array)
        parameters.append(jax.tree.leaves(model))
    for a, b in zip(*parameters):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
