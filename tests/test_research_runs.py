"""For every algorithm file: compile-once, the budget and the logged tags of a tiny run. For one
file per family (RUN-block code): checkpoints and exact resume, saved models and --eval-only,
videos in TensorBoard, --num-seeds. The README's commanded-goal example and load_policy."""

from __future__ import annotations

import ast
import glob
import io
import json
import os
import re
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from conftest import ALGORITHMS, FORK, REPO, algorithm_path, as_flags, fork_source, load_algorithm, tiny
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from algorithms import run as run_harness
from algorithms.run import load_model

EPISODE = 20
# 60 training steps of 40 env steps; a checkpoint every 10, an evaluation every 15
RUN = {"episode_length": EPISODE, "updates_per_rollout": 40, "total_timesteps": 2400, "num_evals": 4}
RESUME_FLAGS = ["--checkpoint-every=400", "--save-model", "--capture-video", "--video-every=2"]


def command(name: str, flags: dict, *extra: str) -> list[str]:
    return [sys.executable, str(algorithm_path(name)), *as_flags(flags), *extra]


def run(cmd: list[str], expect: int = 0) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == expect, result.stdout[-2000:] + result.stderr[-3000:]
    return result


def events(run_dir: str) -> EventAccumulator:
    accumulator = EventAccumulator(run_dir, size_guidance={"scalars": 0, "images": 0})
    accumulator.Reload()
    return accumulator


def payload(path: str) -> bytes:
    """A model file's leaves (its header line holds the run's flags, which differ between runs)."""
    data = open(path, "rb").read()
    return data[data.index(b"\n") + 1 :]


# Checkpoints, resume, saved models and videos are the harness's (algorithms/run/): the
# killed-and-resumed runs take one file per family, the contrastive one as the fork of
# crl_infonce (whose train state has a field the others do not), and sac_her (crl_dpo and
# td3_her save, load and resume in test_devices.py).
RESUMED = [FORK, "sac_her"]


@pytest.fixture(scope="module", params=RESUMED)
def runs(request, tmp_path_factory):
    """The same run twice: once uninterrupted, once SIGKILLed after its first checkpoint and
    then resumed with --resume."""
    name = request.param
    root = tmp_path_factory.mktemp(name)
    flags = tiny(name, **RUN)
    if name == FORK:  # the contrastive run with IQE's energy and SPlus, whose states must resume too
        flags.update(energy_fn="iqe", iqe_dim=4, optimizer="splus", splus_inverse_every=7)
    run(command(name, flags, f"--run-root={root / 'whole'}", *RESUME_FLAGS))
    (whole,) = glob.glob(str(root / "whole" / "*"))

    killed = subprocess.Popen(
        command(name, flags, f"--run-root={root / 'killed'}", *RESUME_FLAGS),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 300
    while not glob.glob(str(root / "killed" / "*" / "checkpoints" / "step_000000010.ckpt")):
        assert killed.poll() is None and time.time() < deadline, killed.stderr.read().decode()[-3000:]
        time.sleep(0.01)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    (resumed,) = glob.glob(str(root / "killed" / "*"))
    assert killed.returncode == -signal.SIGKILL
    assert not os.path.exists(os.path.join(resumed, f"{name}.eqx")), "the run finished before it was killed"
    checkpoints_at_kill = sorted(os.listdir(os.path.join(resumed, "checkpoints")))
    run(command(name, {}, f"--resume={resumed}"))
    return name, whole, resumed, checkpoints_at_kill


@pytest.mark.parametrize("name", [*ALGORITHMS, FORK])
def test_a_run_compiles_once_reaches_its_budget_and_logs_its_metrics(name, tmp_path, capsys):
    """In process, 1234 env steps in training steps of 40: chunks of different lengths run
    through one compiled training chunk (main wraps it in eqx.debug.assert_max_traces, so a
    second trace would stop the run), the budget is rounded up to whole training steps (and
    said so), the saved model loads, every entry of the training step's metrics dict is logged
    as losses/<name> (the fork's new one too, with no other edit), and every tag the file's
    docstring lists is logged."""
    module = load_algorithm(name)
    flags = dict(total_timesteps=1234, num_evals=3, save_model=True, run_root=str(tmp_path))
    flags.update(eval_tasks=True, eval_task_episodes=1)  # TINY turns the named tasks off; their tags are read below
    (run_dir,) = module.main(module.Args(**{**tiny(name), **flags}))
    out = capsys.readouterr().out
    assert "+ 6 to finish the last training step" in out  # 31 x 40 = 1240 steps
    assert name != FORK or "fork: trained to training step 31" in out  # the fork's own host loop
    logged = events(run_dir)
    assert max(e.step for e in logged.Scalars("eval/success_rate")) == 1240
    args = module.Args(**tiny(name))
    env = run_harness.make_env(args)
    init, training_step, _, _ = module.make_train(args, env, run_harness.make_schedule(args, env))
    metrics = jax.eval_shape(training_step, jax.eval_shape(init, jax.random.PRNGKey(0))).metrics
    tags = set(logged.Tags()["scalars"])
    assert {t for t in tags if t.startswith("losses/")} == {f"losses/{metric}" for metric in metrics}
    assert name != FORK or "losses/twice_critic_loss" in tags
    docstring = ast.get_docstring(ast.parse(algorithm_path(name).read_text()))
    paragraph = docstring.split("Logged (x axis = env steps):")[1].split("\n\n")[0]
    templates = re.findall(r"(?:charts|eval|losses)/[A-Za-z_0-9/{}]+", paragraph)
    listed = {t.replace("{k}", str(k)) for t in templates for k in range(1, 6)}  # task{k}: the five tasks
    assert {"charts/SPS", "eval/success_rate", "eval/sampled_success_rate", "losses/actor_loss"} <= listed
    # every evaluation ran the named tasks in both modes (--eval-tasks is on by default)
    for mode in ("", "sampled_"):
        assert {f"eval/tasks/{mode}task{k}_success" for k in range(1, 6)} <= tags
        assert {f"eval/tasks/{mode}overall_success", f"eval/tasks/{mode}task5_time_at_goal"} <= tags
    # steps to success is not logged at an evaluation where no episode reached the goal
    absent = listed - tags
    assert absent <= {"eval/steps_to_success", "eval/sampled_steps_to_success"}, absent
    assert {t for t in tags if not t.startswith("losses/")} <= listed
    assert "hyperparameters/text_summary" in logged.Tags()["tensors"]
    model, _, _, header = load_model(module.ALGORITHM, os.path.join(run_dir, f"{name}.eqx"))  # saves and loads
    assert header["env_steps"] == 1240 and len(jax.tree.leaves(model)) > 0


@pytest.mark.slow  # the runs fixture: three fresh processes per file
def test_killed_and_resumed_run_ends_with_the_same_parameters_and_evaluations(runs):
    name, whole, resumed, checkpoints_at_kill = runs
    assert checkpoints_at_kill[-1] != "step_000000060.ckpt"
    assert payload(os.path.join(whole, f"{name}.eqx")) == payload(os.path.join(resumed, f"{name}.eqx"))
    # the whole training state (the fork's extra field included) ends the same
    final = os.path.join("checkpoints", "step_000000060.ckpt")
    assert payload(os.path.join(whole, final)) == payload(os.path.join(resumed, final))
    a, b = events(whole), events(resumed)
    for tag in ["eval/success_rate", "eval/final_distance", "eval/episodic_return"]:
        assert [(e.step, e.value) for e in a.Scalars(tag)] == [(e.step, e.value) for e in b.Scalars(tag)]
    # the resumed log holds every step once: what the killed run logged past its checkpoint is purged
    steps = [e.step for e in b.Scalars("charts/SPS")]
    assert steps == sorted(set(steps)) == [e.step for e in a.Scalars("charts/SPS")]
    # the last two checkpoints are kept
    assert sorted(os.listdir(os.path.join(whole, "checkpoints"))) == ["step_000000050.ckpt", "step_000000060.ckpt"]


@pytest.mark.slow  # the runs fixture: three fresh processes per file
def test_videos_reach_tensorboard_and_gifs_hold_one_frame_per_step(runs):
    _, whole, _, _ = runs
    images = events(whole).Images("videos/eval")
    assert [e.step for e in images] == [0, 1200, 2400]  # evaluations 0, 2 and 4 (the last)
    gifs = sorted(glob.glob(os.path.join(whole, "videos", "*.gif")))
    assert len(gifs) == 3
    for image_event, path in zip(images, gifs):
        for data in (image_event.encoded_image_string, open(path, "rb").read()):
            gif = Image.open(io.BytesIO(data))
            assert gif.format == "GIF" and gif.n_frames == EPISODE
            assert (gif.height, gif.width) == (image_event.height, image_event.width)


@pytest.mark.slow  # the runs fixture: three fresh processes per file
def test_eval_only_evaluates_the_saved_model_and_refuses_another_env(runs, tmp_path):
    name, whole, _, _ = runs
    model = os.path.join(whole, f"{name}.eqx")
    result = run(
        command(
            name,
            {"num_eval_envs": 4, "episode_length": EPISODE},
            "--eval-only",
            f"--load-model={model}",
            f"--run-root={tmp_path}",
        )
    )
    assert "success_rate" in result.stdout
    (eval_dir,) = glob.glob(str(tmp_path / "*"))
    distances = events(eval_dir).Scalars("eval/final_distance")
    assert [e.step for e in distances] == [2400] and np.isfinite(distances[0].value)
    result = run(command(name, {"env_id": "simple_u_maze"}, "--eval-only", f"--load-model={model}"), expect=2)
    assert "trained on reacher" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow  # the runs fixture: three fresh processes per file
def test_bad_resume_and_model_inputs_exit_2_without_losing_anything(runs, tmp_path):
    name, whole, _, _ = runs
    if name != FORK:
        pytest.skip("every file shares this code (the harness's); checked once")
    not_a_run = tmp_path / "not_a_run"
    not_a_run.mkdir()
    result = run(command(name, {}, f"--resume={not_a_run}"), expect=2)
    assert "not a run directory" in result.stderr and "Traceback" not in result.stderr
    result = run(command(name, {}, f"--resume={whole}", "--seed=3"), expect=2)
    assert "drop --seed" in result.stderr
    # flags the results do not depend on may change: --presample draws the same batches
    crl = load_algorithm("crl_infonce")  # the fork's flags are crl_infonce's
    resumed = run_harness.files.resumed_args(crl.Args(resume=whole, presample=False), name)
    recorded = json.load(open(os.path.join(whole, "args.json")))
    assert resumed.presample is False and recorded["args"]["presample"] is True
    assert resumed.num_envs == recorded["args"]["num_envs"] != crl.Args().num_envs

    # a damaged newest checkpoint: a clear error that names the older one, and nothing is changed
    copy = tmp_path / os.path.basename(whole)
    subprocess.run(["cp", "-r", whole, str(copy)], check=True)
    newest = copy / "checkpoints" / "step_000000060.ckpt"
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    # (writer.lock is not the run's data: each writer, even one that then stops, names itself in it)
    before = {p: os.path.getmtime(p) for p in glob.glob(f"{copy}/**", recursive=True) if "writer.lock" not in p}
    result = run(command(name, {}, f"--resume={copy}"), expect=2)
    assert "checksum" in result.stderr and "step_000000050.ckpt" in result.stderr
    after = {p: os.path.getmtime(p) for p in glob.glob(f"{copy}/**", recursive=True) if "writer.lock" not in p}
    assert after == before

    for checkpoint in glob.glob(str(copy / "checkpoints" / "*")):
        os.remove(checkpoint)
    result = run(command(name, {}, f"--resume={copy}"), expect=2)
    assert "no checkpoint" in result.stderr

    truncated = tmp_path / "truncated.eqx"
    truncated.write_bytes(open(os.path.join(whole, f"{name}.eqx"), "rb").read()[:-100])
    result = run(command(name, {}, "--eval-only", f"--load-model={truncated}"), expect=2)
    assert "truncated or damaged" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("name", ["crl_infonce", "td3_her"])  # the seed axis is RUN-block code: one per family
def test_num_seeds_matches_separate_runs_with_those_seeds(name, tmp_path):
    module = load_algorithm(name)
    flags = tiny(name, **{**RUN, "total_timesteps": 400, "num_evals": 2, "save_model": True})
    together = module.main(module.Args(**flags, num_seeds=2, run_root=str(tmp_path / "together")))
    assert [os.path.basename(d).split("__")[2] for d in together] == ["1", "2"]
    for seed, run_dir in zip([1, 2], together):
        (alone,) = module.main(module.Args(**flags, seed=seed, run_root=str(tmp_path / f"alone{seed}")))
        vmapped, _, _, _ = load_model(module.ALGORITHM, os.path.join(run_dir, f"{name}.eqx"))
        single, _, _, _ = load_model(module.ALGORITHM, os.path.join(alone, f"{name}.eqx"))
        for x, y in zip(jax.tree.leaves(vmapped), jax.tree.leaves(single)):
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=1e-5, rtol=1e-5)
        a, b = events(run_dir), events(alone)
        for tag in ["eval/final_distance", "eval/success_rate", "losses/actor_loss"]:
            np.testing.assert_allclose([e.value for e in a.Scalars(tag)], [e.value for e in b.Scalars(tag)], atol=1e-4)
        assert json.load(open(os.path.join(run_dir, "args.json")))["seed"] == seed


def test_readme_example_drives_the_point_mass_to_the_chosen_cell():
    readme = (REPO / "README.md").read_text()
    code = readme.split("<!-- example: commanded goal -->")[1].split("```python")[1].split("```")[0]
    result = subprocess.run([sys.executable, "-"], input=code, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "cell (3, 3)" in result.stdout, result.stdout


def test_load_policy_acts_on_one_state_or_a_batch_and_commands_any_goal():
    act, env = load_algorithm("crl_infonce").load_policy(
        str(REPO / "tests" / "fixtures" / "simple_u_maze_crl_infonce.eqx")
    )
    state = env.reset(jax.random.PRNGKey(3))
    goals = np.stack([env.maze.cell_xy(1, 3), env.maze.cell_xy(3, 3)])
    commanded = [env.with_goal(state, g) for g in goals]
    assert np.allclose(commanded[1].obs[env.state_dim :], goals[1]) and np.allclose(commanded[1].info["goal"], goals[1])
    one = np.stack([act(s.obs[: env.state_dim], g) for s, g in zip(commanded, goals)])
    batch = act(np.stack([s.obs[: env.state_dim] for s in commanded]), goals)
    assert one.shape == (2, env.action_size) and np.allclose(one, batch, atol=1e-6)
    assert not np.allclose(one[0], one[1])  # the action depends on the commanded goal
    with pytest.raises(ValueError, match="wall"):
        env.maze.cell_xy(0, 0)


def test_the_fork_survives_a_cosmetic_edit_of_crl_infonce():
    """The fork is made on crl_infonce.py's syntax tree: comments, line breaks and a reformatted
    call change nothing about it."""
    source = (REPO / "algorithms" / "crl_infonce.py").read_text()
    edited = source.replace("\ndef ", "\n# a comment a reader added\ndef ")
    edited = edited.replace(
        "(logits, args.contrastive_loss)", "(\n        logits,\n        args.contrastive_loss,\n    )"
    )
    edited = edited.replace('"entropy": -jnp.mean(log_prob)', '"entropy": - jnp.mean( log_prob )')
    assert edited.count("# a comment a reader added") > 5 and "args.contrastive_loss,\n" in edited
    assert "jnp.mean( log_prob )" in edited
    assert fork_source(edited) == fork_source(source)
