"""What the repository says about itself, checked: the blocks the algorithm files mark as shared
are byte-identical in every file that claims them, the algorithm files keep to 120 columns, and
the README's and docs' commands name flags the code accepts and run directories it makes.
No JAX, no compile: these read text (and the algorithm files' flags)."""

from __future__ import annotations

import dataclasses
import re
import shlex

import pytest
from conftest import ALGORITHMS, REPO, load_algorithm

BEGIN = re.compile(r"^ *# >>> shared: (?P<name>.+?) \| (?P<files>[\w ]+)$", re.MULTILINE)
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def shared_blocks(source: str) -> dict[str, tuple[tuple[str, ...], str]]:
    """name -> (the files that claim the block, its text between the markers) of one file's
    source; a begin marker without its end is an error."""
    blocks = {}
    for begin in BEGIN.finditer(source):
        name = begin["name"]
        end = re.compile(rf"^ *# <<< shared: {re.escape(name)}$", re.MULTILINE).search(source, begin.end())
        assert end is not None, f"the shared block {name!r} has no end marker"
        assert name not in blocks, f"two shared blocks named {name!r}"
        blocks[name] = (tuple(begin["files"].split()), source[begin.end() : end.start()])
    return blocks


def differences(sources: dict[str, str]) -> list[str]:
    """What breaks the shared blocks' claim, over files {name: source}: a block missing from a
    file it names, named by different lists of files, or not byte-identical to the first."""
    blocks = {file: shared_blocks(source) for file, source in sources.items()}
    found = []
    for file, by_name in blocks.items():
        for name, (claimants, text) in by_name.items():
            for other in claimants:
                if other not in blocks:
                    found.append(f"{file}: block {name!r} names {other}, which is not an algorithm file")
                elif name not in blocks[other]:
                    found.append(f"{file}: block {name!r} names {other}, which lacks it")
                elif blocks[other][name] != (claimants, text):
                    found.append(f"{file} and {other}: block {name!r} differs")
    return found


def algorithm_sources() -> dict[str, str]:
    return {
        path.stem: path.read_text()
        for path in sorted((REPO / "algorithms").glob("*.py"))
        if "\nALGORITHM = " in path.read_text()
    }


def test_shared_blocks_are_byte_identical_in_the_files_that_claim_them():
    sources = algorithm_sources()
    assert set(sources) == set(ALGORITHMS)
    counts = {file: len(shared_blocks(source)) for file, source in sources.items()}
    assert all(count >= 5 for count in counts.values()), counts  # flags, optimiser, step, evaluation
    assert differences(sources) == []


def test_the_shared_block_check_finds_an_edited_copy_and_a_missing_block():
    sources = algorithm_sources()
    edited = dict(sources, td3_her=sources["td3_her"].replace("def make_rollout(", "def make_rollout_(", 1))
    others = sorted(set(sources) - {"td3_her"})
    expected = [f"{a} and td3_her: block 'training step' differs" for a in others]
    expected += [f"td3_her and {b}: block 'training step' differs" for b in others]
    assert sorted(differences(edited)) == sorted(expected)
    begin = "# >>> shared: make_optimizer |"
    unmarked = sources["sac_her"].replace(begin, "# make_optimizer |", 1)
    found = differences(dict(sources, sac_her=unmarked))
    assert found and all("which lacks it" in line and "sac_her" in line for line in found)


def test_no_line_of_an_algorithm_file_is_over_120_columns():
    for path in sorted((REPO / "algorithms").glob("*.py")):
        long = [i for i, line in enumerate(path.read_text().splitlines(), 1) if len(line) > 120]
        assert not long, f"{path.name}: lines {long} are over 120 columns"


# ------------------------------------------------------------------ the docs
def code_lines(text: str) -> list[str]:
    """The lines of the fenced code blocks, with backslash continuations joined."""
    lines = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.DOTALL):
        lines += block.replace("\\\n", " ").splitlines()
    return lines


def flags_of(module) -> set[str]:
    """The command-line flags of an algorithm file's Args, as tyro spells them."""
    flags = set()
    for field in dataclasses.fields(module.Args):
        flag = "--" + field.name.replace("_", "-")
        flags.add(flag)
        if isinstance(field.default, bool):
            flags.add("--no-" + flag[2:])
    return flags


def test_the_docs_commands_give_each_algorithm_file_only_its_own_flags():
    """Every `python algorithms/NAME.py ...` in the README's and docs' code blocks uses only
    flags NAME.py accepts."""
    seen = 0
    for doc in DOCS:
        for line in code_lines(doc.read_text()):
            found = re.search(r"python (?:-m \S+ )?algorithms/(\w+)\.py(.*)", line)
            if found is None:
                continue
            seen += 1
            accepted = flags_of(load_algorithm(found[1]))
            words = shlex.split(found[2].split("#")[0])
            given = {w.split("=")[0] for w in words if w.startswith("--")}
            assert given <= accepted, f"{doc.name}: `{line.strip()}` gives {sorted(given - accepted)}"
    assert seen >= 10


def test_every_run_directory_in_the_docs_is_one_its_command_makes():
    """A `runs/ENV__EXP__SEED__TIME` in the docs follows a command of the same block that makes
    it: an algorithm file whose exp_name is EXP (its name, or --exp-name) with --env-id ENV
    (as run directories are named, algorithms/run/files.py)."""
    checked = 0
    for doc in DOCS:
        for block in re.findall(r"```[a-z]*\n(.*?)```", doc.read_text(), re.DOTALL):
            made = set()
            for line in block.replace("\\\n", " ").splitlines():
                command = re.search(r"python algorithms/(\w+)\.py(.*)", line)
                if command is not None and "--resume" not in command[2]:
                    words = shlex.split(command[2].split("#")[0])
                    value = dict(zip(words, words[1:]))
                    made.add((value.get("--env-id", "reacher"), value.get("--exp-name", command[1])))
                for path in re.findall(r"runs/([\w.-]+?)__([\w.-]+?)__\d+__\d+", line):
                    checked += 1
                    assert path in made, f"{doc.name}: runs/{path[0]}__{path[1]}__... is made by no command before it"
    assert checked >= 1


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_flag_in_the_docs_is_one_the_code_accepts(doc):
    """Every --flag the README and docs mention is a flag of an algorithm file or of a script in
    the repository (a results/ script, `python -m envs`), or one of the few of other tools."""
    accepted = set().union(*(flags_of(load_algorithm(name)) for name in ALGORITHMS))
    for script in [*(REPO / "results").rglob("*.py"), REPO / "envs" / "__main__.py"]:
        source = script.read_text()
        accepted |= {"--" + name.replace("_", "-") for name in re.findall(r"^    (\w+): ", source, re.MULTILINE)}
        accepted |= set(re.findall(r"add_argument\(\s*\"(--[\w-]+)\"", source))
        accepted |= {"--no-" + name.replace("_", "-") for name in re.findall(r"^    (\w+): bool", source, re.MULTILINE)}
    others = {"--help", "--logdir", "--check", "--signal"}  # tyro, tensorboard, ruff, timeout
    xla = re.compile(r"--xla_\w+")  # XLA's flags (XLA_FLAGS)
    text = doc.read_text()
    mentioned = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", text)) - {m.split("_")[0] for m in xla.findall(text)}
    unknown = sorted(mentioned - accepted - others)
    assert not unknown, f"{doc.name} mentions {unknown}, which no script here accepts"
