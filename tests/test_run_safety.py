"""A run on a shared cluster (algorithms/run/): one writer per run directory, a clean stop on
SIGTERM and Ctrl-C that resumes to the same result, and a full disk that loses nothing."""

from __future__ import annotations

import errno
import glob
import os
import signal
import subprocess
import sys

import equinox as eqx
import jax.numpy as jnp
import pytest
from conftest import REPO, as_flags, load_algorithm, tiny
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from algorithms.run import files

SCRIPT = str(REPO / "algorithms" / "crl_infonce.py")
# 600 training steps of 40 env steps (a few seconds of training): a signal sent when the run
# says it has compiled arrives while it trains
LONG = {"episode_length": 20, "updates_per_rollout": 8, "total_timesteps": 24000, "num_evals": 3}


def payload(path: str) -> bytes:
    """A file's leaves without its header line (which holds flags and times that differ)."""
    data = open(path, "rb").read()
    return data[data.index(b"\n") + 1 :]


def start(flags: dict, root, *extra: str) -> subprocess.Popen:
    command = [sys.executable, SCRIPT, *as_flags(flags), f"--run-root={root}", *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def signal_after_compiling(process: subprocess.Popen, signum: int) -> tuple[int, str, str]:
    """Send `signum` once the run prints that it has compiled; (exit code, stdout, stderr)."""
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("compiled training chunk"):
            process.send_signal(signum)
            break
    out, err = process.communicate(timeout=600)
    return process.returncode, "".join(lines) + out, err


def scalars(run_dir: str, tag: str) -> list[tuple[int, float]]:
    events = EventAccumulator(run_dir, size_guidance={"scalars": 0})
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)]


# ------------------------------------------------------------------ one writer per run directory
def test_a_second_writer_of_a_live_run_exits_2_naming_the_holder(tmp_path):
    """A process holds the run directory's lock (as a live run does); --resume of that run
    exits 2 before compiling, names the holder, and writes nothing. Once the holder is killed
    the lock is free again, with nothing to clean up."""
    module = load_algorithm("crl_infonce")
    (run_dir,) = files.make_run_dirs(module.Args(**tiny("crl_infonce"), run_root=str(tmp_path)), "crl_infonce")
    hold = f"from algorithms.run import files; files.lock_run_dir({run_dir!r}); print('locked', flush=True); input()"
    holder = subprocess.Popen([sys.executable, "-c", hold], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = sorted(os.listdir(run_dir))
        command = [sys.executable, SCRIPT, f"--resume={run_dir}"]
        second = subprocess.run(command, capture_output=True, text=True, timeout=600)
        assert second.returncode == 2, second.stderr[-2000:]
        assert f"being written by process {holder.pid} on host" in second.stderr and "since" in second.stderr
        assert "Traceback" not in second.stderr and "compiled" not in second.stdout
        assert sorted(os.listdir(run_dir)) == before
    finally:
        holder.kill()
        holder.wait()
    check = f"from algorithms.run import files; files.lock_run_dir({run_dir!r}); print('free')"
    freed = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120)
    assert freed.stdout.strip() == "free", freed.stderr[-2000:]


# ------------------------------------------------------------------ SIGTERM and Ctrl-C
@pytest.fixture(scope="module")
def stopped_and_resumed(tmp_path_factory):
    """The same run uninterrupted, and stopped by SIGTERM while training and then resumed."""
    root = tmp_path_factory.mktemp("stop")
    flags = tiny("crl_infonce", **LONG)
    whole = start(flags, root / "whole", "--save-model")
    assert whole.wait(timeout=900) == 0, whole.stderr.read()[-3000:]
    code, out, err = signal_after_compiling(start(flags, root / "stopped", "--save-model"), signal.SIGTERM)
    (stopped,) = glob.glob(str(root / "stopped" / "*"))
    checkpoints = sorted(os.listdir(os.path.join(stopped, "checkpoints")))
    finished_before_resume = os.path.exists(os.path.join(stopped, "crl_infonce.eqx"))
    command = [sys.executable, SCRIPT, f"--resume={stopped}"]
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    (whole_dir,) = glob.glob(str(root / "whole" / "*"))
    return dict(
        code=code,
        out=out,
        err=err,
        whole=whole_dir,
        stopped=stopped,
        checkpoints=checkpoints,
        finished_before_resume=finished_before_resume,
    )


@pytest.mark.slow  # three fresh processes
def test_sigterm_writes_a_checkpoint_says_how_to_resume_and_the_resumed_run_equals_an_uninterrupted_one(
    stopped_and_resumed,
):
    r = stopped_and_resumed
    assert r["code"] == 128 + signal.SIGTERM, r["err"][-3000:]
    assert "SIGTERM: stopping after the current training step" in r["err"]
    assert f"Continue with: python algorithms/crl_infonce.py --resume {r['stopped']}" in r["out"]
    assert len(r["checkpoints"]) == 1 and r["checkpoints"][0] != "step_000000600.ckpt"  # stopped part-way
    assert not r["finished_before_resume"]
    name = "crl_infonce.eqx"
    assert payload(os.path.join(r["whole"], name)) == payload(os.path.join(r["stopped"], name))
    for tag in ("eval/success_rate", "eval/sampled_success_rate", "eval/final_distance"):
        assert scalars(r["whole"], tag) == scalars(r["stopped"], tag)


@pytest.mark.slow  # a fresh process
def test_ctrl_c_without_checkpoint_on_stop_exits_130_and_says_nothing_can_be_resumed(tmp_path):
    flags = tiny("crl_infonce", **LONG)
    code, out, err = signal_after_compiling(start(flags, tmp_path, "--no-checkpoint-on-stop"), signal.SIGINT)
    assert code == 128 + signal.SIGINT, err[-3000:]
    assert "no checkpoint was written (--no-checkpoint-on-stop), nothing to resume" in out
    assert "Traceback" not in err
    assert not glob.glob(str(tmp_path / "*" / "checkpoints" / "*"))


# ------------------------------------------------------------------ a full disk
def test_a_failed_checkpoint_write_leaves_the_previous_one_intact_and_loadable(tmp_path, monkeypatch):
    """ENOSPC half-way through a checkpoint: WriteError says so in one line, the partial file
    is gone, and the previous checkpoints are neither damaged nor deleted."""
    folder = str(tmp_path / "checkpoints")
    tree = {"w": jnp.arange(1000.0), "b": jnp.ones(3)}
    files.save_checkpoint(folder, 1, {"kind": "checkpoint"}, tree)
    files.save_checkpoint(folder, 2, {"kind": "checkpoint"}, tree)
    real = eqx.tree_serialise_leaves

    def full_disk(file, tree):
        file.write(b"x" * 100)  # part of the file reached the disk
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(eqx, "tree_serialise_leaves", full_disk)
    with pytest.raises(files.WriteError, match="could not write .*step_000000003.ckpt: No space left on device"):
        files.save_checkpoint(folder, 3, {"kind": "checkpoint"}, {"w": jnp.zeros(1000), "b": jnp.zeros(3)})
    monkeypatch.setattr(eqx, "tree_serialise_leaves", real)
    assert sorted(os.listdir(folder)) == ["step_000000001.ckpt", "step_000000002.ckpt"]
    loaded, header = files.load_checkpoint(folder, tree)
    assert header["step"] == 2 and bool(jnp.all(loaded["w"] == tree["w"]))


def test_a_run_whose_checkpoint_fails_goes_on_and_one_whose_model_fails_stops(tmp_path, monkeypatch, capsys):
    """In a run, the first checkpoint write fails (a full disk): one line on stderr, training
    goes on and the next checkpoint is written. A model that cannot be written stops the run
    with WriteError (exit 2 from the command line) that says how to write it again."""
    module = load_algorithm("crl_infonce")
    save_tree, calls = files.save_tree, []

    def flaky(path, header, tree):
        calls.append(path)
        if len(calls) == 1 or path.endswith(".eqx"):
            raise files.WriteError(errno.ENOSPC, f"could not write {path}: No space left on device")
        return save_tree(path, header, tree)

    monkeypatch.setattr(files, "save_tree", flaky)
    flags = dict(total_timesteps=400, num_evals=2, checkpoint_every=200, save_model=True, run_root=str(tmp_path))
    with pytest.raises(files.WriteError, match="the model was not saved: .*--resume"):
        module.main(module.Args(**tiny("crl_infonce"), **flags))
    err = capsys.readouterr().err
    assert err.count("checkpoint not written, the previous one is kept") == 1
    (run_dir,) = glob.glob(str(tmp_path / "*"))
    assert os.listdir(os.path.join(run_dir, "checkpoints")) == ["step_000000010.ckpt"]  # the second of two
    assert not glob.glob(os.path.join(run_dir, "**", "*.tmp"), recursive=True)
