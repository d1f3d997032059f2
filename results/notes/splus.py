"""SPlus (--optimizer splus) beside Adam: what a gradient step costs, and what the runs reach.

    python results/notes/splus.py                                         # the cost
    python results/notes/splus.py --runs results/notes/splus/runs         # the results table

Without `--runs`: the cost of a gradient step of crl_infonce.py (actor, critic and temperature),
Adam against SPlus, at `--depths` (a depth that is a multiple of 4 and above 4 is the residual
net, `--residual`). Each variant jits `--steps` gradient steps in one `lax.scan`, vmapped over
`--num-seeds` seeds as a run's `--num-seeds` trains them, on batches of the env's shapes. The
variants alternate `--repeats` times so that a noisy shared machine slows them alike; the table
gives the mean time per gradient step over all timed calls (SPlus's eigenbases refresh every 100
steps at its default `--splus-inverse-every`: with 20 steps per call, in one call of five, so the
mean counts them at their rate) and SPlus over Adam. (With 50 or 100 steps per call this script
hung in its first call on a 2-core CPU, every thread waiting, while the same program in a short
script ran: not understood; training runs with SPlus have not hung. `--call-timeout` turns such
a hang into exit code 1 with every thread's stack.)

With `--runs ROOT`: for every env and experiment under ROOT (`results/notes/splus/measure.sh`
names them `crl_infonce_{optimizer}_{learning rate}`), the IQM over seeds of success at each
evaluation, with the policy's mean (deterministic) and with sampled actions; the first evaluation
where it reaches `--thresholds` (as env steps, gradient steps and wall seconds from the run's
start, compile included); and the final IQM with its 95% bootstrap interval. It also draws success
against gradient steps, one panel per env and mode (`{ROOT}/../curves.png`).
"""

from __future__ import annotations

import faulthandler
import importlib.util
import json
import os
import pathlib
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import tyro

from algorithms import crl_infonce as crl
from algorithms import run
from buffers.trajectory import Batch

REPO = pathlib.Path(__file__).resolve().parents[2]
MODES = {"deterministic": "eval/success_rate", "sampled": "eval/sampled_success_rate"}


@dataclass(frozen=True)
class Args:
    runs: str = ""
    """a folder of run directories to tabulate, instead of timing"""
    thresholds: tuple[str, ...] = ("reacher=0.8", "simple_u_maze=0.3")
    """env=success: the success (IQM over seeds) whose first crossing is reported"""
    env_id: str = "reacher"
    """env whose shapes the timed gradient steps take"""
    depths: tuple[int, ...] = (2, 16)
    """hidden layers of the timed networks (a multiple of 4 above 4: residual)"""
    num_seeds: int = 3
    """seeds vmapped in each timed gradient step"""
    steps: int = 20
    """gradient steps per timed call (one lax.scan)"""
    repeats: int = 10
    """timed calls of each variant, alternating (with the default 20 steps, calls 5 and 10 refresh)"""
    output: str = ""
    """also write the Markdown tables to this file"""
    call_timeout: float = 900.0
    """seconds any one compiled call may take before the script stops with every thread's stack
    and exit code 1 (a call that waits forever has been seen: the docstring above)"""


def load_plots():
    """results/tools/plots.py (a script, not a package): its run finder, reader and statistics."""
    spec = importlib.util.spec_from_file_location("plots", REPO / "results" / "tools" / "plots.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while it runs
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------ cost per gradient step
def time_steps(args: Args) -> list[dict]:
    # a watchdog, re-armed before each call: a call that hangs ends the script instead
    def watch():
        faulthandler.dump_traceback_later(args.call_timeout, exit=True)

    variants = {}
    for depth in args.depths:
        for optimizer in ("adam", "splus"):
            residual = depth > 4 and depth % 4 == 0
            flags = crl.Args(env_id=args.env_id, depth=depth, residual=residual, optimizer=optimizer)
            env = run.make_env(flags)
            init, update = crl.make_update(flags, env)
            keys = jax.random.split(jax.random.key(0), args.num_seeds)
            states = jax.vmap(init)(keys)
            batch = random_batch(env, flags.batch_size, args.num_seeds)

            def steps(ts, batch, key, update=update):
                def body(ts, key):
                    return update(ts, batch, key)[0], None

                return jax.lax.scan(body, ts, jax.random.split(key, args.steps))[0]

            step = jax.jit(jax.vmap(steps))
            watch()
            states = jax.block_until_ready(step(states, batch, keys))  # compile, and the first refresh
            variants[(depth, optimizer)] = [step, states, batch, keys]
    times = defaultdict(list)
    for _ in range(args.repeats):
        for name, variant in variants.items():
            step, states, batch, keys = variant
            watch()
            start = time.perf_counter()
            variant[1] = jax.block_until_ready(step(states, batch, keys))
            times[name].append((time.perf_counter() - start) / args.steps)
    faulthandler.cancel_dump_traceback_later()
    rows = []
    for depth in args.depths:  # the mean: the calls that refresh SPlus's eigenbases count at their rate
        adam, splus = (statistics.mean(times[(depth, o)]) for o in ("adam", "splus"))
        rows.append(dict(depth=depth, adam_ms=1e3 * adam, splus_ms=1e3 * splus, ratio=splus / adam))
    return rows


def random_batch(env, batch_size: int, num_seeds: int) -> Batch:
    """A batch of the env's shapes for each seed (values from a normal: the cost does not depend
    on them)."""
    rng = np.random.default_rng(0)

    def normal(*shape):
        return jnp.asarray(rng.normal(size=(num_seeds, batch_size, *shape)), jnp.float32)

    obs, next_obs, flag = normal(env.observation_size), normal(env.observation_size), normal()
    action = jnp.tanh(normal(env.action_size))
    return Batch(obs, action, next_obs, flag, flag, normal(env.goal_dim), flag, flag > 0)


# ------------------------------------------------------------------ the runs
def gradient_steps(run_dir: str):
    """env steps -> the gradient steps a run had taken by then: its schedule, from its args.json."""
    with open(os.path.join(run_dir, "args.json")) as f:
        saved = json.load(f)["args"]
    flags = crl.Args(**{k: v for k, v in saved.items() if k in crl.Args.__dataclass_fields__})
    schedule = run.make_schedule(flags, run.make_env(flags))
    first = schedule.learning_start_rows // flags.unroll_length  # the first training step that updates

    def at(env_steps: int) -> int:
        training_steps = env_steps // schedule.steps_per_training_step
        return schedule.updates_per_rollout * max(0, training_steps - first + 1)

    return at


def wall_seconds(run_dir: str, tag: str) -> dict[int, float]:
    """Seconds from the run's first event to each point of `tag`."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(run_dir, size_guidance={"scalars": 0})
    events.Reload()
    start = min(e.wall_time for t in events.Tags()["scalars"] for e in events.Scalars(t))
    return {e.step: e.wall_time - start for e in events.Scalars(tag)}


def tabulate(args: Args) -> tuple[list[dict], dict]:
    thresholds = {k: float(v) for k, v in (t.split("=") for t in args.thresholds)}
    plots = load_plots()
    runs = plots.find_runs(args.runs)
    rng = np.random.default_rng(0)
    rows, curves = [], {}
    for (env_id, experiment), by_seed in sorted(runs.items()):
        dirs = [d for _, d in sorted(by_seed.items())]
        grad_steps_at = gradient_steps(dirs[0])
        for mode, tag in MODES.items():
            per_seed = [plots.read_scalars(d, (tag,)).get(tag, {}) for d in dirs]
            steps = sorted(set.intersection(*(set(c) for c in per_seed)))
            if not steps:  # a run that has not evaluated yet
                continue
            values = np.array([[c[s] for s in steps] for c in per_seed])  # (seeds, evals)
            curve = plots.iqm(values, axis=0)
            grads = [grad_steps_at(s) for s in steps]
            curves[(env_id, experiment, mode)] = (grads, curve)
            threshold = thresholds.get(env_id)
            crossed = [i for i, v in enumerate(curve) if threshold is not None and v >= threshold]
            walls = [wall_seconds(d, tag) for d in dirs]
            low, high = plots.bootstrap_interval(values[:, -1], plots.iqm, 2000, 0.95, rng)
            row = dict(env_id=env_id, experiment=experiment, mode=mode, threshold=threshold, seeds=len(dirs))
            row.update(final=float(curve[-1]), low=low, high=high)
            if crossed:
                i = crossed[0]
                row.update(env_steps=steps[i], grad_steps=grads[i])
                row.update(wall=statistics.median(w[steps[i]] for w in walls))
            rows.append(row)
    return rows, curves


def plot(curves: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs_ = sorted({k[0] for k in curves})
    fig, axes = plt.subplots(len(envs_), len(MODES), figsize=(5 * len(MODES), 3.5 * len(envs_)), squeeze=False)
    experiments = sorted({k[1] for k in curves})  # one colour per experiment in every panel
    for (env_id, experiment, mode), (grads, curve) in sorted(curves.items()):
        ax = axes[envs_.index(env_id), list(MODES).index(mode)]
        style = "-" if "splus" in experiment else "--"
        colour = plt.get_cmap("tab10")(experiments.index(experiment) % 10)
        ax.plot(grads, curve, style, marker=".", color=colour, label=experiment.removeprefix("crl_infonce_"))
        ax.set_title(f"{env_id}, {mode} actions")
        ax.set_xlabel("gradient steps (per seed)")
        ax.set_ylabel("success (IQM over seeds)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(args: Args) -> str:
    if args.runs:
        rows, curves = tabulate(args)
        lines = [
            "| env | experiment | actions | final success IQM [95%] | threshold | env steps | gradient steps | wall s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            reached = (
                f"{r['env_steps']:,} | {r['grad_steps']:,} | {r['wall']:.0f}"
                if "env_steps" in r
                else "not reached | - | -"
            )
            final = f"{r['final']:.3f} [{r['low']:.3f}, {r['high']:.3f}]"
            lines.append(
                f"| {r['env_id']} | {r['experiment']} | {r['mode']} | {final} | {r['threshold']} | {reached} |"
            )
        figure = str(pathlib.Path(args.runs).parent / "curves.png")
        plot(curves, figure)
        lines.append(f"\ncurves: {figure}")
    else:
        rows = time_steps(args)
        lines = [
            f"{args.env_id}, {args.num_seeds} seeds vmapped, {args.steps} gradient steps per call, "
            f"mean of {args.repeats} calls, {jax.devices()[0].platform}",
            "",
            "| depth | Adam ms / gradient step | SPlus ms / gradient step | SPlus / Adam |",
            "|---|---|---|---|",
        ]
        lines += [f"| {r['depth']} | {r['adam_ms']:.2f} | {r['splus_ms']:.2f} | {r['ratio']:.2f} |" for r in rows]
    text = "\n".join(lines)
    if args.output:
        pathlib.Path(args.output).write_text(text + "\n")
    return text


if __name__ == "__main__":
    print(main(tyro.cli(Args)))
