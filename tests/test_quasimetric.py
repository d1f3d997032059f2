"""The quasimetric energies of the contrastive files (--energy-fn mrn, iqe): against NumPy written
from their definitions, the quasimetric checks (each shown to catch a broken energy), the pairwise
form against the paired form, finite gradients where x = y, and a tiny training run in each file."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_algorithm, tiny

from algorithms import energies, run

crl = load_algorithm("crl_infonce")
dpo = load_algorithm("crl_dpo")

DIM = 16  # four MRN parts of 2 + 2 coordinates; four IQE components of 4 coordinates
PARTS, IQE_DIM, MIX = 4, 4, 0.3


def points(n: int, seed: int) -> jnp.ndarray:
    return jnp.asarray(np.random.default_rng(seed).normal(size=(n, DIM)), jnp.float32)


# ------------------------------------------------------------------ NumPy from the definitions
def np_mrn(x, y, parts):
    """Per part: max over its first half of max(x_i - y_i, 0), plus sqrt(sum of squares of its second
    half's differences + 1e-6); the mean over parts."""
    total = 0.0
    for xp, yp in zip(np.split(x, parts), np.split(y, parts)):
        half = len(xp) // 2
        total += np.max(np.maximum(xp[:half] - yp[:half], 0.0)) + np.sqrt(np.sum((xp[half:] - yp[half:]) ** 2) + 1e-6)
    return total / parts


def np_union_length(starts, ends):
    """Merge the non-empty intervals [s, e] sorted by start, and add up the merged lengths."""
    intervals = sorted((s, e) for s, e in zip(starts, ends) if e > s)
    total, current = 0.0, None
    for s, e in intervals:
        if current is None or s > current[1]:
            total += 0.0 if current is None else current[1] - current[0]
            current = [s, e]
        else:
            current[1] = max(current[1], e)
    return total + (0.0 if current is None else current[1] - current[0])


def np_iqe(x, y, dim, mix):
    """Per component of `dim` coordinates: the length of the union of [x_i, y_i] over x_i < y_i;
    mix * mean + (1 - mix) * max over components."""
    lengths = [np_union_length(xc, yc) for xc, yc in zip(np.split(x, len(x) // dim), np.split(y, len(y) // dim))]
    return mix * np.mean(lengths) + (1.0 - mix) * np.max(lengths)


def pairs(distance, x, y):
    return np.array([[distance(a, b) for b in np.asarray(y, np.float64)] for a in np.asarray(x, np.float64)])


def test_mrn_and_iqe_match_their_definitions():
    x, y = points(9, 0), points(7, 1)
    y = y.at[3].set(x[3])  # one pair at distance 0
    x = x.at[5, :4].set(y[5, :4] + 0.1)  # overlapping intervals in one IQE component
    mrn = pairs(lambda a, b: np_mrn(a, b, PARTS), x, y)
    iqe = pairs(lambda a, b: np_iqe(a, b, IQE_DIM, MIX), x, y)
    # the pairwise MRN's symmetric half goes through ||x||^2 + ||y||^2 - 2 x.y, which rounds
    np.testing.assert_allclose(energies.mrn_distance(x, y, PARTS, pairwise=True), mrn, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(energies.iqe_distance(x, y, IQE_DIM, MIX, pairwise=True), iqe, rtol=1e-5, atol=1e-5)
    # as logits: -d / sqrt(repr_dim), the scale of TMD's reference; IQE's mix from its learned logit
    logit = np.log(MIX / (1.0 - MIX))
    for module in (crl, dpo):
        mrn_energy = module.Energy("mrn", mrn_components=PARTS)
        iqe_energy = module.Energy("iqe", iqe_dim=IQE_DIM, iqe_mix_logit=jnp.asarray(logit, jnp.float32))
        np.testing.assert_allclose(mrn_energy.pairwise(x, y), -mrn / 4.0, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(iqe_energy.pairwise(x, y), -iqe / 4.0, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(iqe_energy.paired(x[:7], y), -np.diag(iqe[:7]) / 4.0, rtol=1e-5, atol=1e-5)


def test_union_length_of_hand_made_intervals():
    starts = [jnp.array(v) for v in (0.0, 0.5, 2.0, 3.0, 3.5)]  # sorted by start
    ends = [jnp.array(v) for v in (1.0, 0.7, 2.5, 2.0, 5.0)]  # [3, 2] is empty
    # [0, 1] (holding [0.5, 0.7]), [2, 2.5], [3.5, 5]: 1 + 0.5 + 1.5
    assert float(energies.union_length(starts, ends)) == pytest.approx(3.0)


# ------------------------------------------------------------------ the quasimetric checks
def zero_on_the_diagonal(pairwise, paired):
    x = points(32, 2)
    # MRN's symmetric half is sqrt(||.||^2 + 1e-6), as in the reference: 1e-3 at x = y (and a little
    # more in the pairwise form, whose squared distance rounds)
    assert np.all(np.abs(np.diag(pairwise(x, x))) <= 2e-3)


def never_negative(pairwise, paired):
    assert np.all(np.asarray(pairwise(points(32, 3), points(24, 4))) >= 0.0)


def triangle_inequality(pairwise, paired):
    # points near a line make d(x, y) + d(y, z) nearly tight, where a broken energy shows
    t = np.random.default_rng(5).uniform(size=(48, 1))
    x = jnp.asarray(t * np.ones(DIM) + 0.05 * np.random.default_rng(6).normal(size=(48, DIM)), jnp.float32)
    d = np.asarray(pairwise(x, x), np.float64)
    slack = d[:, :, None] + d[None, :, :] - d[:, None, :]  # d(i, j) + d(j, k) - d(i, k), [i, j, k]
    assert slack.min() >= -1e-5, slack.min()


def not_symmetric(pairwise, paired):
    d = np.asarray(pairwise(points(16, 7), points(16, 7)))
    assert np.abs(d - d.T).max() > 0.1


def pairwise_equals_paired(pairwise, paired):
    x, y = points(12, 8), points(10, 9)
    every_pair = paired(jnp.repeat(x, 10, axis=0), jnp.tile(y, (12, 1))).reshape(12, 10)
    np.testing.assert_allclose(pairwise(x, y), every_pair, rtol=1e-5, atol=1e-4)


def finite_gradients_at_x_equals_y(pairwise, paired):
    x = points(8, 10)
    for distance in (paired, pairwise):
        gradients = jax.grad(lambda a, b, d=distance: jnp.sum(d(a, b)), argnums=(0, 1))(x, x)
        assert all(np.isfinite(np.asarray(g)).all() for g in gradients)


CHECKS = [
    zero_on_the_diagonal,
    never_negative,
    triangle_inequality,
    not_symmetric,
    pairwise_equals_paired,
    finite_gradients_at_x_equals_y,
]
ENERGIES = {
    "mrn": (
        lambda x, y: energies.mrn_distance(x, y, PARTS, pairwise=True),
        lambda x, y: energies.mrn_distance(x, y, PARTS, pairwise=False),
    ),
    "iqe": (
        lambda x, y: energies.iqe_distance(x, y, IQE_DIM, MIX, pairwise=True),
        lambda x, y: energies.iqe_distance(x, y, IQE_DIM, MIX, pairwise=False),
    ),
}


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
@pytest.mark.parametrize("kind", ENERGIES)
def test_the_energies_are_quasimetrics(kind, check):
    check(*ENERGIES[kind])


def broken_mrn(relu=True, root=True, eps=1e-6, one_sided=True, swap=False):
    """mrn_distance's paired form written out, with one of its parts done wrong."""

    def paired(x, y):
        x, y = x.reshape(*x.shape[:-1], PARTS, -1), y.reshape(*y.shape[:-1], PARTS, -1)
        diff = x - y
        asymmetric = jnp.max(diff[..., :2] if one_sided else jnp.abs(diff[..., :2]), axis=-1)
        asymmetric = jax.nn.relu(asymmetric) if relu else asymmetric
        squares = jnp.sum(diff[..., 2:] ** 2, axis=-1) + eps
        return jnp.mean(asymmetric + (jnp.sqrt(squares) if root else squares), axis=-1)

    def pairwise(x, y):
        if swap:
            return paired(y[None, :, :], x[:, None, :])  # [i, j] = d(y_j, x_i)
        return paired(x[:, None, :], y[None, :, :])

    return pairwise, paired


def signed_lengths():
    """IQE with each interval's signed length y_i - x_i in place of the union of [x_i, y_i] over
    x_i < y_i."""

    def paired(x, y):
        signed = y - x
        return jnp.mean(jnp.sum(signed.reshape(*signed.shape[:-1], -1, IQE_DIM), axis=-1), axis=-1)

    return lambda x, y: paired(x[:, None, :], y[None, :, :]), paired


BROKEN = [
    (zero_on_the_diagonal, broken_mrn(eps=1.0)),  # sqrt(0 + 1) = 1 at x = y
    (never_negative, signed_lengths()),  # lengths below zero where y_i < x_i
    (triangle_inequality, broken_mrn(root=False)),  # a squared distance is no metric
    (not_symmetric, broken_mrn(one_sided=False)),  # max |x_i - y_i|: a metric, symmetric
    (pairwise_equals_paired, broken_mrn(swap=True)),  # d(psi_j, phi_i): the arguments swapped
    (finite_gradients_at_x_equals_y, broken_mrn(eps=0.0)),  # sqrt's gradient at 0
]


def test_each_check_catches_a_broken_energy():
    """The unbroken form passes every check; each broken one fails its check."""
    for check in CHECKS:
        check(*broken_mrn())
    assert [check for check, _ in BROKEN] == CHECKS
    for check, energy in BROKEN:
        with pytest.raises(AssertionError):
            check(*energy)


# ------------------------------------------------------------------ training
@pytest.mark.parametrize("name, energy", [("crl_infonce", "mrn"), ("crl_dpo", "iqe")])
def test_a_tiny_training_run_with_each_quasimetric_gives_finite_losses(name, energy):
    """Three training steps of the file's compiled training step on reacher: finite losses, the
    critic trains, and IQE's mix (a parameter of the critic) moves with it. One file per energy:
    the critics' code is one shared `Energy` (algorithms/energies.py), and the fork's resumed
    runs (test_research_runs.py) train crl_infonce's critic with IQE."""
    module = load_algorithm(name)
    shape = dict(mrn_components=2) if energy == "mrn" else dict(iqe_dim=4)
    args = module.Args(**tiny(name, energy_fn=energy, **shape))
    env = run.make_env(args)
    init, training_step, _, _ = module.make_train(args, env, run.make_schedule(args, env))
    training_step = jax.jit(training_step)
    carry = start = init(jax.random.PRNGKey(0))
    for _ in range(3):
        step = training_step(carry)
        carry = step.carry
        assert int(step.learned) == 1
        for loss in ("critic_loss", "actor_loss"):
            assert np.isfinite(np.asarray(step.metrics[loss])).all(), (energy, loss)
    before, after = (eqx.filter(ts.critic, eqx.is_inexact_array) for ts in (start.train_state, carry.train_state))
    assert any(
        np.abs(np.asarray(a) - np.asarray(b)).max() > 0 for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after))
    )
    if energy == "iqe":
        assert float(start.train_state.critic.energy.iqe_mix_logit) == 0.0
        assert float(carry.train_state.critic.energy.iqe_mix_logit) != 0.0
    else:
        assert carry.train_state.critic.energy.iqe_mix_logit is None
