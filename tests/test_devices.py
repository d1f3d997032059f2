"""Several devices: with two fake CPU devices the envs and the buffer are split over a mesh, the
gradients are all-reduced, and a run matches the one-device run of the same flags; two processes
joined by jax.distributed match one process.

Each case runs in a subprocess, because XLA_FLAGS=--xla_force_host_platform_device_count=2 must
be set before JAX starts. The code that shards, gathers, checkpoints and saves is the harness's
(algorithms/run/), the same for every algorithm file, and the algorithm code only passes its
batches through `spread`, so each setting runs one algorithm: the fork of crl_infonce (whose
train state has a field of its own, conftest.FORK) on two devices, td3_her (with a resume) in
two processes. Every file saves and loads its model in test_research_runs.py's tiny runs."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import FORK, REPO
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

pytestmark = pytest.mark.slow  # fresh processes with two devices compile every run

# Runs inside the subprocess: {name}, {flags} and {root} are filled in.
SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    sys.path.insert(0, {tests!r})
    import jax, numpy as np
    from conftest import load_algorithm
    from algorithms import run
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    module = load_algorithm({name!r})
    flags = {flags!r}
    out = {{"devices": jax.device_count()}}

    # the layout: half of the envs and of the buffer's env columns on each device
    args = module.Args(**flags, run_root={root!r})
    env = run.make_env(args)
    schedule = run.make_schedule(args, env)
    mesh = run.devices.make_mesh(args.num_devices, args.num_envs, args.batch_size)
    init, training_step, vec_env, buffer = module.make_train(args, env, schedule, run.devices.spread_over(mesh))
    init, chunk = run.devices.seed_axis(init, 1), run.devices.seed_axis(module.make_chunk(training_step), 1, in_axes=(0, None))
    keys = jax.random.split(jax.random.PRNGKey(0), 1)
    shardings = run.devices.carry_shardings(mesh, jax.eval_shape(init, keys), vec_env, buffer)
    carry = jax.jit(init, out_shardings=shardings)(keys)
    obs = carry.buffer_state.data.obs
    out["buffer_shards"] = sorted(str(s.device) for s in obs.addressable_shards)
    out["buffer_shard_shape"] = list(obs.addressable_shards[0].data.shape)
    out["env_shard_shape"] = list(carry.env_state.obs.addressable_shards[0].data.shape)
    out["params_replicated"] = bool(jax.tree.leaves(carry.train_state.actor)[0].sharding.is_fully_replicated)
    hlo = jax.jit(chunk).lower(carry, 1).compile().as_text()
    out["all_reduce"] = "all-reduce" in hlo

    # the same run on one device and on two
    runs = {{}}
    for devices in (1, 2):
        (run_dir,) = module.main(module.Args(**flags, num_devices=devices, run_root=os.path.join({root!r}, str(devices))))
        events = EventAccumulator(run_dir)
        events.Reload()
        runs[devices] = {{t: [e.value for e in events.Scalars(t)] for t in events.Tags()["scalars"] if "SPS" not in t}}
        runs[devices]["params"] = [np.asarray(x).ravel().tolist() for x in jax.tree.leaves(
            run.load_model(module.ALGORITHM, os.path.join(run_dir, {name!r} + ".eqx"))[0])]
    out["runs"] = runs

    # flags the devices cannot serve
    errors = []
    for bad in (dict(num_devices=3), dict(num_envs=5, batch_size=16), dict(num_devices=0)):
        try:
            args = module.Args(**{{**flags, **bad}})
            run.devices.make_mesh(args.num_devices, args.num_envs, args.batch_size)
        except run.ConfigError as error:
            errors.append(str(error))
    out["errors"] = errors
    print("RESULT" + json.dumps(out))
    """
)


def tiny(name: str) -> dict:
    flags = dict(
        env_id="reacher",
        num_envs=8,
        num_eval_envs=4,
        unroll_length=10,
        batch_size=16,
        buffer_size=100,
        learning_starts=20,
        total_timesteps=800,
        num_evals=2,
        width=16,
        depth=1,
        updates_per_rollout=4,
        save_model=True,
    )
    if name.startswith("crl"):
        flags["repr_dim"] = 8
    return flags


@pytest.fixture(scope="module", params=[FORK])  # crl_infonce forked: a train state with a field of its own
def two_devices(request, tmp_path_factory):
    name, root = request.param, str(tmp_path_factory.mktemp(request.param))
    code = SCRIPT.format(name=name, flags=tiny(name), root=root, tests=str(REPO / "tests"))
    env = {**os.environ, "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    line = [x for x in result.stdout.splitlines() if x.startswith("RESULT")][-1]
    return name, json.loads(line[len("RESULT") :]), result.stdout


def test_envs_and_buffer_are_split_over_the_devices(two_devices):
    name, out, stdout = two_devices
    assert out["devices"] == 2 and "(2 devices)" in stdout
    assert len(set(out["buffer_shards"])) == 2
    # (seed, rows, envs, obs): 8 envs, 4 per device; the buffer is 100 rows
    assert out["buffer_shard_shape"][:3] == [1, 100, 4]
    assert out["env_shard_shape"][:2] == [1, 4]
    assert out["params_replicated"]
    assert out["all_reduce"], "no cross-device reduction in the training chunk: gradients are not averaged"


def test_two_devices_match_one_device(two_devices):
    name, out, _ = two_devices
    one, two = out["runs"]["1"], out["runs"]["2"]
    assert set(one) == set(two) and "losses/actor_loss" in one
    for tag in one:
        if tag == "params":
            for x, y in zip(one[tag], two[tag]):
                assert len(x) == len(y) and max((abs(a - b) for a, b in zip(x, y)), default=0.0) < 1e-4, name
        else:
            assert len(one[tag]) == len(two[tag]), tag
            for a, b in zip(one[tag], two[tag]):
                assert abs(a - b) <= 1e-4 * max(1.0, abs(a)), (tag, one[tag], two[tag])


def test_device_flags_that_cannot_run_are_refused(two_devices):
    _, out, _ = two_devices
    assert len(out["errors"]) == 3
    assert "2 device(s) are visible" in out["errors"][0]
    assert "multiples" in out["errors"][1] and "--num-envs" in out["errors"][1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def two_processes(script: str, args: list[str]) -> list[str]:
    """Run `script` as processes 0 and 1 of one jax.distributed run; their outputs."""
    address = f"localhost:{free_port()}"
    procs = [
        subprocess.Popen(
            [sys.executable, script, *args, f"--distributed={address},2,{i}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    return outputs


def scalars(run_dir) -> dict[str, list[float]]:
    events = EventAccumulator(str(run_dir))
    events.Reload()
    return {t: [e.value for e in events.Scalars(t)] for t in events.Tags()["scalars"] if "SPS" not in t}


@pytest.mark.parametrize("name", ["td3_her"])
def test_two_processes_with_jax_distributed_match_one_process(name, tmp_path):
    """--distributed HOST:PORT,2,I: two processes with one CPU device each form one mesh (CPU
    collectives over gloo); the first writes the run, which matches a one-process run, and
    the two processes resume it from a checkpoint."""
    flags = {**tiny(name), "checkpoint_every": 400}
    script = str(REPO / "algorithms" / f"{name}.py")
    args = [f"--{k.replace('_', '-')}={v}" for k, v in flags.items() if v is not True]
    args += [f"--{k.replace('_', '-')}" for k, v in flags.items() if v is True]
    outputs = two_processes(script, [*args, f"--run-root={tmp_path / 'two'}"])
    assert "run directory" in outputs[0] and "run directory" not in outputs[1]  # the first process logs
    one = subprocess.run(
        [sys.executable, script, *args, f"--run-root={tmp_path / 'one'}"], capture_output=True, text=True, timeout=600
    )
    assert one.returncode == 0, one.stderr[-3000:]
    (one_dir,) = (tmp_path / "one").iterdir()
    (two_dir,) = (tmp_path / "two").iterdir()
    expected = scalars(one_dir)
    assert "eval/final_distance" in expected

    def check(run_dir):
        got = scalars(run_dir)
        for tag, values in expected.items():
            np.testing.assert_allclose(got[tag], values, rtol=1e-4, atol=1e-5, err_msg=tag)

    check(two_dir)
    # the checkpoints, gathered from both processes, hold the whole state: equal to the one-process ones
    for ckpt in ["step_000000005.ckpt", "step_000000010.ckpt"]:
        x, y = leaves(one_dir / "checkpoints" / ckpt), leaves(two_dir / "checkpoints" / ckpt)
        assert len(x) == len(y) > 10 and sum(u.size for u in y) > 8 * 100 * 10  # the buffer too
        for u, v in zip(x, y):
            assert u.shape == v.shape and u.dtype == v.dtype
            np.testing.assert_allclose(v, u, rtol=1e-4, atol=1e-5)
    # resume from the middle checkpoint with two processes: the second half again, same numbers
    os.remove(two_dir / "checkpoints" / "step_000000010.ckpt")
    outputs = two_processes(script, [f"--resume={two_dir}"])
    assert "resuming" in outputs[0] and "after 400 env steps" in outputs[0]
    check(two_dir)


def leaves(path) -> list[np.ndarray]:
    """The arrays of a checkpoint file: after the header line, one np.save record per leaf, then
    the 72-byte checksum footer."""
    data = open(path, "rb").read()
    body = io.BytesIO(data[data.index(b"\n") + 1 : -72])
    out = []
    while body.tell() < len(body.getbuffer()):
        out.append(np.load(body))
    return out
