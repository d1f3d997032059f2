"""SPlus, a whitening optimiser, as an optax `GradientTransformation` for any algorithm file.

Frans et al., "A Stable Whitening Optimizer for Efficient Neural Network Training" (2025); the
facts below are the paper's and its reference implementation's (github.com/kvfrans/splus,
`optax/splus.py`), written here for stacked parameters.

For each weight matrix G (its gradient) SPlus keeps running averages of G G^T and G^T G (rate
`b2`) and, every `inverse_every` steps and at the first, their eigenbases Q_L and Q_R. A step is

    M = b1 M + (1 - b1) G                      (momentum)
    U = Q_L sign(Q_L^T M Q_R) Q_R^T            (its sign, taken in the eigenbases)
    p = p - lr * scale * (U + weight_decay p)  scale = 1 / (2 (m + n)) for an m x n matrix

and for every other leaf (biases, LayerNorm, scalars) the plain sign of the momentum with scale
`nonstandard_constant`. `averaged_params(state, params)` is the iterate average, the bias-corrected running
average of the parameters (rate `ema_rate`), which the reference evaluates in place of the
parameters.

**Stacked matrices.** The networks' hidden layers are stacked: a leaf of shape (blocks, layers,
out, in) holds blocks x layers matrices. SPlus treats every leaf marked in `matrices` as a stack
of matrices over its last two axes and preconditions each on its own (batched matmuls and a
batched eigendecomposition), where the reference would send every leaf that is not 2-D to the
plain sign. `algorithms.networks.linear_weights(model)` marks the `Linear` weights of a model.

**Refresh under vmap.** The refresh runs under `lax.cond`, so the steps between refreshes pay
nothing for it. Under `jax.vmap` (`--num-seeds`) a `lax.cond` on a batched predicate would
become a select that computes both branches, an eigendecomposition at every step. The refresh is
a `custom_vmap` function whose batching rule refreshes the whole batch under one `lax.cond` on
"any member due", then keeps the old bases of the members not due: one cond at any depth of
vmaps, and exact even if the members' step counts differed.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax


class SPlusState(NamedTuple):
    count: jax.Array  # steps taken
    momentum: Any  # running average of the gradients (b1)
    left: Any  # per matrix leaf: running average of G G^T, (..., m, m); None for the other leaves
    right: Any  # per matrix leaf: running average of G^T G, (..., n, n); None for the other leaves
    left_basis: Any  # eigenvectors of `left` at the last refresh (identity at the start)
    right_basis: Any  # eigenvectors of `right` at the last refresh
    average: Any  # running average of the parameters (ema_rate), not bias-corrected
    ema_rate: jax.Array  # its rate
    refreshes: jax.Array  # eigenbasis refreshes so far


def _transpose(x):
    return jnp.swapaxes(x, -1, -2)


def _eigenbases(sides, eps):
    """Eigenvectors of each (stack of) symmetric matrices, over the last two axes."""

    def basis(s):
        if s is None:
            return None
        return jnp.linalg.eigh(s + eps * jnp.eye(s.shape[-1], dtype=s.dtype))[1]

    return jax.tree.map(basis, sides, is_leaf=lambda x: x is None)


def _make_refresh(eps: float):
    @jax.custom_batching.custom_vmap
    def refresh_when(due, sides, bases):
        """New eigenbases of `sides` when `due`, else `bases`, under one lax.cond."""
        return jax.lax.cond(due, lambda: _eigenbases(sides, eps), lambda: bases)

    @refresh_when.def_vmap
    def batched(axis_size, in_batched, due, sides, bases):
        due_batched, sides_batched, bases_batched = in_batched

        def with_axis(tree, flags):
            return jax.tree.map(lambda x, b: x if b else jnp.broadcast_to(x, (axis_size, *x.shape)), tree, flags)

        sides, bases = with_axis(sides, sides_batched), with_axis(bases, bases_batched)
        due = due if due_batched else jnp.broadcast_to(due, (axis_size,))
        fresh = refresh_when(jnp.any(due), sides, bases)  # one cond for the batch (recursively under outer vmaps)

        def keep_old_unless_due(new, old):
            return jnp.where(due.reshape((axis_size,) + (1,) * (old.ndim - 1)), new, old)

        out = jax.tree.map(keep_old_unless_due, fresh, bases)
        return out, jax.tree.map(lambda _: True, out)

    return refresh_when


def splus(
    learning_rate: float,
    b1: float = 0.9,
    b2: float = 0.999,
    ema_rate: float = 0.999,
    eps: float = 1e-30,
    inverse_every: int = 100,
    nonstandard_constant: float = 1e-3,
    weight_decay: float = 1e-2,
    max_dim: int = 10000,
    matrices: Any = None,
) -> optax.GradientTransformation:
    """SPlus with the reference's defaults. `matrices`: a pytree of bools like the parameters
    (or a function of the parameters that returns one) marking the leaves that are stacks of
    weight matrices over their last two axes; default: the 2-D leaves. A side longer than
    `max_dim` keeps the identity basis (the reference's limit)."""
    refresh_when = _make_refresh(eps)

    def marks(params):
        if matrices is None:
            return jax.tree.map(lambda p: p.ndim == 2, params)
        return matrices(params) if callable(matrices) else matrices

    def sides_like(params, side, make):
        def one(p, is_matrix):
            if not is_matrix:
                return None
            d = p.shape[-2] if side == "left" else p.shape[-1]
            return make(p, d) if d < max_dim else None

        return jax.tree.map(one, params, marks(params))

    def init(params):
        zeros = lambda p, d: jnp.zeros((*p.shape[:-2], d, d), p.dtype)  # noqa: E731
        eye = lambda p, d: jnp.broadcast_to(jnp.eye(d, dtype=p.dtype), (*p.shape[:-2], d, d))  # noqa: E731
        return SPlusState(
            count=jnp.zeros((), jnp.int32),
            momentum=jax.tree.map(jnp.zeros_like, params),
            left=sides_like(params, "left", zeros),
            right=sides_like(params, "right", zeros),
            left_basis=sides_like(params, "left", eye),
            right_basis=sides_like(params, "right", eye),
            average=jax.tree.map(jnp.zeros_like, params),
            ema_rate=jnp.asarray(ema_rate, jnp.float32),
            refreshes=jnp.zeros((), jnp.int32),
        )

    def update(grads, state: SPlusState, params=None):
        if params is None:
            raise ValueError("splus needs the parameters (weight decay and the iterate average)")
        count = state.count + 1
        momentum = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state.momentum, grads)
        is_none = lambda x: x is None  # noqa: E731

        def direction(m, ql, qr):
            """sign(M) in the eigenbases of the matrix's sides (a side without one: as is)."""
            if ql is not None:
                m = _transpose(ql) @ m
            if qr is not None:
                m = m @ qr
            u = jnp.sign(m)
            if qr is not None:
                u = u @ _transpose(qr)
            if ql is not None:
                u = ql @ u
            return u

        # momentum's leaves lead: a leaf without bases gets None for them
        directions = jax.tree.map(direction, momentum, state.left_basis, state.right_basis)

        def side(s, g, which):
            if s is None:
                return None
            outer = g @ _transpose(g) if which == "left" else _transpose(g) @ g
            return b2 * s + (1 - b2) * outer

        left = jax.tree.map(lambda s, g: side(s, g, "left"), state.left, grads, is_leaf=is_none)
        right = jax.tree.map(lambda s, g: side(s, g, "right"), state.right, grads, is_leaf=is_none)
        due = jnp.logical_or(count % inverse_every == 0, count == 1)
        left_basis, right_basis = refresh_when(due, (left, right), (state.left_basis, state.right_basis))

        def step(u, p, is_matrix):
            scale = 1.0 / (2.0 * (p.shape[-1] + p.shape[-2])) if is_matrix else nonstandard_constant
            return -learning_rate * scale * (u + weight_decay * p)

        updates = jax.tree.map(step, directions, params, marks(params))
        average = jax.tree.map(lambda a, p: ema_rate * a + (1 - ema_rate) * p, state.average, params)
        refreshes = state.refreshes + due.astype(jnp.int32)
        new_state = SPlusState(
            count, momentum, left, right, left_basis, right_basis, average, state.ema_rate, refreshes
        )
        return updates, new_state

    return optax.GradientTransformation(init, update)


def averaged_params(state: SPlusState, params: Any) -> Any:
    """The iterate average, the parameters SPlus evaluates with: the running average of the
    parameters divided by 1 - ema_rate^count (before the first step, `params` themselves)."""
    count, rate = state.count.astype(jnp.float32), state.ema_rate

    def average(a, p):
        lead = (1,) * (a.ndim - count.ndim)  # a seed axis, if any, leads the state and every leaf
        n, r = count.reshape(count.shape + lead), rate.reshape(rate.shape + lead)
        return jnp.where(n > 0, a / jnp.maximum(1.0 - r**n, 1e-12), p)

    return jax.tree.map(average, state.average, params)


def evaluated(module: Any, opt_state: Any) -> Any:
    """`module` as SPlus evaluates it, with the iterate average in place of its parameters,
    when `opt_state` is SPlus's (optimised with `eqx.filter(module, eqx.is_inexact_array)`);
    `module` itself for any other optimiser's state. Leading axes shared by the state's count
    and every parameter (a seed axis) are kept."""
    if not isinstance(opt_state, SPlusState):
        return module
    return eqx.combine(averaged_params(opt_state, eqx.filter(module, eqx.is_inexact_array)), module)
