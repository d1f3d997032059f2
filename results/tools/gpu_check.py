"""Everything a GPU session should measure, in one command that fits in 10 minutes of device time.

    python results/tools/gpu_check.py                      # on the GPU: at most 14 minutes, about 8 expected
    python results/tools/gpu_check.py --tiny               # the same steps at a toy scale (CPU, about 10 minutes)
    python results/tools/gpu_check.py --tiny --env-id reacher --depth-env-id reacher   # the suite's check: 2 minutes

Three steps, each a subprocess with a time limit, each writing its log into `--out-dir`
(default `runs/gpu_check/{device}_{time}`):

1. **env only**: `results/tools/random_policy.py` on ant at the training run's size (1024 envs,
   1001-step episodes): the env-only steps per second (random actions, auto-reset included) and
   the random policy's evaluation.
2. **ant**: `algorithms/crl_infonce.py` on ant, 10M env steps on 1024 envs with JaxGCRL's
   episode length, 10 evaluations: compile seconds, training SPS beside the env-only rate, and
   the last evaluation with deterministic and with sampled actions. A run that reaches its time
   limit is stopped; what it logged to TensorBoard until then is reported (its env steps say how
   far it got).
3. **depth**: `results/tools/scaling.py` on humanoid, the residual critic and actor at depths 4 and 64
   (`--residual --layer-norm`), one training step timed: compile seconds, ms per gradient step,
   training SPS.

The last thing printed is a short table (also `summary.md` and `summary.json` in the folder),
headed by the device's name and the jax version. A step that fails or times out is a row that
says so; the others still run.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys
import time
from dataclasses import dataclass

import plots  # results/tools/plots.py: a script's own folder is the first entry of its import path
import tyro

ROOT = pathlib.Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Args:
    out_dir: str = ""
    """folder for the logs, the run and the summary (default runs/gpu_check/{device}_{time})"""
    tiny: bool = False
    """a toy scale of every step (a few envs and tiny networks): checks the command on a CPU"""
    ant_timeout: int = 360
    """seconds the ant run may take (compile included) before it is stopped and read as it stands"""
    step_timeout: int = 240
    """seconds each of the other steps may take"""
    env_id: str = "ant"
    """the env of the first two steps (the test suite's check uses a cheaper one)"""
    depth_env_id: str = "humanoid"
    """the env of the depth step"""


# Flags per step: the research scale, and a toy scale that runs the same code on a CPU.
ANT = ["--episode-length=1001", "--num-evals=10"]
ANT_FULL = ["--num-envs=1024", "--total-timesteps=10000000"]
ANT_TINY = ["--num-envs=8", "--total-timesteps=2000", "--unroll-length=10", "--episode-length=50",
            "--batch-size=16", "--buffer-size=100", "--learning-starts=10", "--width=16", "--depth=1",
            "--repr-dim=8", "--updates-per-rollout=2", "--num-eval-envs=4", "--num-evals=2"]  # fmt: skip
DEPTH = ["--episode-length=1001"]
DEPTH_FULL = ["--num-envs=1024"]
DEPTH_TINY = ["--num-envs=4", "--unroll-length=5", "--episode-length=20", "--batch-size=16",
              "--buffer-size=40", "--learning-starts=5", "--width=16", "--repr-dim=8",
              "--updates-per-rollout=2"]  # fmt: skip


def run_step(name: str, command: list[str], timeout: int, out_dir: str) -> tuple[str, float, bool]:
    """Run one step with its output in {out_dir}/{name}.log: (status, seconds, timed out)."""
    log = os.path.join(out_dir, f"{name}.log")
    print(f"[{name}] {' '.join(command)}  (limit {timeout} s, log {log})", flush=True)
    start = time.perf_counter()
    with open(log, "w") as f:
        process = subprocess.Popen([sys.executable, *command], stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            return f"stopped at its {timeout} s limit", time.perf_counter() - start, True
    seconds = time.perf_counter() - start
    return ("ok" if code == 0 else f"failed (exit {code}, see {log})"), seconds, False


def read_log(out_dir: str, name: str) -> str:
    path = os.path.join(out_dir, f"{name}.log")
    return pathlib.Path(path).read_text() if os.path.exists(path) else ""


def ant_results(out_dir: str, env_id: str) -> dict:
    """The ant run's compile seconds (from its log) and, from its TensorBoard events, the env
    steps of its last evaluation, that evaluation's metrics in both modes and its mean SPS."""
    found = {}
    compiled = re.search(r"compiled training chunk and evaluation in ([0-9.]+) s", read_log(out_dir, "ant"))
    if compiled:
        found["compile_s"] = float(compiled.group(1))
    runs = plots.find_runs(os.path.join(out_dir, "runs")).get((env_id, "crl_infonce"), {})
    if not runs:
        return found
    tags = ("eval/success_rate", "eval/time_at_goal", "eval/sampled_success_rate", "eval/sampled_time_at_goal")
    scalars = plots.read_scalars(next(iter(runs.values())), (*tags, "charts/SPS"))
    evals = scalars.get("eval/success_rate", {})
    if evals:
        last = max(evals)
        found["eval_env_steps"] = last
        for tag in tags:
            found[tag.split("/")[1]] = scalars.get(tag, {}).get(last)
    sps = list(scalars.get("charts/SPS", {}).values())
    if sps:
        found["sps"] = sum(sps) / len(sps)
    return found


def depth_results(out_dir: str) -> list[dict]:
    """The rows of scaling.py's table: depth, compile s, ms per gradient step, training SPS,
    env-only SPS."""
    rows = []
    for line in read_log(out_dir, "depth").splitlines():
        cells = [c.strip().replace(",", "") for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0].isdigit():
            rows.append(dict(zip(("depth", "compile_s", "ms_per_update", "sps", "env_sps"), map(float, cells[:5]))))
    return rows


def device_line() -> str:
    """The device and jax version, from a short subprocess (this process never starts JAX)."""
    probe = "import jax; d = jax.devices()[0]; print(f'{d.device_kind} ({d.platform}), jax {jax.__version__}')"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    return result.stdout.strip() or f"unknown device ({result.stderr.strip()[-200:]})"


def summary(args: Args, device: str, status: dict, env_only: dict, ant: dict, depths: list[dict]) -> str:
    def number(value, fmt="{:,.0f}"):
        return "-" if value is None else fmt.format(value)

    scale = "tiny scale (a check of the command, not a measurement)" if args.tiny else "research scale"
    env_sps, sps = env_only.get("env_only_sps"), ant.get("sps")
    lines = [
        f"{device}; {scale}",
        "",
        "| step | measure | value |",
        "|---|---|---|",
        f"| env only | {args.env_id} env-only SPS ({env_only.get('num_envs', '-')} envs) | {number(env_sps)} |",
        f"| env only | random policy success / time at goal | {number(env_only.get('success_rate'), '{:.3f}')} / "
        f"{number(env_only.get('time_at_goal'), '{:.3f}')} |",
        f"| ant | status | {status['ant']} |",
        f"| ant | compile s | {number(ant.get('compile_s'), '{:.1f}')} |",
        f"| ant | training SPS (share of env-only) | {number(sps)}"
        + (f" ({sps / env_sps:.2f})" if sps and env_sps else "")
        + " |",
        f"| ant | last evaluation at env steps | {number(ant.get('eval_env_steps'))} |",
        f"| ant | success deterministic / sampled | {number(ant.get('success_rate'), '{:.3f}')} / "
        f"{number(ant.get('sampled_success_rate'), '{:.3f}')} |",
        f"| ant | time at goal deterministic / sampled | {number(ant.get('time_at_goal'), '{:.3f}')} / "
        f"{number(ant.get('sampled_time_at_goal'), '{:.3f}')} |",
        f"| depth | status | {status['depth']} |",
    ]
    for row in depths:
        lines.append(
            f"| depth {row['depth']:.0f} ({args.depth_env_id}) | compile s, ms per gradient step, training SPS | "
            f"{row['compile_s']:.1f}, {row['ms_per_update']:.1f}, {row['sps']:,.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(args: Args) -> dict:
    device = device_line()
    name = re.sub(r"[^A-Za-z0-9]+", "_", device.split(",")[0]).strip("_").lower()
    out_dir = args.out_dir or str(ROOT / "runs" / "gpu_check" / f"{name}_{time.strftime('%Y%m%d_%H%M%S')}")
    os.makedirs(out_dir, exist_ok=True)
    ant_flags = [f"--env-id={args.env_id}", *ANT, *(ANT_TINY if args.tiny else ANT_FULL)]
    num_envs = [f for f in ant_flags if f.startswith("--num-envs=")][-1].split("=")[1]
    length = [f for f in ant_flags if f.startswith("--episode-length=")][-1].split("=")[1]
    env_only_path = os.path.join(out_dir, "env_only.json")
    status = {}
    status["env_only"], _, _ = run_step(
        "env_only",
        [
            "results/tools/random_policy.py",
            f"--env-id={args.env_id}",
            f"--num-envs={num_envs}",
            f"--episode-length={length}",
            f"--num-episodes={4 if args.tiny else 128}",
            f"--output={env_only_path}",
        ],  # fmt: skip
        args.step_timeout,
        out_dir,
    )
    run_root = os.path.join(out_dir, "runs")
    status["ant"], _, _ = run_step(
        "ant", ["algorithms/crl_infonce.py", *ant_flags, f"--run-root={run_root}"], args.ant_timeout, out_dir
    )
    depth_flags = [f"--env-id={args.depth_env_id}", *DEPTH, *(DEPTH_TINY if args.tiny else DEPTH_FULL)]
    status["depth"], _, _ = run_step(
        "depth",
        ["results/tools/scaling.py", "--depths", "4", "64", "--steps=1", "--repeats=1", "--", *depth_flags],
        args.step_timeout,
        out_dir,
    )
    env_only = json.loads(pathlib.Path(env_only_path).read_text()) if os.path.exists(env_only_path) else {}
    ant, depths = ant_results(out_dir, args.env_id), depth_results(out_dir)
    table = summary(args, device, status, env_only, ant, depths)
    result = {"device": device, "tiny": args.tiny, "status": status, "env_only": env_only, "ant": ant, "depth": depths}
    pathlib.Path(out_dir, "summary.json").write_text(json.dumps(result, indent=1) + "\n")
    pathlib.Path(out_dir, "summary.md").write_text(table)
    print(f"\nwrote {out_dir}/summary.md, summary.json and the logs\n")
    print(table)
    return result


if __name__ == "__main__":
    main(tyro.cli(Args, description=__doc__))
