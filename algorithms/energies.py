"""The contrastive critics' energies f(phi, psi), shared by crl_infonce.py and crl_dpo.py: the
critic's score of goal representation psi for state-action representation phi. Generic, like
`networks.py`: each file's critic holds an `Energy` chosen by its --energy-fn flag.
docs/algorithms.md lists them with their formulas and sources."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from algorithms.run import require


class Energy(eqx.Module):
    """The critic's score f(phi, psi) of goal representation psi for state-action
    representation phi. `pairwise` scores every pair of a batch, (B, B); `paired` scores
    matching rows only, (B,); the two agree up to float rounding.

    norm, l2, l1: minus a distance; dot: the inner product; cosine: per pair. mrn and iqe are
    quasimetrics d (d(x, x) = 0, d >= 0, the triangle inequality, not symmetric), scored as
    logits = -d(phi, psi) / sqrt(repr_dim), the scale of the reference implementation of TMD and
    CMD (github.com/vivekmyers/tmd-release). IQE's mix is a learned parameter of the critic: it
    trains, checkpoints and resumes with it. The other energies have no parameter (None).
    """

    kind: str = eqx.field(static=True)
    mrn_components: int = eqx.field(static=True, default=8)
    iqe_dim: int = eqx.field(static=True, default=8)
    iqe_mix_logit: jax.Array | None = None  # alpha = sigmoid(logit), 0.5 at the start

    def pairwise(self, phi, psi):
        """l_ij = f(phi_i, psi_j) for every pair of the batch, (B, B)."""
        if self.kind == "mrn":
            return -mrn_distance(phi, psi, self.mrn_components, pairwise=True) / jnp.sqrt(phi.shape[-1])
        if self.kind == "iqe":
            mix = jax.nn.sigmoid(self.iqe_mix_logit)
            return -iqe_distance(phi, psi, self.iqe_dim, mix, pairwise=True) / jnp.sqrt(phi.shape[-1])
        if self.kind == "l1":
            return -jnp.sum(jnp.abs(phi[:, None, :] - psi[None, :, :]), axis=-1)
        dot = phi @ psi.T
        if self.kind == "dot":
            return dot
        if self.kind == "cosine":  # normalised per pair (not by batch-wide norms)
            norms = jnp.linalg.norm(phi, axis=-1)[:, None] * jnp.linalg.norm(psi, axis=-1)[None, :]
            return dot / jnp.maximum(norms, 1e-8)
        sq_dist = jnp.maximum(jnp.sum(phi**2, -1)[:, None] + jnp.sum(psi**2, -1)[None, :] - 2.0 * dot, 0.0)
        if self.kind == "l2":
            return -sq_dist
        return -jnp.sqrt(sq_dist + 1e-6)  # "norm"

    def paired(self, phi, psi):
        """l_ii = f(phi_i, psi_i) for matching rows only, (B,)."""
        if self.kind == "mrn":
            return -mrn_distance(phi, psi, self.mrn_components, pairwise=False) / jnp.sqrt(phi.shape[-1])
        if self.kind == "iqe":
            mix = jax.nn.sigmoid(self.iqe_mix_logit)
            return -iqe_distance(phi, psi, self.iqe_dim, mix, pairwise=False) / jnp.sqrt(phi.shape[-1])
        diff = phi - psi
        if self.kind == "l1":
            return -jnp.sum(jnp.abs(diff), -1)
        if self.kind == "dot":
            return jnp.sum(phi * psi, -1)
        if self.kind == "cosine":
            norms = jnp.linalg.norm(phi, axis=-1) * jnp.linalg.norm(psi, axis=-1)
            return jnp.sum(phi * psi, -1) / jnp.maximum(norms, 1e-8)
        if self.kind == "l2":
            return -jnp.sum(diff**2, -1)
        return -jnp.sqrt(jnp.sum(diff**2, -1) + 1e-6)


def mrn_distance(x, y, components, pairwise):
    """Metric residual network distance (Liu et al. 2022, arXiv 2208.08133), in TMD's form:
    x and y split into `components` equal parts; in each, the largest relu(x_i - y_i) over its
    first half (asymmetric) plus sqrt(||x - y||^2 + 1e-6) over its second half (symmetric); the
    mean over parts. Pairwise: (B, B), the parts as the leading axis so that each part's (B, B)
    plane is contiguous; the symmetric half through ||x||^2 + ||y||^2 - 2 x.y, one matmul per part,
    so only the asymmetric max needs the pairwise differences."""
    x = x.reshape(*x.shape[:-1], components, -1)
    y = y.reshape(*y.shape[:-1], components, -1)
    half = x.shape[-1] // 2
    if not pairwise:
        diff = x - y
        asymmetric = jnp.max(jax.nn.relu(diff[..., :half]), axis=-1)
        symmetric = jnp.sqrt(jnp.sum(diff[..., half:] ** 2, axis=-1) + 1e-6)
        return jnp.mean(asymmetric + symmetric, axis=-1)
    xs, ys = x[..., half:], y[..., half:]  # (B, K, m)
    cross = jnp.einsum("ikm,jkm->kij", xs, ys)
    sq_dist = jnp.sum(xs**2, -1).T[:, :, None] + jnp.sum(ys**2, -1).T[:, None, :] - 2.0 * cross
    symmetric = jnp.sqrt(jnp.maximum(sq_dist, 0.0) + 1e-6)
    largest = None  # max_m (x_m - y_m), one (K, B, B) plane per coordinate
    for m in range(half):
        diff = x[:, :, m].T[:, :, None] - y[:, :, m].T[:, None, :]
        largest = diff if largest is None else jnp.maximum(largest, diff)
    return jnp.mean(jax.nn.relu(largest) + symmetric, axis=0)


def iqe_distance(x, y, dim, mix, pairwise):
    """Interval quasimetric embedding distance (Wang & Isola 2022, arXiv 2211.15120), in TMD's
    form: x and y split into components of `dim` coordinates; in each, the total length of the
    union of the intervals [x_i, y_i] with x_i < y_i; then mix * mean + (1 - mix) * max over the
    components.

    The union is measured by a sweep over the intervals in order of their starts x_i, which
    depend on x alone: sort each row of x once, bring y into that order (pairwise: a one-hot
    matmul per rank, no (B, B, d) gather), and add what each interval extends the covered span.
    """
    x = x.reshape(*x.shape[:-1], -1, dim)
    y = y.reshape(*y.shape[:-1], -1, dim)
    order = jnp.argsort(jax.lax.stop_gradient(x), axis=-1)  # the sort's gradient is the permutation
    if pairwise:
        rank = jax.nn.one_hot(order, dim, dtype=x.dtype)  # (B, C, rank, coordinate)
        starts = jnp.einsum("icrk,ick->rci", rank, x)[..., None]  # (dim, C, B, 1)
        ends = [jnp.einsum("ick,jck->cij", rank[:, :, r], y) for r in range(dim)]  # (C, B, B) each
        lengths = union_length(list(starts), ends)
        return mix * jnp.mean(lengths, axis=0) + (1.0 - mix) * jnp.max(lengths, axis=0)
    starts = jnp.take_along_axis(x, order, axis=-1)
    ends = jnp.take_along_axis(y, order, axis=-1)
    lengths = union_length(list(jnp.moveaxis(starts, -1, 0)), list(jnp.moveaxis(ends, -1, 0)))
    return mix * jnp.mean(lengths, axis=-1) + (1.0 - mix) * jnp.max(lengths, axis=-1)


def union_length(starts, ends):
    """Length of the union of the intervals [s, max(s, e)] for s, e in zip(starts, ends), given in
    order of increasing start (arrays of one shape, or broadcasting to it). Each interval adds
    how far its end passes the covered span's end, or the span's end moved up to its start."""
    total = frontier = None
    for start, end in zip(starts, ends):
        low = start if frontier is None else jnp.maximum(frontier, start)
        grow = jax.nn.relu(end - low)
        total = grow if total is None else total + grow
        frontier = low + grow
    return total


def require_energy_shape(energy_fn: str, repr_dim: int, mrn_components: int, iqe_dim: int) -> None:
    """--energy-fn mrn and iqe split the representation: a size that does not divide exits 2."""
    if energy_fn == "mrn":
        part = repr_dim // max(mrn_components, 1)
        require(
            mrn_components >= 1 and part >= 2 and part * mrn_components == repr_dim,
            f"--energy-fn mrn splits the representation into --mrn-components parts of at least 2 "
            f"coordinates each (half asymmetric, half symmetric), so --repr-dim must be a multiple of "
            f"--mrn-components at least twice as large (got --repr-dim {repr_dim}, "
            f"--mrn-components {mrn_components}).",
        )
    if energy_fn == "iqe":
        require(
            iqe_dim >= 1 and repr_dim % iqe_dim == 0,
            f"--energy-fn iqe splits the representation into components of --iqe-dim coordinates, so "
            f"--repr-dim must be a multiple of --iqe-dim (got --repr-dim {repr_dim}, --iqe-dim {iqe_dim}).",
        )
