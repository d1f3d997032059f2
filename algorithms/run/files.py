"""Files of a run: its directories, checkpoints (the whole training state) and saved models.

    save_tree("run/model.eqx", header, tree)                  # any pytree, one JSON header
    header = read_header("run/model.eqx", kind="model")      # checks the header's fields
    tree = load_tree("run/model.eqx", like)                   # `like` from jax.eval_shape
    save_checkpoint("run/checkpoints", step, header, carry)   # keeps the two newest
    carry, header = load_checkpoint("run/checkpoints", like)  # the newest
    dirs = make_run_dirs(args, "crl_infonce")                # one per seed, never reused
    record, first = read_run("runs/NAME", algorithm)          # a run's args.json
    args = resumed_args(cli_args, algorithm)                  # --resume: the run's own flags

A file is one JSON header line, the leaves in Equinox's serialisation, then `\\nsha256:` and
the 64 hex digits of the leaf bytes' sha256. Writes go to a temp file that is synced and then
renamed, so a crash never leaves a half-written file under the final name; reads check the
checksum before deserialising, then every leaf's shape and dtype against a skeleton
(`jax.eval_shape` of the init function is enough). A read that fails raises `CheckpointError`
with a one-line reason. A write that fails (a full disk, a quota, a read-only file system; also
the ENOSPC that `eqx.tree_serialise_leaves` wraps in its own error) raises `WriteError` naming
the file and the reason, after removing the temp file: no partial file is ever left.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import os
import time
from typing import Any

import equinox as eqx

from algorithms.run.flags import ConfigError, require

_MARK = b"\nsha256:"
_FOOTER = len(_MARK) + 64


class CheckpointError(ValueError):
    """A run directory, checkpoint or model file that cannot be used; the message says why."""


class _Hashing:
    """Writes through to a file and feeds the same bytes to a sha256."""

    def __init__(self, file, digest):
        self.file, self.digest = file, digest

    def write(self, data):
        self.digest.update(data)
        return self.file.write(data)


class WriteError(OSError):
    """A file of a run that could not be written (a full disk or quota, a read-only file system,
    an I/O error): no partial file is left and the file it would have replaced is untouched.
    The message names the file and the reason, in one line."""

    def __init__(self, errno: int | None, message: str):
        super().__init__(errno, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def os_error_in(error: BaseException) -> OSError | None:
    """The OSError behind `error`, following its causes: libraries wrap what the file system
    said (`eqx.tree_serialise_leaves` raises a TreePathError from the ENOSPC of one leaf)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, OSError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def write_error(path: str, error: BaseException, doing: str = "write") -> WriteError:
    """WriteError for `path` from the OSError behind `error`: "could not write PATH: reason"."""
    if isinstance(error, WriteError):
        return error
    cause = os_error_in(error)
    number = cause.errno if cause is not None else None
    reason = os.strerror(number) if number else str(cause or error)
    return WriteError(number, f"could not {doing} {path}: {reason}")


def remove_quietly(path: str) -> None:
    """Delete `path` if it is there; a failure is ignored (it only ever cleans up)."""
    try:
        os.remove(path)
    except OSError:
        pass


def save_tree(path: str, header: dict, tree: Any) -> None:
    """Write `header` (JSON-serialisable) and the leaves of `tree` atomically to `path`: into a
    temporary file, synced, then renamed over `path`. If writing fails, the temporary file is
    removed, whatever `path` held is left as it was, and `WriteError` says why."""
    tmp, digest = f"{path}.tmp", hashlib.sha256()
    try:
        with open(tmp, "wb") as f:
            f.write(json.dumps(header).encode() + b"\n")
            eqx.tree_serialise_leaves(_Hashing(f, digest), tree)
            f.write(_MARK + digest.hexdigest().encode())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except Exception as error:
        remove_quietly(tmp)
        if os_error_in(error) is None:
            raise  # not the file system's: a bug, with its traceback
        raise write_error(path, error) from None


def write_json(path: str, record: Any) -> None:
    """`record` as indented JSON in `path`, atomically as `save_tree` writes (WriteError)."""
    tmp = f"{path}.tmp"
    try:
        with open(tmp, "w") as f:
            json.dump(record, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as error:
        remove_quietly(tmp)
        raise write_error(path, error) from None


def read_header(path: str, **expected: Any) -> dict:
    """The header of `path`; every keyword must equal the header's field of that name."""
    try:
        with open(path, "rb") as f:
            try:
                header = json.loads(f.readline())
            except ValueError:
                raise ValueError("it is not a model or checkpoint file of this project") from None
        if not isinstance(header, dict):
            raise ValueError("it is not a model or checkpoint file of this project")
        for name, value in expected.items():
            if header.get(name) != value:
                raise ValueError(f"its {name} is {header.get(name)!r}, not {value!r}")
        return header
    except (OSError, ValueError) as error:
        raise CheckpointError(f"cannot use {path}: {error}.") from None


def load_tree(path: str, like: Any) -> Any:
    """The leaves stored in `path`, in the structure of `like`, after checking the checksum
    and that every leaf has the shape and dtype of `like`'s."""

    def leaf(f, x):
        value = eqx.default_deserialise_filter_spec(f, x)
        if hasattr(x, "shape") and (value.shape != x.shape or value.dtype != x.dtype):
            raise ValueError(
                f"it holds a {value.dtype}{list(value.shape)} leaf where {x.dtype}{list(x.shape)} is expected"
            )
        return value

    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            f.readline()
            start, digest = f.tell(), hashlib.sha256()
            for offset in range(start, size - _FOOTER, 2**24):
                digest.update(f.read(min(2**24, size - _FOOTER - offset)))
            if f.read() != _MARK + digest.hexdigest().encode():
                raise ValueError("its checksum does not match (truncated or damaged)")
            f.seek(start)
            tree = eqx.tree_deserialise_leaves(f, like, filter_spec=leaf)
            if f.tell() != size - _FOOTER:
                raise ValueError("it holds more data than this configuration's networks")
        return tree
    except (OSError, ValueError, EOFError) as error:
        raise CheckpointError(f"cannot load {path}: {error}.") from None


def save_checkpoint(folder: str, step: int, header: dict, tree: Any, keep: int = 2) -> str:
    """Write `folder/step_{step:09d}.ckpt` and delete all but the `keep` newest checkpoints
    (only after the new one is on disk: a failed write raises `WriteError` and deletes none)."""
    path = os.path.join(folder, f"step_{step:09d}.ckpt")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        raise write_error(path, error) from None
    save_tree(path, {**header, "step": step}, tree)
    for old in sorted(glob.glob(os.path.join(folder, "step_*.ckpt")))[:-keep]:
        remove_quietly(old)
    return path


def newest_checkpoint(folder: str) -> str | None:
    """The path of the newest checkpoint in `folder`, or None."""
    paths = sorted(glob.glob(os.path.join(folder, "step_*.ckpt")))
    return paths[-1] if paths else None


def load_checkpoint(folder: str, like: Any, **expected: Any) -> tuple[Any, dict]:
    """(tree, header) of the newest checkpoint in `folder`. If it cannot be read, the error
    names the older one to fall back to."""
    paths = sorted(glob.glob(os.path.join(folder, "step_*.ckpt")))
    if not paths:
        raise CheckpointError(f"no checkpoint in {folder}")
    try:
        header = read_header(paths[-1], **expected)
        return load_tree(paths[-1], like), header
    except CheckpointError as error:
        older = f"; delete it to resume from {paths[-2]}" if len(paths) > 1 else ""
        raise CheckpointError(f"{error}{older}") from None


# ---------------------------------------------------------------------- run directories
class RunInUse(CheckpointError):
    """Another live process holds a run directory's lock; the message names it."""


_LOCKS: dict[str, int] = {}  # lock file -> its open descriptor, for as long as this process holds it
LOCK_FILE = "writer.lock"


def lock_run_dir(run_dir: str) -> None:
    """Make this process the one writer of `run_dir` until `unlock_run_dirs` (or its end): an
    exclusive advisory lock (flock) on `run_dir/writer.lock`, which records the holder (host,
    process id, since when). The operating system frees the lock when the process ends, however
    it ends, so a killed run leaves nothing to clean up. Raises `RunInUse`, naming the holder,
    if another process has it, and `WriteError` if the file cannot be written (a read-only file
    system, a full disk). On a network file system the lock holds across machines only where
    the client passes flock on to the server (Linux NFS does, as a POSIX lock; check Lustre's
    `flock` mount option)."""
    import fcntl
    import socket

    path = os.path.join(run_dir, LOCK_FILE)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise write_error(path, error) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.read(fd, 4096).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise RunInUse(
            f"{run_dir} is being written by {holder}: one process writes a run directory at a time. "
            "Wait for that run to end (or stop it) and then resume; a process that was killed "
            "frees the directory by itself."
        ) from None
    since = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()} on host {socket.gethostname()} since {since}\n".encode(), 0)
    except OSError as error:
        os.close(fd)
        raise write_error(path, error) from None
    _LOCKS[path] = fd


def unlock_run_dirs() -> None:
    """Free the run directories this process holds (a run calls it when it ends, however it
    ends short of being killed, so that the same process can resume them). Each writer.lock
    stays: it is not the lock (the operating system's flock, gone with the process that held
    it) but the name of the directory's last writer, and deleting it would change a directory
    that a failed --resume promises to leave as it was."""
    while _LOCKS:
        os.close(_LOCKS.popitem()[1])


def make_run_dirs(args: Any, algorithm: str) -> list[str]:
    """One directory per seed of a run's flags (an algorithm's Args), named as CleanRL names
    them: {run_root}/{env_id}__{exp_name}__{seed}__{unix_time}. Each holds an `args.json`: the
    algorithm, the flags, its seed and "run_names" (every directory's name, so that any of them
    leads to the others). A name that is taken gets a suffix: a directory is never reused. If
    one cannot be made or written (WriteError), none of them is left behind."""
    import shutil

    seeds, stamp = range(args.seed, args.seed + args.num_seeds), int(time.time())
    root, names = args.run_root, [f"{args.env_id}__{args.exp_name}__{seed}__{stamp}" for seed in seeds]
    records = [{"algorithm": algorithm, "args": dataclasses.asdict(args), "seed": seed} for seed in seeds]
    dirs = []
    try:
        for name in names:
            base = path = os.path.join(root, name)
            while os.path.exists(path):
                path = f"{base}_{len(dirs) + 1}_{time.time_ns() % 10**6}"
            try:
                os.makedirs(path)
            except OSError as error:
                raise write_error(path, error, doing="create") from None
            dirs.append(path)
        run_names = [os.path.basename(d) for d in dirs]
        for run_dir, record in zip(dirs, records):
            write_json(os.path.join(run_dir, "args.json"), {**record, "run_names": run_names})
    except WriteError:
        for run_dir in dirs:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return dirs


def read_run(run_dir: str, algorithm: str) -> tuple[dict, str]:
    """(the record in `run_dir/args.json`, the path of the run's first directory) of a run of
    `algorithm`; raises CheckpointError saying why it is not one."""
    try:
        with open(os.path.join(run_dir, "args.json")) as f:
            record = json.load(f)
        if record["algorithm"] != algorithm:
            raise ValueError(f"it is a run of {record['algorithm']}.py")
        return record, os.path.join(os.path.dirname(os.path.normpath(run_dir)), record["run_names"][0])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"{run_dir} is not a run directory of {algorithm}.py ({error})") from None


def resumed_args(cli, algorithm: str):
    """The flags of the run in `cli.resume` (a run of `algorithm`, as an instance of `cli`'s
    class); flags given on the command line with --resume must agree with them, except those
    its `Args.resume_may_change` names (algorithms/run/contract.py), whose values do not change
    the results."""
    Args = type(cli)
    try:
        record, first = read_run(cli.resume, algorithm)
        args = dataclasses.replace(Args(**record["args"]), resume=first)
    except (CheckpointError, ConfigError, TypeError) as error:
        raise ConfigError(f"--resume: {error}.") from None
    resumable = os.path.normpath(first) == os.path.normpath(cli.resume)
    require(resumable, f"--resume {cli.resume}: this seed belongs to a --num-seeds run; resume {first}.")
    free = list(Args.resume_may_change)
    keep = ("resume", *free)
    given = [
        f.name
        for f in dataclasses.fields(Args)
        if getattr(cli, f.name) != getattr(Args(), f.name) and f.name not in keep
    ]
    changed = [f"--{name.replace('_', '-')}" for name in given if getattr(cli, name) != getattr(args, name)]
    require(not changed, f"--resume continues the run with its own flags; drop {', '.join(changed)}.")
    return dataclasses.replace(args, **{name: getattr(cli, name) for name in free})
