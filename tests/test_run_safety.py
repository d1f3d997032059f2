"""A run on a shared cluster (algorithms/run/): one writer per run directory, a clean stop on
SIGTERM and Ctrl-C that resumes to the same result, and a full or read-only disk that stops the
run with exit 2, one line and nothing lost.

The disk tests use a real small file system: a size-limited tmpfs mounted in a private mount
namespace (`unshare -m`), which needs root (CI runs as root); elsewhere they skip and say why.
Each runs a shell script in that namespace, where the tmpfs is visible, and checks what it
printed and what it copied out."""

from __future__ import annotations

import functools
import glob
import hashlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys

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


# ------------------------------------------------------------------ a full or read-only disk
@functools.cache
def small_disks_unavailable() -> str | None:
    """Why a tmpfs cannot be mounted in a private mount namespace here (None: it can)."""
    if os.geteuid() != 0:
        return "mounting a small tmpfs in a private mount namespace (unshare -m) needs root"
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=4k tmpfs /mnt && umount /mnt"],
        capture_output=True,
        text=True,
    )
    return None if probe.returncode == 0 else f"unshare -m + mount -t tmpfs failed: {probe.stderr.strip()}"


def on_small_disk(disk, size: str, script: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run the shell `script` from the repository root in a private mount namespace, with a
    fresh tmpfs of `size` mounted on the folder `disk` (gone when the script ends)."""
    reason = small_disks_unavailable()
    if reason:
        pytest.skip(reason)
    os.makedirs(disk, exist_ok=True)
    mount = f"mount -t tmpfs -o size={size} tmpfs {shlex.quote(str(disk))}"
    command = ["unshare", "-m", "sh", "-c", f"{mount} && cd {shlex.quote(str(REPO))} && {script}"]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def python(code: str) -> str:
    """`python -c code` as a shell word, with this interpreter and the tests' imports."""
    return f"PYTHONPATH=tests {shlex.quote(sys.executable)} -c {shlex.quote(code)}"


def complete(path: str) -> bool:
    """A checkpoint or model file whose sha256 footer matches its contents."""
    data = open(path, "rb").read()
    body = data[data.index(b"\n") + 1 : -len(b"\nsha256:") - 64]
    return data.endswith(b"\nsha256:" + hashlib.sha256(body).hexdigest().encode())


FILL = """
def fill(folder):
    with open(os.path.join(folder, "filler"), "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"x" * 4096)
        except OSError:
            pass
"""


def test_checkpoints_and_models_on_a_full_disk_fail_in_one_line_and_keep_the_previous_file(tmp_path):
    """On a 128 KiB tmpfs, one checkpoint (about 80 KiB) fits and the second does not: its
    write raises WriteError naming the file and the reason (equinox wraps the ENOSPC), the
    partial file is gone and the first checkpoint is intact and loads. A model file on the full
    disk fails the same way and leaves the model it would have replaced."""
    disk = tmp_path / "disk"
    code = f"""
import os, numpy as np
from algorithms.run import files
{FILL}
disk = {str(disk)!r}
tree = {{"w": np.arange(20000, dtype=np.float32), "b": np.ones(3, np.float32)}}
files.save_checkpoint(disk + "/checkpoints", 1, {{"kind": "checkpoint"}}, tree)
try:
    files.save_checkpoint(disk + "/checkpoints", 2, {{"kind": "checkpoint"}}, {{"w": tree["w"] + 1, "b": tree["b"]}})
except files.WriteError as error:
    print("checkpoint:", error)
print("listing:", sorted(os.listdir(disk + "/checkpoints")))
loaded, header = files.load_checkpoint(disk + "/checkpoints", tree)
print("loaded step", header["step"], bool((loaded["w"] == tree["w"]).all()))
files.save_tree(disk + "/model.eqx", {{"kind": "model"}}, {{"w": tree["w"][:100]}})
fill(disk)
try:
    files.save_tree(disk + "/model.eqx", {{"kind": "model"}}, {{"w": tree["w"] * 2}})
except files.WriteError as error:
    print("model:", error)
print("left:", sorted(os.listdir(disk)), files.load_tree(disk + "/model.eqx", {{"w": tree["w"][:100]}})["w"][5])
"""
    result = on_small_disk(disk, "128k", python(code), timeout=120)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0] == f"checkpoint: could not write {disk}/checkpoints/step_000000002.ckpt: No space left on device"
    assert lines[1] == "listing: ['step_000000001.ckpt']"
    assert lines[2] == "loaded step 1 True"
    assert lines[3] == f"model: could not write {disk}/model.eqx: No space left on device"
    assert lines[4] == "left: ['checkpoints', 'filler', 'model.eqx'] 5.0"


def test_event_files_and_gifs_on_a_full_disk_fail_in_one_line_and_keep_whole_records(tmp_path):
    """The TensorBoard logs on a tmpfs that fills up while they are written: the evaluation
    whose scalars no longer fit raises WriteError naming the event file, at once and without a
    traceback from a writer thread or at exit; the file keeps the whole records before it
    (TensorBoard reads every earlier evaluation). A GIF that does not fit fails the same way
    and leaves no partial file."""
    disk = tmp_path / "disk"
    code = f"""
import os, numpy as np
from algorithms.run import files, logs
import envs
{FILL}
disk = {str(disk)!r}
os.makedirs(disk + "/run")
run_logs = logs.Logs([disk + "/run"])
run_logs.hyperparameters({{"seed": 1}}, {{}})
fill(disk)
done = 0
try:
    for index in range(1000):
        run_logs.evaluation({{"success_rate": np.array([index / 1000])}}, None, 10 * index, index)
        done += 1
except files.WriteError as error:
    print("events:", error)
from conftest import read_scalars
print("read back:", done > 0, [e.step for e in read_scalars(disk + "/run").Scalars("eval/success_rate")] == list(range(0, 10 * done, 10)))
os.remove(disk + "/filler")

def video(writer, run_dir, frames, env_steps):
    path = os.path.join(run_dir, "videos", f"eval_{{env_steps:012d}}.gif")
    envs.save_gif(list(frames), path, fps=10, writer=writer, step=env_steps, tag="videos/eval")

os.makedirs(disk + "/gif")
gif_logs = logs.Logs([disk + "/gif"], video=video, video_every=1)
gif_logs.hyperparameters({{"seed": 1}}, {{}})
fill(disk)
frames = np.random.default_rng(0).integers(0, 255, (1, 8, 64, 64, 3), dtype=np.uint8)
try:
    gif_logs.evaluation({{"success_rate": np.array([0.5])}}, frames, 0, 0)
    gif_logs.close()
except files.WriteError as error:
    print("gif:", error)
print("videos:", os.listdir(disk + "/gif/videos"))
"""
    result = on_small_disk(disk, "64k", python(code), timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "Exception" not in result.stderr, result.stderr[-3000:]
    events, read_back, gif, videos = result.stdout.splitlines()
    pattern = (
        f"events: could not write {re.escape(str(disk))}/run/events\\.out\\.tfevents\\.\\S+: No space left on device"
    )
    assert re.fullmatch(pattern, events), events
    assert read_back == "read back: True True"
    assert gif == f"gif: could not write {disk}/gif/videos/eval_000000000000.gif: No space left on device"
    assert videos == "videos: []"


def error_lines(stderr: str) -> list[str]:
    """The lines of `stderr` from the run itself (not a library's warning), after checking
    that no traceback is among them."""
    assert "Traceback" not in stderr, stderr[-3000:]
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def tiny_run_flags(**changes) -> list[str]:
    flags = tiny("crl_infonce", **{"total_timesteps": 400, "num_evals": 2, **changes})
    return [shlex.quote(flag) for flag in as_flags(flags)]


def python_resume(disk, out, label: str) -> str:
    """A shell line: --resume the one run on `disk`, its output and exit code into out/label.*"""
    command = f"{shlex.quote(sys.executable)} algorithms/crl_infonce.py --resume=$(ls -d {disk}/*)"
    return f"{command} >{out}/{label}.out 2>{out}/{label}.err; echo $? >{out}/{label}.code"


@pytest.mark.slow  # three fresh processes
def test_a_run_on_a_full_disk_stops_with_exit_2_keeps_its_checkpoint_and_resumes_to_the_same_result(tmp_path):
    """The issue's probe at a tiny scale: a run whose second checkpoint does not fit on its
    128 KiB tmpfs stops with exit 2 and one line that names the file, the reason, the newest
    complete checkpoint and the --resume command; no partial file is left.
    --resume on the disk made read-only exits 2 naming writer.lock and changes nothing. After
    space is freed, --resume finishes and its model equals an uninterrupted run's."""
    disk, out = tmp_path / "disk", tmp_path / "out"
    flags = " ".join(tiny_run_flags(checkpoint_every=200))
    run = f"{shlex.quote(sys.executable)} algorithms/crl_infonce.py {flags} --save-model"
    script = f"""
mkdir -p {out}/full {out}/resumed
{run} --run-root={disk} >{out}/full.out 2>{out}/full.err; echo $? >{out}/full.code
cp -a {disk}/. {out}/full/
mount -o remount,ro {disk}
{python_resume(disk, out, "readonly")}
mount -o remount,rw,size=2m {disk}
{python_resume(disk, out, "resumed")}
cp -a {disk}/. {out}/resumed/
{run} --run-root={out}/whole >{out}/whole.out 2>{out}/whole.err
"""
    result = on_small_disk(disk, "128k", script, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    code, err = int((out / "full.code").read_text()), (out / "full.err").read_text()
    (name,) = os.listdir(out / "full")
    stopped = f"{disk}/{name}"
    newest = f"{stopped}/checkpoints/step_000000005.ckpt"
    assert code == 2, err[-3000:]
    assert error_lines(err) == [
        f"error: could not write {stopped}/checkpoints/step_000000010.ckpt: No space left on device; stopped after "
        f"400 env steps. Free space, then continue from {newest} with: python algorithms/crl_infonce.py --resume {stopped}"
    ]
    kept = out / "full" / name
    assert sorted(os.listdir(kept / "checkpoints")) == ["step_000000005.ckpt"]
    assert complete(kept / "checkpoints" / "step_000000005.ckpt")
    assert not glob.glob(f"{kept}/**/*.tmp*", recursive=True)

    readonly = (out / "readonly.err").read_text()
    assert (out / "readonly.code").read_text().strip() == "2"
    assert error_lines(readonly) == [f"error: could not write {stopped}/writer.lock: Read-only file system"]

    assert (out / "resumed.code").read_text().strip() == "0", (out / "resumed.err").read_text()[-3000:]
    resumed = out / "resumed" / name
    assert sorted(os.listdir(resumed / "checkpoints")) == ["step_000000005.ckpt", "step_000000010.ckpt"]
    (whole,) = glob.glob(str(out / "whole" / "*"))
    assert payload(os.path.join(whole, "crl_infonce.eqx")) == payload(resumed / "crl_infonce.eqx")
    assert scalars(whole, "eval/final_distance") == scalars(str(resumed), "eval/final_distance")


def test_a_model_that_does_not_fit_and_a_read_only_run_root_stop_with_exit_2_in_one_line(tmp_path):
    """A run whose model (networks 512 wide, about 200 KiB) does not fit on its 64 KiB tmpfs
    stops with exit 2 and one line naming the model file, after its logs are complete; no
    partial file is left. A new run on a read-only --run-root exits 2 naming the directory it
    could not create, before compiling anything."""
    disk, out = tmp_path / "disk", tmp_path / "out"
    flags = " ".join(tiny_run_flags(width=512))
    run = f"{shlex.quote(sys.executable)} algorithms/crl_infonce.py {flags} --save-model --run-root={disk}"
    script = f"""
mkdir -p {out}/model
{run} >{out}/model.out 2>{out}/model.err; echo $? >{out}/model.code
cp -a {disk}/. {out}/model/
mount -o remount,ro {disk}
{run} --seed=2 >{out}/ro.out 2>{out}/ro.err; echo $? >{out}/ro.code
"""
    result = on_small_disk(disk, "64k", script, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    err = (out / "model.err").read_text()
    assert (out / "model.code").read_text().strip() == "2", err[-3000:]
    (name,) = os.listdir(out / "model")
    assert error_lines(err) == [
        f"error: could not write {disk}/{name}/crl_infonce.eqx: No space left on device; stopped after 400 env "
        "steps, with no checkpoint to continue from: free space and start the run again"
    ]
    kept = out / "model" / name
    assert sorted(os.listdir(kept))[:1] == ["args.json"] and not glob.glob(f"{kept}/*.eqx*")
    assert [step for step, _ in scalars(str(kept), "eval/success_rate")] == [0, 200, 400]
    err = (out / "ro.err").read_text()
    assert (out / "ro.code").read_text().strip() == "2" and "compiled" not in (out / "ro.out").read_text()
    (line,) = error_lines(err)
    assert re.fullmatch(
        f"error: could not create {re.escape(str(disk))}/reacher__crl_infonce__2__\\d+: Read-only file system", line
    )


def test_eval_only_takes_the_env_from_the_model_file_and_frees_its_run_directory(tmp_path):
    """--eval-only --load-model without --env-id evaluates on the env the model was trained on
    (the fixture's simple_u_maze). The finished run frees its directory's lock: the same process
    can take it again (writer.lock stays, naming the last writer)."""
    module = load_algorithm("crl_infonce")
    model = str(REPO / "tests" / "fixtures" / "simple_u_maze_crl_infonce.eqx")
    flags = dict(eval_only=True, load_model=model, num_eval_envs=2, episode_length=5, run_root=str(tmp_path))
    (run_dir,) = module.main(module.Args(**flags))
    assert os.path.basename(run_dir).startswith("simple_u_maze__")
    assert scalars(run_dir, "eval/success_rate")
    files.lock_run_dir(run_dir)
    files.unlock_run_dirs()
    assert open(os.path.join(run_dir, "writer.lock")).read().startswith(f"process {os.getpid()} on host")
    assert json.load(open(os.path.join(run_dir, "args.json")))["args"]["env_id"] == "simple_u_maze"


def test_a_resume_that_finds_no_checkpoint_frees_the_run_directory(tmp_path):
    """--resume of a run directory without checkpoints stops with CheckpointError and lets go
    of the directory's lock: the same process (a notebook, a sweep) can take it again."""
    module = load_algorithm("crl_infonce")
    (run_dir,) = files.make_run_dirs(module.Args(**tiny("crl_infonce"), run_root=str(tmp_path)), "crl_infonce")
    with pytest.raises(files.CheckpointError, match="--resume"):
        module.main(module.Args(resume=run_dir))
    files.lock_run_dir(run_dir)
    files.unlock_run_dirs()


def test_event_files_are_written_without_a_thread_and_still_announced_to_a_patched_tensorboardx(tmp_path, monkeypatch):
    """Weights & Biases' sync_tensorboard (--track) learns each log directory by replacing
    tensorboardX.writer.EventFileWriter with a subclass; the run's writer goes through it, starts
    no writer thread of its own, and TensorBoard reads what it wrote."""
    import threading

    import tensorboardX.writer
    from tensorboardX.event_file_writer import EventFileWriter

    from algorithms.run import logs

    announced = []

    class Watched(EventFileWriter):  # what wandb.tensorboard.patch installs
        def __init__(self, *args, **kwargs):
            announced.append(args[0])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(tensorboardX.writer, "EventFileWriter", Watched)
    threads = threading.active_count()
    run_logs = logs.Logs([str(tmp_path)])
    run_logs.evaluation({"success_rate": [0.25]}, None, 7, 1)
    assert threading.active_count() == threads
    run_logs.close()
    assert announced == [str(tmp_path)]
    assert scalars(str(tmp_path), "eval/success_rate") == [(7, 0.25)]


@pytest.mark.slow  # two fresh processes
def test_a_failed_write_of_process_0_stops_every_process_of_a_distributed_run(tmp_path):
    """--distributed with two processes on a 128 KiB tmpfs: process 0's second checkpoint does
    not fit (of four); both processes stop with exit 2 instead of the second one going on and
    waiting for the first, process 0 with the --resume line and the other saying why."""
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        address = f"localhost:{s.getsockname()[1]}"
    disk, out = tmp_path / "disk", tmp_path / "out"
    flags = " ".join(tiny_run_flags(checkpoint_every=200, total_timesteps=800))
    run = f"{shlex.quote(sys.executable)} algorithms/crl_infonce.py {flags} --run-root={disk}"
    script = f"""
mkdir -p {out}
({run} --distributed={address},2,0 >{out}/0.out 2>{out}/0.err; echo $? >{out}/0.code) &
({run} --distributed={address},2,1 >{out}/1.out 2>{out}/1.err; echo $? >{out}/1.code) &
wait
"""
    result = on_small_disk(disk, "128k", script, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    codes = [(out / f"{i}.code").read_text().strip() for i in range(2)]
    assert codes == ["2", "2"], (out / "0.err").read_text()[-3000:] + (out / "1.err").read_text()[-3000:]
    (first,) = error_lines((out / "0.err").read_text())
    assert "step_000000010.ckpt: No space left on device; stopped after 400 env steps" in first
    assert "continue from" in first and "--resume" in first
    assert error_lines((out / "1.err").read_text()) == [
        "error: process 0 could not write the run's files (its output says how to go on)"
    ]
