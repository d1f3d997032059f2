"""Training throughput beside JaxGCRL's own CRL: the same task and config on the same machine.

    python results/notes/peer_speed.py --env-id ant --training-steps 2 --pairs 2

JaxGCRL must be installed in its own virtual environment under `--peer-root`: a checkout of its
commit 6dccab2 in `{peer_root}/jaxgcrl` and a venv with its `uv.lock` pins in `{peer_root}/venv`
(CPU jaxlib). It is run as its README says (`run.py crl ...`), never imported.

Each pair runs, one after the other (nothing else should run on the machine):

* ours: `results/tools/throughput.py --algorithm crl_infonce`, whose "training" column times the
  compiled training chunk (rollout, buffer, gradient steps) after the buffer holds
  `learning_starts` rows, excluding compile time; median of 3 calls of `--training-steps`;
* JaxGCRL: `run.py crl` with two epochs of `--training-steps` training steps each after its
  1000-step prefill; its printed `training/sps` of the second epoch (the first one compiles).

Both use 256 envs, 62-step rollouts, batch 256 and one gradient step per 15.9 env steps (both
defaults), and the episode length given. The table gives each pair's SPS and their ratio, and
the median ratio last. Each run's output is written to `--log-dir`.
"""

from __future__ import annotations

import os
import pathlib
import re
import statistics
import subprocess
import sys
from dataclasses import dataclass

import tyro

ROOT = pathlib.Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Args:
    env_id: str = "ant"
    """the env (its name in both codebases)"""
    episode_length: int = 1001
    """JaxGCRL's default; ours is given the same"""
    num_envs: int = 256
    """training envs in both"""
    training_steps: int = 2
    """training steps timed per call (ours) and per epoch (JaxGCRL)"""
    pairs: int = 2
    """how many times to run the two, alternating"""
    peer_root: str = "~/.cache/peer"
    """where JaxGCRL's checkout (jaxgcrl/) and venv (venv/) are"""
    log_dir: str = "/tmp/peer_speed"
    """each run's printed output goes here"""
    timeout: int = 3600
    """seconds each run may take"""


UNROLL_LENGTH = 62  # both codebases' default rollout length
PREFILL_STEPS = 1000  # both codebases' default rows per env before the first gradient step


def run_logged(command: list[str], log: pathlib.Path, timeout: int, **kwargs) -> str:
    """Runs `command`, writes its output to `log` and returns it; a failure or a run past
    `timeout` seconds stops the measurement with one line saying where the output is."""
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)
    except subprocess.TimeoutExpired as stopped:
        output = (stopped.stdout or b"") + (stopped.stderr or b"")
        log.write_text(output.decode(errors="replace") if isinstance(output, bytes) else output)
        sys.exit(f"error: {' '.join(command[:3])} ... ran past --timeout {timeout} s; its output is in {log}")
    log.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        sys.exit(f"error: {' '.join(command[:3])} ... exited {result.returncode}; its output is in {log}")
    return result.stdout + result.stderr


def ours(args: Args, log: pathlib.Path) -> tuple[float, float]:
    """Our training SPS and env-only SPS (random actions, same envs and rollout length)."""
    command = [sys.executable, str(ROOT / "results" / "tools" / "throughput.py"), "--algorithm", "crl_infonce"]
    command += ["--env-id", args.env_id, f"--episode-length={args.episode_length}", f"--num-envs={args.num_envs}"]
    command += ["--steps", str(args.training_steps), "--repeats", "3"]
    text = run_logged(command, log, args.timeout)
    header, row = [line.split("|")[1:-1] for line in text.splitlines() if line.startswith("| ")][:2]
    names = [cell.strip() for cell in header]
    if row[names.index("env")].strip() != args.env_id:
        sys.exit(f"error: throughput.py measured {row[names.index('env')].strip()}, not {args.env_id}; see {log}")
    return tuple(float(row[names.index(name)].replace(",", "")) for name in ("training SPS", "env-only SPS"))


def jaxgcrl(args: Args, peer_root: pathlib.Path, log: pathlib.Path) -> float:
    per_epoch = args.training_steps * args.num_envs * UNROLL_LENGTH
    total = PREFILL_STEPS * args.num_envs + 2 * per_epoch  # an exact multiple, as its assertion wants
    command = [str(peer_root / "venv" / "bin" / "python"), "run.py", "crl", "--env", args.env_id, "--seed", "1"]
    command += ["--total-env-steps", str(total), "--num-evals", "2", "--num-envs", str(args.num_envs)]
    command += ["--episode-length", str(args.episode_length), "--num-eval-envs", "16", "--no-log-wandb"]
    command += ["--exp-name", "peer_speed"]
    env = {**os.environ, "WANDB_MODE": "disabled"}
    text = run_logged(command, log, args.timeout, cwd=peer_root / "jaxgcrl", env=env)
    rates = [float(x) for x in re.findall(r"training/sps: ([0-9.]+)", text)]
    if len(rates) != 2:
        sys.exit(f"error: expected two training/sps lines from JaxGCRL, found {len(rates)}; see {log}")
    return rates[1]


def main(args: Args) -> None:
    peer_root = pathlib.Path(os.path.expanduser(args.peer_root))
    if not (peer_root / "jaxgcrl" / "run.py").exists() or not (peer_root / "venv" / "bin" / "python").exists():
        print(
            f"error: no JaxGCRL installation under {peer_root} (expected jaxgcrl/run.py and venv/bin/python). "
            "Install JaxGCRL's commit 6dccab2 there with its own pinned dependencies, or pass --peer-root.",
            file=sys.stderr,
        )
        sys.exit(2)
    log_dir = pathlib.Path(args.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        "| pair | env-only SPS | ours (training SPS) | JaxGCRL 6dccab2 (training SPS) | ours / JaxGCRL |",
        "|---:|---:|---:|---:|---:|",
    ]
    ratios = []
    for pair in range(1, args.pairs + 1):
        mine, env_only = ours(args, log_dir / f"ours_{pair}.log")
        theirs = jaxgcrl(args, peer_root, log_dir / f"jaxgcrl_{pair}.log")
        ratios.append(mine / theirs)
        lines.append(f"| {pair} | {env_only:,.0f} | {mine:,.0f} | {theirs:,.0f} | {ratios[-1]:.2f} |")
        print(lines[-1], file=sys.stderr, flush=True)
    lines.append(f"\nmedian ratio {statistics.median(ratios):.2f} over {args.pairs} pair(s); {args.env_id}, ")
    lines[-1] += f"{args.num_envs} envs, episode length {args.episode_length}, {args.training_steps} training steps"
    print("\n".join(lines))


if __name__ == "__main__":
    main(tyro.cli(Args, description=__doc__))
