"""The path a reader follows from `python algorithms/crl_infonce.py` to the first gradient step,
and the line counts of the algorithm files and the harness, at any commits.

    python results/notes/layout.py --commits 7e593dc HEAD

For each commit, from its files in git (`git show COMMIT:PATH`, so the working tree does not
matter): each step of the path with its span (`end_lineno - lineno + 1` of the function in
Python's `ast`), the harness lines on the path (algorithms/run/), the harness files it visits,
and the jumps between files; then `wc -l` of every file in algorithms/ and algorithms/run/.
The path is the default run's (one seed, one device, no --resume, --eval-only or --track), as
the code calls it: written down below per commit, each step checked to exist.
"""

from __future__ import annotations

import ast
import subprocess
from dataclasses import dataclass

import tyro

# (file, function qualname) in call order; "crl_infonce.py:<main>" is the `if __name__` block
BEFORE_CONTRACT = [
    ("algorithms/crl_infonce.py", "<main>"),
    ("algorithms/run/main.py", "cli"),
    ("algorithms/run/main.py", "main"),
    ("algorithms/run/flags.py", "make_env"),
    ("algorithms/run/schedule.py", "make_schedule"),
    ("algorithms/run/main.py", "build_program"),
    ("algorithms/run/devices.py", "make_mesh"),
    ("algorithms/crl_infonce.py", "make_train"),
    ("buffers/trajectory.py", "TrajectoryBuffer.check_memory"),
    ("algorithms/run/devices.py", "seed_axis"),
    ("algorithms/run/main.py", "Run.start"),
    ("algorithms/run/files.py", "make_run_dirs"),
    ("algorithms/run/files.py", "lock_run_dir"),
    ("algorithms/run/main.py", "Run.open_logs"),
    ("algorithms/run/logs.py", "make_logs"),
    ("algorithms/run/main.py", "Run.compile"),
    ("algorithms/run/main.py", "Run.train"),
    ("algorithms/run/schedule.py", "train_until"),
    ("algorithms/crl_infonce.py", "make_chunk"),
    ("algorithms/crl_infonce.py", "make_update.update"),
]
WITH_CONTRACT = [
    ("algorithms/crl_infonce.py", "<main>"),
    ("algorithms/run/main.py", "cli"),
    ("algorithms/run/main.py", "main"),
    ("algorithms/run/environment.py", "make_env"),
    ("algorithms/run/schedule.py", "make_schedule"),
    ("algorithms/run/main.py", "build_program"),
    ("algorithms/run/devices.py", "make_mesh"),
    ("algorithms/crl_infonce.py", "make_train"),
    ("algorithms/crl_infonce.py", "make_training_step"),
    ("buffers/trajectory.py", "TrajectoryBuffer.check_memory"),
    ("algorithms/run/devices.py", "seed_axis"),
    ("algorithms/run/main.py", "Run.start"),
    ("algorithms/run/files.py", "make_run_dirs"),
    ("algorithms/run/files.py", "lock_run_dir"),
    ("algorithms/run/main.py", "Run.open_logs"),
    ("algorithms/run/logs.py", "make_logs"),
    ("algorithms/run/main.py", "Run.compile"),
    ("algorithms/run/main.py", "Run.train"),
    ("algorithms/run/main.py", "train_until"),
    ("algorithms/crl_infonce.py", "make_chunk"),
    ("algorithms/crl_infonce.py", "make_update.update"),
]


@dataclass(frozen=True)
class Args:
    commits: tuple[str, ...] = ("HEAD",)
    """commits to count (each with the path of its layout: with or without run/contract.py)"""


def git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout


def span(source: str, qualname: str) -> int:
    """Lines of the function `qualname` (dotted through classes and functions) in `source`, or of
    the `if __name__ == "__main__":` block for "<main>"."""
    tree = ast.parse(source)
    if qualname == "<main>":
        (node,) = [n for n in tree.body if isinstance(n, ast.If) and "__main__" in ast.unparse(n.test)]
        return node.end_lineno - node.lineno + 1
    nodes = tree.body
    for name in qualname.split("."):
        found = [n for n in nodes if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == name]
        if not found:
            raise SystemExit(f"{qualname} not found")
        node, nodes = found[0], found[0].body
    return node.end_lineno - node.lineno + 1


def count(commit: str) -> str:
    has_contract = "algorithms/run/contract.py" in git("ls-tree", "-r", "--name-only", commit, "algorithms/run")
    path = WITH_CONTRACT if has_contract else BEFORE_CONTRACT
    sha = git("rev-parse", "--short", commit).strip()
    lines = [f"## {commit} ({sha})", "", "| step | file | lines |", "|---|---|---:|"]
    harness, files, jumps, previous = 0, set(), 0, None
    for file, qualname in path:
        n = span(git("show", f"{commit}:{file}"), qualname)
        lines.append(f"| `{qualname}` | {file} | {n} |")
        if file.startswith("algorithms/run/"):
            harness += n
            files.add(file)
        jumps += previous is not None and file != previous
        previous = file
    lines += [
        "",
        f"{len(path)} steps; {harness} harness lines on the path in {len(files)} harness files; {jumps} jumps between files.",
        "",
        "| file | lines |",
        "|---|---:|",
    ]
    for file in sorted(git("ls-tree", "-r", "--name-only", commit, "algorithms").split()):
        if file.endswith(".py"):
            lines.append(f"| {file} | {git('show', f'{commit}:{file}').count(chr(10))} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print("\n\n".join(count(commit) for commit in tyro.cli(Args).commits))
