"""The quasimetric energies (--energy-fn mrn, iqe) beside norm: what they cost, and what they reach.

    python results/notes/quasimetric.py                                   # the cost
    python results/notes/quasimetric.py --runs results/notes/quasimetric/runs   # the results table

Without `--runs`, two measurements, each alternating its variants `--repeats` times so that a
noisy shared machine slows them alike, and reporting medians and ratios to `norm`:

* the energy alone: forward and backward of the critic's (B, B) logits for `--batch-size`
  representations of `--repr-dim` coordinates, for norm, mrn and iqe as crl_infonce.py computes
  them, and for mrn and iqe written the straightforward way: MRN's pairwise differences
  materialised as a (B, B, d) tensor, and IQE's union of intervals measured by sorting the 2k
  interval ends of every pair;
* training: `python algorithms/crl_infonce.py` with `--training-flags` (the README's reacher
  command, shortened to `--training-steps` env steps), once per energy, in fresh processes;
  the training SPS each run prints (compile and evaluation excluded).

With `--runs ROOT`: for every env and energy under ROOT (run directories
`{env}__crl_infonce_{energy}__{seed}__{time}`), the final evaluation's IQM over seeds with its 95%
percentile-bootstrap interval (results/tools/plots.py's), for success and time at goal with the
policy's mean and with sampled actions, and for the named tasks' overall success in both modes.
`python results/tools/plots.py --run-root ROOT` draws the curves.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[2]
ENERGIES = ("norm", "mrn", "iqe")
TAGS = (
    "eval/success_rate",
    "eval/sampled_success_rate",
    "eval/time_at_goal",
    "eval/sampled_time_at_goal",
    "eval/tasks/overall_success",
    "eval/tasks/sampled_overall_success",
)
README_REACHER = "--env-id reacher --unroll-length 50"


def load(name: str, path: pathlib.Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while it runs
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Args:
    runs: str = ""
    """a folder of run directories to tabulate, instead of timing"""
    batch_size: int = 256
    """representations per side of the timed (B, B) logits (the algorithms' default batch)"""
    repr_dim: int = 64
    """coordinates of each representation (the algorithms' default)"""
    repeats: int = 20
    """timed calls of each energy, alternating"""
    training_steps: int = 300_000
    """env steps of each timed training run (0: no training runs)"""
    training_repeats: int = 2
    """training runs of each energy, alternating"""
    training_flags: str = README_REACHER
    """flags of the timed training runs, besides --energy-fn and --total-timesteps"""
    output: str = ""
    """also write the Markdown tables to this file"""


# ------------------------------------------------------------------ the straightforward forms
def mrn_materialised(x, y, components=8):
    """MRN with every pair's difference held at once: (B, B, d)."""
    diff = (x[:, None, :] - y[None, :, :]).reshape(x.shape[0], y.shape[0], components, -1)
    half = diff.shape[-1] // 2
    asymmetric = jnp.max(jax.nn.relu(diff[..., :half]), axis=-1)
    symmetric = jnp.sqrt(jnp.sum(diff[..., half:] ** 2, axis=-1) + 1e-6)
    return jnp.mean(asymmetric + symmetric, axis=-1)


def iqe_sorted_ends(x, y, dim=8, mix=0.5):
    """IQE measured per pair: sort the 2k ends of its intervals, count the open intervals along
    the line, and add up the stretches where at least one is open."""
    x = jnp.broadcast_to(x.reshape(x.shape[0], 1, -1, dim), (x.shape[0], y.shape[0], x.shape[1] // dim, dim))
    y = jnp.broadcast_to(y.reshape(1, y.shape[0], -1, dim), x.shape)
    ends = jnp.concatenate([x, jnp.maximum(x, y)], axis=-1)
    opens = jnp.concatenate([jnp.ones_like(x), -jnp.ones_like(x)], axis=-1)
    order = jnp.argsort(ends, axis=-1)
    ends, opens = jnp.take_along_axis(ends, order, -1), jnp.take_along_axis(opens, order, -1)
    covered = jnp.cumsum(opens, axis=-1)[..., :-1] > 0
    lengths = jnp.sum(covered * (ends[..., 1:] - ends[..., :-1]), axis=-1)
    return mix * jnp.mean(lengths, axis=-1) + (1.0 - mix) * jnp.max(lengths, axis=-1)


def time_energies(crl, args: Args) -> list[dict]:
    rng = np.random.default_rng(0)
    phi, psi, weights = (
        jnp.asarray(rng.normal(size=shape), jnp.float32)
        for shape in [(args.batch_size, args.repr_dim), (args.batch_size, args.repr_dim), (args.batch_size,) * 2]
    )
    energies = {kind: crl.Energy(kind, iqe_mix_logit=jnp.zeros(())) for kind in ENERGIES}
    variants = {
        f"{kind} (crl_infonce.py)": lambda x, y, e=energy: e.pairwise(x, y) for kind, energy in energies.items()
    }
    variants["mrn, (B, B, d) differences"] = lambda x, y: -mrn_materialised(x, y) / jnp.sqrt(x.shape[-1])
    variants["iqe, sorted ends per pair"] = lambda x, y: -iqe_sorted_ends(x, y) / jnp.sqrt(x.shape[-1])
    steps = {}
    for name, logits in variants.items():
        step = jax.jit(jax.grad(lambda x, y, f=logits: jnp.sum(weights * f(x, y)), argnums=(0, 1)))
        jax.block_until_ready(step(phi, psi))  # compile
        steps[name] = step
    reference = jax.jit(variants["iqe (crl_infonce.py)"])(phi, psi)
    straightforward = jax.jit(variants["iqe, sorted ends per pair"])(phi, psi)
    assert np.allclose(reference, straightforward, atol=1e-4), "the two IQE forms disagree"
    times = {name: [] for name in steps}
    for _ in range(args.repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            jax.block_until_ready(step(phi, psi))
            times[name].append(time.perf_counter() - start)
    norm = statistics.median(times["norm (crl_infonce.py)"])
    return [dict(name=n, ms=1e3 * statistics.median(t), ratio=statistics.median(t) / norm) for n, t in times.items()]


def time_training(args: Args) -> list[dict]:
    sps = {kind: [] for kind in ENERGIES}
    with_root = f"--run-root {REPO / 'runs' / 'quasimetric_cost'}"
    for _ in range(args.training_repeats):
        for kind in ENERGIES:
            flags = f"{args.training_flags} --total-timesteps {args.training_steps} --energy-fn {kind} {with_root}"
            result = subprocess.run(
                [sys.executable, str(REPO / "algorithms" / "crl_infonce.py"), *flags.split()],
                capture_output=True,
                text=True,
                cwd=REPO,
            )
            found = re.search(r"([\d,]+) SPS per seed", result.stdout)
            if result.returncode != 0 or found is None:
                raise SystemExit(f"the training run failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
            sps[kind].append(int(found.group(1).replace(",", "")))
    norm = statistics.median(sps["norm"])
    return [dict(kind=k, sps=statistics.median(v), runs=v, ratio=statistics.median(v) / norm) for k, v in sps.items()]


# ------------------------------------------------------------------ results
def results_table(run_root: str) -> str:
    plots = load("plots", REPO / "results" / "tools" / "plots.py")
    rows = plots.aggregate(plots.find_runs(run_root), TAGS)
    final = {}
    for row in rows:  # the last evaluation of each (env, energy, tag)
        key = (row["env_id"], row["algorithm"], row["tag"])
        if key not in final or row["env_steps"] > final[key]["env_steps"]:
            final[key] = row
    cell = lambda r: f"{r['value']:.3f} [{r['low']:.3f}, {r['high']:.3f}]" if r else "-"  # noqa: E731
    header = "| env | energy | seeds | env steps | " + " | ".join(t.removeprefix("eval/") for t in TAGS) + " |"
    lines = [header, "|---|---|---:|---:|" + "---|" * len(TAGS)]
    for env_id, algorithm in sorted({(e, a) for e, a, _ in final}):
        first = final[(env_id, algorithm, TAGS[0])]
        cells = " | ".join(cell(final.get((env_id, algorithm, tag))) for tag in TAGS)
        energy = algorithm.removeprefix("crl_infonce_")
        lines.append(f"| `{env_id}` | `{energy}` | {first['seeds']} | {first['env_steps']:,} | {cells} |")
    return "\n".join(lines)


def main(args: Args) -> str:
    if args.runs:
        text = results_table(args.runs)
    else:
        crl = load("crl_infonce", REPO / "algorithms" / "crl_infonce.py")
        lines = [
            f"Energy alone: forward and backward of the (B, B) logits, B = {args.batch_size}, "
            f"repr_dim = {args.repr_dim}, median of {args.repeats}; {jax.default_backend()}",
            "",
            "| energy | ms | over norm |",
            "|---|---:|---:|",
        ]
        lines += [f"| {r['name']} | {r['ms']:.2f} | {r['ratio']:.1f} |" for r in time_energies(crl, args)]
        if args.training_steps:
            lines += [
                "",
                f"Training: `python algorithms/crl_infonce.py {args.training_flags} --total-timesteps "
                f"{args.training_steps} --energy-fn E`, median of {args.training_repeats} alternating runs",
                "",
                "| energy | training SPS | runs | over norm |",
                "|---|---:|---|---:|",
            ]
            lines += [
                f"| {r['kind']} | {r['sps']:,.0f} | {', '.join(f'{v:,}' for v in r['runs'])} | {r['ratio']:.2f} |"
                for r in time_training(args)
            ]
        text = "\n".join(lines)
    print(text)
    if args.output:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        pathlib.Path(args.output).write_text(text + "\n")
    return text


if __name__ == "__main__":
    import tyro

    main(tyro.cli(Args))
