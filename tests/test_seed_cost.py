"""--num-seeds: K seeds in one compiled program, what it costs (results/tools/seed_cost.py), and a K
whose buffers do not fit refused before anything compiles."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO, user_process_env


def test_a_num_seeds_whose_buffers_do_not_fit_is_refused_before_compiling(tmp_path):
    """ant at 1024 envs needs about 2.9 GB of buffer per seed: 64 seeds fit on no machine that
    runs this suite, and the run says how many do, with exit 2 and no traceback."""
    command = [
        sys.executable,
        str(REPO / "algorithms" / "crl_infonce.py"),
        "--env-id=ant",
        "--num-envs=1024",
        "--num-seeds=64",
        "--total-timesteps=10000000",
        f"--run-root={tmp_path}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "x 64 seeds" in result.stderr and "--num-seeds (at most" in result.stderr
    assert "Traceback" not in result.stderr and "compiled" not in result.stdout
    assert not list(tmp_path.iterdir())  # no run directory


@pytest.mark.slow
def test_seed_cost_checks_the_compiled_program_and_times_each_k_at_a_toy_scale(tmp_path):
    """The chunk for two seeds has the loops of the one for one seed (nothing per seed in
    sequence), and both runs end with a row of timings. With a user's XLA flags: the suite's
    (XLA's older CPU emitters, which an arm or pusher run also gets) lower the buffer's
    per-seed writes as a loop over the seeds (results/notes/seed_cost.md)."""
    output = tmp_path / "rows.json"
    command = [
        sys.executable,
        str(REPO / "results" / "tools" / "seed_cost.py"),
        "--tiny",
        "--env-id=reacher",
        "--seeds",
        "1",
        "2",
        f"--output={output}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=REPO, env=user_process_env())
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "loops at 2 seeds against" in result.stdout and "trip counts equal" in result.stdout
    rows = json.loads(output.read_text())
    assert [(r["seeds"], r["status"]) for r in rows] == [(1, "ok"), (2, "ok")]
    for row in rows:
        assert 0 < row["compile_s"] < row["wall_s"] and row["sps_all_seeds"] == row["seeds"] * row["sps_per_seed"]
    table = result.stdout[result.stdout.index("| seeds K |") :]
    assert table.count("\n| ") == 2  # after the header, one row per K
