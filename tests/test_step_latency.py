"""results/notes/step_latency.py at a tiny scale on CPU: every variant runs, including the `while`
child process with its own XLA_FLAGS, and each one's parameters after two gradient steps equal
today's update up to float rounding."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO


@pytest.mark.slow  # compiles every variant in two fresh processes: about 45 s
def test_step_latency_runs_every_variant_and_each_keeps_the_results():
    script = REPO / "results" / "notes" / "step_latency.py"
    variants = ["loops", "unroll1", "unroll4", "while", "two_grads", "presample"]
    command = [sys.executable, str(script), "--tiny", "--depths", "4", "--variants", *variants]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {}
    for line in done.stdout.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 7 and cells[0] == "4":
            rows[cells[1]] = cells
    assert sorted(rows) == sorted(variants), done.stdout
    for variant, (_, _, compile_s, _, ms, ratio, difference) in rows.items():
        assert float(compile_s) >= 0 and float(ms) > 0 and float(ratio) > 0, variant
        assert float(difference) < 1e-5, f"{variant} changed the parameters by {difference}"
    loops_of = {variant: int(cells[3]) for variant, cells in rows.items()}
    assert loops_of["unroll1"] < loops_of["loops"] == loops_of["while"]  # the block's four layers written out
