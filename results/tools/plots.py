"""Learning curves from TensorBoard event files, aggregated over seeds, as PNG figures.

    python results/tools/plots.py --run-root results/benchmark/cpu-small/runs
    python results/tools/plots.py --run-root runs --aggregate mean --output curves.png

Every directory under `--run-root` that holds a TensorBoard event file is one run; its name is the
algorithms' `{env_id}__{exp_name}__{seed}__{unix_time}`, which gives the env, the algorithm (the
experiment name, the file's name by default) and the seed. Scalars are read with TensorBoard's
own reader. For each (env, algorithm, tag) and each evaluation step that every seed logged, the
curve is the interquartile mean over seeds (`--aggregate iqm`: the mean of the middle 50% of
the sorted values, `floor(n / 4)` dropped at each end) or the plain mean (`mean`), with a
percentile-bootstrap confidence interval over seeds (`--confidence`, default 95%;
`--bootstrap-samples` resamples of the seeds with replacement).

The figure has one column per env and one row per tag (default: success rate and time at goal
against env steps), one line per algorithm with its interval shaded. `--csv` also writes the
aggregated points.
"""

from __future__ import annotations

import csv
import os
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

import numpy as np

RUN_NAME = re.compile(r"^(?P<env_id>.+?)__(?P<exp_name>.+)__(?P<seed>-?\d+)__(?P<time>\d+)$")
DEFAULT_TAGS = ("eval/success_rate", "eval/time_at_goal")


@dataclass(frozen=True)
class Args:
    run_root: str
    """directory searched (recursively) for run directories"""
    output: str = ""
    """PNG path (default: {run_root}/curves.png)"""
    tags: tuple[str, ...] = DEFAULT_TAGS
    """scalar tags, one row of panels each"""
    aggregate: Literal["iqm", "mean"] = "iqm"
    """statistic over seeds"""
    confidence: float = 0.95
    """confidence level of the bootstrap interval"""
    bootstrap_samples: int = 2000
    """bootstrap resamples of the seeds"""
    seed: int = 0
    """seed of the bootstrap's random generator"""
    csv: str = ""
    """also write the aggregated points to this CSV"""


# ------------------------------------------------------------------ statistics
def iqm(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean along `axis`: sort, drop floor(n / 4) values at each end, average."""
    values = np.sort(np.asarray(values, np.float64), axis=axis)
    n = values.shape[axis]
    cut = n // 4
    return np.take(values, np.arange(cut, n - cut), axis=axis).mean(axis=axis)


STATISTICS = {"iqm": iqm, "mean": lambda values, axis=-1: np.mean(values, axis=axis)}


def bootstrap_interval(
    values: np.ndarray, statistic, samples: int, confidence: float, rng: np.random.Generator
) -> tuple[float, float]:
    """Percentile bootstrap: the statistic over `samples` resamples (with replacement) of the
    values, and the (1 - confidence) / 2 and (1 + confidence) / 2 quantiles of those."""
    values = np.asarray(values, np.float64)
    index = rng.integers(0, len(values), size=(samples, len(values)))
    resampled = statistic(values[index], axis=-1)
    alpha = 1.0 - confidence
    low, high = np.quantile(resampled, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


# ------------------------------------------------------------------ event files
def find_runs(run_root: str) -> dict[tuple[str, str], dict[int, str]]:
    """(env_id, algorithm) -> {seed: run directory} for every run under `run_root`; of several
    runs with the same env, algorithm and seed the latest (by its unix time) is taken."""
    runs: dict[tuple[str, str], dict[int, tuple[int, str]]] = defaultdict(dict)
    for directory, _, files in sorted(os.walk(run_root)):
        if not any(f.startswith("events.out.tfevents") for f in files):
            continue
        match = RUN_NAME.match(os.path.basename(directory))
        if match is None:
            continue
        key, seed, started = (match["env_id"], match["exp_name"]), int(match["seed"]), int(match["time"])
        if seed not in runs[key] or started >= runs[key][seed][0]:
            runs[key][seed] = (started, directory)
    return {key: {seed: d for seed, (_, d) in by_seed.items()} for key, by_seed in runs.items()}


def read_scalars(run_dir: str, tags: tuple[str, ...]) -> dict[str, dict[int, float]]:
    """tag -> {step: value} from a run's event files (TensorBoard's reader, every point kept)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(run_dir, size_guidance={"scalars": 0})
    events.Reload()
    present = set(events.Tags()["scalars"])
    return {tag: {e.step: e.value for e in events.Scalars(tag)} for tag in tags if tag in present}


def aggregate(
    runs: dict[tuple[str, str], dict[int, str]],
    tags: tuple[str, ...],
    statistic: str = "iqm",
    confidence: float = 0.95,
    samples: int = 2000,
    seed: int = 0,
) -> list[dict]:
    """One row per (env, algorithm, tag, step) that every seed logged: the statistic over seeds
    and its bootstrap interval."""
    rng = np.random.default_rng(seed)
    rows = []
    for (env_id, algorithm), by_seed in sorted(runs.items()):
        scalars = {s: read_scalars(d, tags) for s, d in sorted(by_seed.items())}
        for tag in tags:
            curves = [scalars[s].get(tag, {}) for s in scalars]
            steps = sorted(set.intersection(*(set(c) for c in curves))) if curves else []
            for step in steps:
                values = np.array([c[step] for c in curves])
                low, high = bootstrap_interval(values, STATISTICS[statistic], samples, confidence, rng)
                rows.append(
                    dict(
                        env_id=env_id,
                        algorithm=algorithm,
                        tag=tag,
                        env_steps=step,
                        value=float(STATISTICS[statistic](values)),
                        low=low,
                        high=high,
                        seeds=len(values),
                    )
                )
    return rows


# ------------------------------------------------------------------ figure
def plot(
    rows: list[dict],
    tags: tuple[str, ...],
    output: str,
    statistic: str,
    confidence: float,
    baselines: dict[tuple[str, str], float] | None = None,
    max_columns: int = 5,
) -> str:
    """One panel per (env, tag), one line per algorithm; envs run across at most `max_columns`
    columns, each env's tags stacked below it. `baselines[(env, tag)]` (for example the random
    policy's score) is drawn as a dashed grey line. Written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    env_ids = sorted({r["env_id"] for r in rows})
    algorithms = sorted({r["algorithm"] for r in rows})
    if not env_ids:
        raise ValueError("no evaluation points to plot")
    colors = {a: plt.get_cmap("tab10")(i % 10) for i, a in enumerate(algorithms)}
    steps_format = matplotlib.ticker.FuncFormatter(lambda x, _: f"{x / 1e6:g}M" if x else "0")
    columns = min(len(env_ids), max_columns)
    env_rows = -(-len(env_ids) // columns)
    fig, axes = plt.subplots(
        env_rows * len(tags), columns, figsize=(4.2 * columns, 3.2 * env_rows * len(tags)), squeeze=False
    )
    for ax in axes.flat:
        ax.set_visible(False)
    for index, env_id in enumerate(env_ids):
        for t, tag in enumerate(tags):
            ax = axes[(index // columns) * len(tags) + t][index % columns]
            ax.set_visible(True)
            for algorithm in algorithms:
                points = [r for r in rows if r["env_id"] == env_id and r["algorithm"] == algorithm and r["tag"] == tag]
                if not points:
                    continue
                x = np.array([p["env_steps"] for p in points])
                seeds = points[0]["seeds"]
                label = f"{algorithm} ({seeds} seed{'' if seeds == 1 else 's'})"
                ax.plot(x, [p["value"] for p in points], color=colors[algorithm], label=label, marker=".")
                ax.fill_between(
                    x, [p["low"] for p in points], [p["high"] for p in points], color=colors[algorithm], alpha=0.2
                )
            if baselines and (env_id, tag) in baselines:
                ax.axhline(baselines[env_id, tag], color="grey", linestyle="--", linewidth=1, label="random policy")
            ax.set_title(env_id if t == 0 else "")
            ax.set_ylabel(tag.split("/")[-1].replace("_", " "))
            ax.grid(alpha=0.3)
            ax.set_xlabel("env steps")
            ax.xaxis.set_major_formatter(steps_format)
            if "success" in tag or "time_at_goal" in tag:
                ax.set_ylim(-0.02, 1.02)
            if index == 0 and t == 0:
                ax.legend(fontsize=8, loc="upper left")
    fig.suptitle(
        f"{statistic.upper() if statistic == 'iqm' else 'mean'} over seeds, {confidence:.0%} bootstrap interval",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.98))  # room for the title above the top row
    try:
        write_atomically(output, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    finally:
        plt.close(fig)
    return output


def write_atomically(path: str, write) -> None:
    """`write(temporary_path)`, then the temporary file renamed to `path`: the file is whole or
    as it was. A write that fails (a full or read-only disk) leaves no temporary file behind and
    raises an OSError that names `path` (some writers, matplotlib's among them, name none)."""
    tmp = f"{path}.tmp"
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as error:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(error, OSError):
            raise OSError(error.errno, error.strerror or str(error), path) from None
        raise


def write_csv(rows: list[dict], path: str) -> None:
    def write(tmp):
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["env_id"])
            writer.writeheader()
            writer.writerows(rows)

    write_atomically(path, write)


def main(args: Args) -> str:
    runs = find_runs(args.run_root)
    if not runs:
        raise SystemExit(f"no run directories with TensorBoard event files under {args.run_root!r}")
    rows = aggregate(runs, args.tags, args.aggregate, args.confidence, args.bootstrap_samples, args.seed)
    output = args.output or os.path.join(args.run_root, "curves.png")
    plot(rows, args.tags, output, args.aggregate, args.confidence)
    if args.csv:
        write_csv(rows, args.csv)
    print(f"{len(runs)} (env, algorithm) groups, {sum(len(v) for v in runs.values())} runs -> {output}")
    return output


if __name__ == "__main__":
    import tyro

    main(tyro.cli(Args))
