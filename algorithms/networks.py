"""The hidden layers every algorithm file builds its networks from: `Dense` (Linear, optional
LayerNorm, swish) and `MLP` (an input layer, hidden layers stacked in scanned blocks, a linear
output). Generic, like equinox's own `eqx.nn.MLP`: each algorithm file says which networks it
builds from them (`Critic`, `Actor`), with which inputs, sizes and flags."""

from __future__ import annotations

import equinox as eqx
import jax

# --scan-unroll's default per platform (jax.default_backend()), from results/notes/step_latency.py:
# on CPU, a block's layers written out (1) took 0.74-0.82 of the looped gradient step's time
# at depth 4 and 0.89-0.93 at depth 64, compile time still flat in depth; the GPU's 4 is
# a prediction (results/notes/step_latency.md) until its H200 figures. Other platforms loop (0).
SCAN_UNROLL = {"cpu": 1, "gpu": 4}


def scan_unroll(flag: int | None) -> int:
    """--scan-unroll (an algorithm's residual stack), or its default for the platform this
    process computes on."""
    return flag if flag is not None else SCAN_UNROLL.get(jax.default_backend(), 0)


class Dense(eqx.Module):
    """One hidden layer: Linear, optional LayerNorm, swish."""

    linear: eqx.nn.Linear
    norm: eqx.nn.LayerNorm | None

    def __init__(self, in_size, out_size, layer_norm, key):
        self.linear = eqx.nn.Linear(in_size, out_size, key=key)
        self.norm = eqx.nn.LayerNorm(out_size) if layer_norm else None

    def __call__(self, x):
        h = self.linear(x)
        return jax.nn.swish(self.norm(h) if self.norm is not None else h)


class MLP(eqx.Module):
    """An input layer, the hidden layers stacked in blocks, and a linear output layer.

    Plain (default): `depth` layers in all, the `depth - 1` after the input layer in blocks of
    one. Residual (--residual, for deep networks): the input layer, then depth / 4 blocks of
    four layers with the skip around each block, x + block(x). The blocks are one module whose
    leaves carry two leading axes (block, layer in block), applied by `jax.lax.scan`, so the
    compiled program does not grow with depth.

    `unroll` (--scan-unroll): 0 loops over the blocks and, inside, over a block's layers; k >= 1
    writes each block's layers out and runs k blocks per iteration of the loop over blocks. Same
    layers, same order: results equal up to float rounding (XLA fuses differently). On a GPU the
    host launches every loop iteration (an estimated 15-25 us each), which at depth 64 would be
    most of a gradient step (results/notes/step_latency.md)."""

    first: Dense
    blocks: Dense  # every leaf has leading axes (num_blocks, block_size)
    out: eqx.nn.Linear
    residual: bool = eqx.field(static=True)
    unroll: int = eqx.field(static=True)

    def __init__(self, in_size, out_size, width, depth, layer_norm, residual, key, unroll=0):
        block_size = 4 if residual else 1
        hidden = depth if residual else depth - 1
        keys = jax.random.split(key, hidden + 2)
        self.first = Dense(in_size, width, layer_norm, keys[0])
        block_keys = keys[1 : hidden + 1].reshape(hidden // block_size, block_size, *keys.shape[1:])
        make_block = eqx.filter_vmap(eqx.filter_vmap(lambda k: Dense(width, width, layer_norm, k)))
        self.blocks = make_block(block_keys)
        self.out = eqx.nn.Linear(width, out_size, key=keys[-1])
        self.residual = residual
        self.unroll = scan_unroll(unroll)  # None: the platform's default

    def __call__(self, x):
        params, static = eqx.partition(self.blocks, eqx.is_array)
        num_blocks, block_size = self.blocks.linear.weight.shape[:2]

        def layer(h, layer_params):
            return eqx.combine(layer_params, static)(h), None

        def block(x, block_params):
            h = jax.lax.scan(layer, x, block_params, unroll=block_size if self.unroll else 1)[0]
            return (x + h if self.residual else h), None

        blocks_per_iteration = min(max(self.unroll, 1), num_blocks)
        return self.out(jax.lax.scan(block, self.first(x), params, unroll=blocks_per_iteration)[0])


def linear_weights(model):
    """A pytree like `model` with True at the weight of every `eqx.nn.Linear` (a matrix, or a
    stack of them in the scanned blocks) and False at every other leaf: the leaves an optimiser
    that treats matrices as matrices (algorithms/splus.py) preconditions."""

    def is_linear(node):
        return isinstance(node, eqx.nn.Linear)

    def mark(node):
        if is_linear(node):
            return jax.tree.map(lambda leaf: leaf is node.weight, node)
        return jax.tree.map(lambda _: False, node)

    return jax.tree.map(mark, model, is_leaf=is_linear)
