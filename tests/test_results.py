"""results/: the seed aggregation against references, the event-file reader on synthetic runs,
and `benchmark.py --preset cpu-smoke` end to end (CSV columns, a non-blank PNG, resumption)."""

from __future__ import annotations

import csv
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from conftest import load_algorithm
from scipy import stats

ROOT = pathlib.Path(__file__).resolve().parent.parent
plots = load_algorithm("plots", folder="results/tools")
sys.modules.setdefault("plots", plots)  # what results/tools/benchmark.py imports, as a script would find it
benchmark = load_algorithm("benchmark", folder="results/tools")
ant_gap = load_algorithm("ant_gap", folder="results/notes")


@pytest.mark.parametrize("n", range(1, 13))
def test_iqm_matches_scipys_trimmed_mean(n):
    rng = np.random.default_rng(n)
    values = rng.normal(size=(5, n))
    expected = stats.trim_mean(values, 0.25, axis=-1)
    np.testing.assert_allclose(plots.iqm(values), expected, rtol=1e-12)
    np.testing.assert_allclose(plots.iqm(values.T, axis=0), expected, rtol=1e-12)


def test_iqm_drops_the_outer_quarters():
    assert plots.iqm([100.0, 1.0, 2.0, 3.0, -50.0, 4.0, 5.0, 6.0]) == pytest.approx(3.5)  # mean of 2..5


@pytest.mark.parametrize("statistic", ["mean", "iqm"])
def test_bootstrap_interval_matches_scipys_percentile_bootstrap(statistic):
    rng = np.random.default_rng(0)
    values = rng.uniform(0.2, 0.9, size=8)
    low, high = plots.bootstrap_interval(values, plots.STATISTICS[statistic], 40_000, 0.95, np.random.default_rng(1))
    reference = stats.bootstrap(
        (values,),
        lambda x, axis: plots.STATISTICS[statistic](x, axis=axis),
        n_resamples=40_000,
        confidence_level=0.95,
        method="percentile",
        rng=np.random.default_rng(2),
    ).confidence_interval
    assert low == pytest.approx(reference.low, abs=0.01)
    assert high == pytest.approx(reference.high, abs=0.01)
    assert low < plots.STATISTICS[statistic](values) < high


def test_aggregate_reads_runs_back_from_event_files(tmp_path):
    from tensorboardX import SummaryWriter

    truth = {}
    for algorithm, offset in (("crl_infonce", 0.0), ("sac_her", 0.5)):
        for seed in (1, 2, 3, 4):
            run_dir = tmp_path / f"reacher__{algorithm}__{seed}__{1700000000 + seed}"
            with SummaryWriter(str(run_dir)) as writer:
                for step in (0, 1000, 2000):
                    value = offset + 0.1 * seed + step / 10_000
                    writer.add_scalar("eval/success_rate", value, step)
                    truth[algorithm, seed, step] = value
    # an older, superseded run of the same seed is ignored
    with SummaryWriter(str(tmp_path / "reacher__sac_her__1__1600000000")) as writer:
        writer.add_scalar("eval/success_rate", 99.0, 0)
    runs = plots.find_runs(str(tmp_path))
    assert sorted(runs) == [("reacher", "crl_infonce"), ("reacher", "sac_her")]
    rows = plots.aggregate(runs, ("eval/success_rate",), "iqm", samples=500)
    assert len(rows) == 2 * 3
    for row in rows:
        values = [truth[row["algorithm"], s, row["env_steps"]] for s in (1, 2, 3, 4)]
        assert row["value"] == pytest.approx(stats.trim_mean(values, 0.25), rel=1e-6)
        assert row["low"] <= row["value"] <= row["high"] and row["seeds"] == 4


@pytest.mark.slow
def test_benchmark_cpu_smoke_end_to_end(tmp_path):
    """The preset narrowed to one contrastive and one actor-critic file and the random policy
    (each algorithm file's runs are tested in test_research_runs.py)."""
    from PIL import Image

    algorithms = ["crl_infonce", "td3_her", "random"]
    command = [
        sys.executable,
        str(ROOT / "results" / "tools" / "benchmark.py"),
        "--preset",
        "cpu-smoke",
        "--algorithms",
        *algorithms,
        "--out-dir",
        str(tmp_path),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with open(tmp_path / "evals.csv") as f:
        evals = list(csv.DictReader(f))
    with open(tmp_path / "final.csv") as f:
        finals = list(csv.DictReader(f))
    assert list(evals[0]) == [
        "algorithm",
        "env_id",
        "seed",
        "env_steps",
        "success_rate",
        "time_at_goal",
        "final_distance",
        "episodic_return",
        "steps_to_success",
        "sampled_success_rate",
        "sampled_time_at_goal",
        "sampled_final_distance",
        "tasks_overall_success",
        *(f"task{k}_success" for k in range(1, 6)),
        "sampled_tasks_overall_success",
        "run_dir",
    ]
    assert sorted(r["algorithm"] for r in finals) == sorted(algorithms)
    for row in finals:
        assert 0.0 <= float(row["success_rate"]) <= 1.0 and float(row["mean_sps"]) > 0 and float(row["wall_s"]) > 0
        # the named tasks: every run evaluates them, and the random row runs them too
        each = [float(row[f"task{k}_success"]) for k in range(1, 6)]
        assert float(row["tasks_overall_success"]) == pytest.approx(sum(each) / 5, abs=1e-6)
        if row["algorithm"] == "random":  # the baseline: no training, the env-only rate as its SPS
            assert int(row["env_steps"]) == 0 and row["command"].startswith("python results/tools/random_policy.py")
        else:
            assert int(row["env_steps"]) >= 400 and row["command"].startswith("python algorithms/")
            assert 0 < float(row["compile_s"]) < float(row["wall_s"]) and 0 < float(row["train_s"]) < float(
                row["wall_s"]
            )
    assert len(evals) == 2 * 3  # evaluations at 0, mid-way and the end
    summary = (tmp_path / "summary.md").read_text()
    assert summary.count("| reacher |") == 3 and "success rate" in summary
    shares = [line.split("|")[-2] for line in summary.splitlines() if "| crl_infonce |" in line][0]
    assert 99 <= sum(int(x) for x in shares.split(" / ")) <= 101  # compile / env / rest / outside training
    with Image.open(tmp_path / "curves.png") as image:
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape[0] > 200 and pixels.shape[1] > 200
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20  # lines, text, shading: not blank
    # a second invocation finds every run finished and only re-tabulates
    again = subprocess.run(command + ["--no-plot"], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and again.stdout.count("already done") == 3
    # restricted to one of its runs, an invocation still tabulates the others that finished
    only_random = command[: command.index("--algorithms") + 1] + ["random"] + command[command.index("--out-dir") :]
    restricted = subprocess.run(only_random + ["--no-plot"], capture_output=True, text=True, timeout=600)
    assert restricted.returncode == 0 and restricted.stdout.count("already done") == 1
    with open(tmp_path / "final.csv") as f:
        assert sorted(r["algorithm"] for r in csv.DictReader(f)) == sorted(algorithms)
    # --finished-only starts no run: not sac_her's (never started), nor those of the two files
    # whose runs have not reached a doubled budget (as a run still going), and tabulates the rest
    run_dirs = sorted((tmp_path / "runs").iterdir())
    command[command.index("--algorithms") + 1 : command.index("--out-dir")] = [*algorithms, "sac_her"]
    tabulated = subprocess.run(
        command + ["--no-plot", "--finished-only", "--extra=--total-timesteps=800"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert tabulated.returncode == 0, tabulated.stderr[-3000:]
    assert tabulated.stdout.count("already done") == 1 and tabulated.stdout.count("not finished: skipped") == 3
    with open(tmp_path / "final.csv") as f:
        assert [r["algorithm"] for r in csv.DictReader(f)] == ["random"]
    assert sorted((tmp_path / "runs").iterdir()) == run_dirs


def test_benchmark_rejects_an_unknown_preset_or_env_with_exit_2(tmp_path):
    script = str(ROOT / "results" / "tools" / "benchmark.py")
    for flags in (["--preset", "cpu-huge"], ["--preset", "cpu-small", "--env-ids", "ant"]):
        result = subprocess.run(
            [sys.executable, script, *flags, "--out-dir", str(tmp_path)], capture_output=True, text=True
        )
        assert result.returncode == 2 and "error:" in result.stderr and "Traceback" not in result.stderr


def test_scripted_policy_rejects_an_env_without_a_controller_with_exit_2():
    script = str(ROOT / "results" / "tools" / "scripted_policy.py")
    for flags in (["--env-id", "ant"], ["--env-id", "arm_reach", "--num-episodes", "0"]):
        result = subprocess.run([sys.executable, script, *flags], capture_output=True, text=True)
        assert result.returncode == 2 and "error:" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_throughput_prints_one_row_per_algorithm_and_env():
    """One algorithm and env (the rows come from one loop over both lists)."""
    tiny = [
        "--num-envs=4",
        "--unroll-length=10",
        "--batch-size=16",
        "--buffer-size=100",
        "--learning-starts=10",
        "--width=16",
        "--depth=1",
        "--updates-per-rollout=2",
        "--episode-length=20",
    ]
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "results" / "tools" / "throughput.py"),
            "--algorithms",
            "td3_her",
            "--env-ids",
            "reacher",
            "--steps",
            "2",
            "--repeats",
            "2",
            *tiny,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split("|")[1:-1] for line in result.stdout.splitlines() if line.startswith("| ") and "---" not in line]
    assert [r[0].strip() for r in rows] == ["algorithm", "td3_her"]
    for row in rows[1:]:
        env_only, floor, training, fraction = (float(row[i].replace(",", "")) for i in (8, 10, 11, 12))
        assert row[1].strip() == "reacher" and min(env_only, floor, training) > 0
        assert abs(fraction - training / floor) < 0.01 + 0.01 * fraction  # the printed ratio is the ratio


def test_gpu_paper_dry_run_states_each_runs_episode_length_and_update_ratio():
    """Also: each `--extra` adds its flag to every run (a second one does not replace the first)."""
    command = [
        sys.executable,
        str(ROOT / "results" / "tools" / "benchmark.py"),
        "--preset",
        "gpu-paper",
        "--dry-run",
        "--seeds",
        "1",
    ]
    result = subprocess.run(
        command + ["--extra=--fixed-goals", "--extra=--num-evals=7"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    commands = [line for line in lines if line.startswith("[")]
    schedules = [line.strip() for line in lines if line.startswith("  episode length")]
    assert len(commands) == len(schedules) == 16 * 4
    for command, schedule in zip(commands, schedules):
        assert command.endswith(" --fixed-goals --num-evals=7")
        envs_512 = "--num-envs=512" in command
        if "arm_reach" in command:
            assert schedule == "episode length 100, 99 gradient steps per training step"
        elif "arm_" in command:
            assert schedule == f"episode length 150, {298 if envs_512 else 149} gradient steps per training step"
        else:
            assert schedule == f"episode length 1001, {2000 if envs_512 else 1000} gradient steps per training step"


def test_every_results_script_is_in_the_readme_table_and_parses_its_flags_with_tyro():
    table = (ROOT / "results" / "README.md").read_text()
    scripts = sorted((ROOT / "results").glob("*/*.py"))
    assert {script.parent.name for script in scripts} == {"tools", "notes"}, (
        "results/ keeps scripts in tools/ and notes/"
    )
    for script in scripts:
        source = script.read_text()
        assert f"| `{script.name}` |" in table, f"{script.name} is missing from results/README.md's table"
        assert "tyro.cli(" in source and "argparse" not in source, f"{script.name}: flags are parsed with tyro"
        assert "sys.path" not in source, f"{script.name} edits sys.path"


def test_benchmark_resumes_a_run_with_a_checkpoint_and_restarts_none_without(tmp_path):
    """An interrupted run (event files and a checkpoint, no final evaluation) is the one the
    runner resumes; a run killed before its first checkpoint has nothing to resume from; a run
    whose recorded arguments disagree with the job's flags (another --extra) is not the job's."""
    runs = tmp_path / "runs"
    recorded = {"fixed_goals": False, "num_envs": 256, "actor_lr": 0.0003, "backend": None, "env_id": "ant"}
    for name in ("ant__crl_infonce__1__100", "ant__crl_infonce__2__100", "ant__crl_infonce__1__200"):
        (runs / name).mkdir(parents=True)
        (runs / name / "events.out.tfevents.100.host").write_bytes(b"")
        (runs / name / "checkpoints").mkdir()
        args = {**recorded, "fixed_goals": name.endswith("200")}  # the newest run of seed 1: a variant
        (runs / name / "args.json").write_text(json.dumps({"args": args}))
    (runs / "ant__crl_infonce__1__100" / "checkpoints" / "step_000000010.ckpt").write_bytes(b"")
    (runs / "ant__crl_infonce__1__200" / "checkpoints" / "step_000000020.ckpt").write_bytes(b"")
    flags = ["--env-id=ant", "--num-envs=256", "--actor-lr=3e-4", "--backend=None"]
    resume = benchmark.resumable_run
    assert resume(str(runs), "crl_infonce", "ant", 1, flags) == str(runs / "ant__crl_infonce__1__100")
    assert resume(str(runs), "crl_infonce", "ant", 1, [*flags, "--no-fixed-goals"]) == str(
        runs / "ant__crl_infonce__1__100"
    )
    assert resume(str(runs), "crl_infonce", "ant", 1, [*flags, "--fixed-goals"]) == str(
        runs / "ant__crl_infonce__1__200"
    )
    assert resume(str(runs), "crl_infonce", "ant", 2, flags) is None  # no checkpoint
    assert resume(str(runs), "crl_infonce", "ant", 3, flags) is None  # no run
    assert resume(str(runs), "crl_infonce", "ant", 1, ["--num-envs=1024"]) is None
    assert resume(str(runs), "crl_infonce", "ant", 1, ["--width=512"]) is None  # a flag it did not record


def test_ant_gap_tabulates_a_jaxgcrl_log_beside_our_runs(tmp_path):
    """JaxGCRL's printed evaluations become rows with its success in the deterministic column
    and its steps at the goal over its episode length as the time at goal."""
    log = tmp_path / "ant_s3.log"
    lines = ["2026-12-03 11:08:19 INFO    |  Arguments:", "{'episode_length': 1001,", " 'seed': 3}"]
    for step, success, steps_at_goal in ((476160, 0.0, 0.0), (952320, 0.25, 100.1), (1428480, 0.5, 200.2)):
        lines += [
            f"2026-12-03 11:30:00 INFO    |  step: {step}, eval/episode_success: {steps_at_goal:.3f} +/- 9.000",
            f"2026-12-03 11:30:00 INFO    |  step: {step}, eval/episode_success_any: {success:.3f} +/- 0.400",
        ]
    log.write_text("\n".join(lines) + "\n")
    args = ant_gap.Args(run_roots=(), peer_logs=(str(log),), every=1_000_000)
    rows = [line.split("|")[1:-1] for line in ant_gap.table(args).splitlines()[2:]]
    assert [[cell.strip() for cell in row[:5]] for row in rows] == [
        ["JaxGCRL 6dccab2 crl (ant_s3), 3", "952,320", "0.250", "-", "0.100"],
        ["JaxGCRL 6dccab2 crl (ant_s3), 3", "1,428,480", "0.500", "-", "0.200"],
    ]


def test_ant_gap_rejects_a_log_that_is_not_jaxgcrls_with_exit_2(tmp_path):
    (tmp_path / "other.log").write_text("step: 10, eval/episode_success_any: 0.5 +/- 0.1\n")
    command = [sys.executable, str(ROOT / "results" / "notes" / "ant_gap.py"), "--run-roots", "--peer-logs"]
    result = subprocess.run(command + [str(tmp_path / "other.log")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "JaxGCRL's printed arguments" in result.stderr, result.stderr[-2000:]


def test_peer_speed_without_a_jaxgcrl_installation_says_so_with_exit_2(tmp_path):
    command = [sys.executable, str(ROOT / "results" / "notes" / "peer_speed.py"), "--peer-root", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert f"no JaxGCRL installation under {tmp_path}" in result.stderr and "Traceback" not in result.stderr


def test_cpu_research_preset_runs_six_envs_at_10m_steps_with_checkpoints():
    preset = benchmark.PRESETS["cpu-research"]
    assert set(preset.env_flags) == {"ant", "ant_u_maze", "humanoid", "cheetah", "simple_big_maze", "pusher_easy"}
    assert preset.env_seeds == {"ant": (1, 2)} and preset.seeds == (1,)
    for flags in preset.env_flags.values():
        assert {"--total-timesteps=10000000", "--episode-length=1001", "--checkpoint-every=1000000"} <= set(flags)


def test_a_restricted_invocation_tabulates_the_whole_presets_runs_and_its_own_extra_seeds():
    whole = [job[:3] for job in benchmark.plan(benchmark.Args(preset="cpu-research"))[1]]
    restricted = benchmark.Args(preset="cpu-research", env_ids=("ant",), seeds=(2,))
    assert [job[:3] for job in benchmark.tabulated_jobs(restricted)] == whole
    other_seeds = benchmark.Args(preset="cpu-research", env_ids=("humanoid",), seeds=(1, 5))
    assert [job[:3] for job in benchmark.tabulated_jobs(other_seeds)] == whole + [("crl_infonce", "humanoid", 5)]
    extra = benchmark.Args(preset="cpu-research", env_ids=("ant",), extra=("--fixed-goals",))
    assert all(job[3][-1] == "--fixed-goals" for job in benchmark.tabulated_jobs(extra))


@pytest.mark.slow
def test_gpu_check_runs_its_three_steps_at_a_tiny_scale(tmp_path):
    """results/tools/gpu_check.py --tiny on a cheap env: every step ends, the summary table comes
    last and summary.json holds the env-only rate, the run's compile time, SPS and both
    evaluation modes, and the two depths."""
    command = [sys.executable, str(ROOT / "results" / "tools" / "gpu_check.py"), "--tiny", "--env-id", "reacher"]
    command += ["--depth-env-id", "reacher", "--out-dir", str(tmp_path), "--ant-timeout=900", "--step-timeout=900"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.rstrip().splitlines()[-1].startswith("| depth 64 (reacher) |")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == {"env_only": "ok", "ant": "ok", "depth": "ok"}
    assert summary["env_only"]["env_only_sps"] > 0 and summary["env_only"]["num_envs"] == 8
    ant = summary["ant"]
    assert ant["compile_s"] > 0 and ant["sps"] > 0 and ant["eval_env_steps"] == 2000
    assert 0 <= ant["success_rate"] <= 1 and 0 <= ant["sampled_success_rate"] <= 1
    assert [row["depth"] for row in summary["depth"]] == [4, 64]
    assert all(row["compile_s"] > 0 and row["ms_per_update"] > 0 for row in summary["depth"])
    for step in ("env_only", "ant", "depth"):
        assert (tmp_path / f"{step}.log").exists()


# ------------------------------------------------------------------ the GPU preset, one window at a time
GPU_CRL_SET = set(
    "reacher cheetah pusher_easy pusher_hard ant ant_ball ant_push ant_u_maze ant_big_maze ant_hardest_maze humanoid"
    " humanoid_u_maze simple_u_maze simple_big_maze simple_hardest_maze arm_reach arm_push_easy arm_binpick_easy".split()
)
# the preset's runs at a toy scale: later flags win
TINY_EXTRA = [
    f"--extra=--{flag}"
    for flag in (
        "num-envs=4 num-eval-envs=2 unroll-length=10 batch-size=16 buffer-size=100 learning-starts=10 width=16"
        " depth=1 repr-dim=8 updates-per-rollout=2 total-timesteps=400 num-evals=2 episode-length=20"
    ).split()
]


def test_gpu_crl_preset_is_jaxgcrls_crl_set_at_10m_steps_five_seeds_per_compile():
    preset, jobs = benchmark.plan(benchmark.Args(preset="gpu-crl"))
    assert set(preset.env_flags) == GPU_CRL_SET and set(preset.estimate_s) == GPU_CRL_SET
    assert len(jobs) == 18  # one process per env, seeds 1-5 in it
    for algorithm, env_id, seed, flags in jobs:
        assert algorithm == "crl_infonce" and seed == 1 and list(benchmark.job_seeds(flags)) == [1, 2, 3, 4, 5]
        assert {"--num-envs=1024", "--total-timesteps=10000000", "--num-seeds=5"} <= set(flags)
        length = {"arm_reach": "100", "arm_push_easy": "150", "arm_binpick_easy": "150"}.get(env_id, "1001")
        assert benchmark.flag_value(flags, "episode-length") == length


def test_seed_groups_are_runs_of_consecutive_seeds_up_to_the_process_size():
    assert benchmark.seed_groups((1, 2, 3, 4, 5, 6, 7), 5) == [(1, 5), (6, 2)]
    assert benchmark.seed_groups((1, 3, 4), 5) == [(1, 1), (3, 2)]
    assert benchmark.seed_groups((2, 1), 5) == [(2, 1), (1, 1)]
    assert benchmark.seed_groups((1, 2, 3), 1) == [(1, 1), (2, 1), (3, 1)]


def test_time_budget_estimates_from_measurements_then_the_presets_guesses_scaled():
    preset = benchmark.Preset(algorithms=("a",), env_flags={}, seeds=(1,), estimate_s={"x": 100.0, "y": 200.0})

    def estimate(measured, env_id, seeds="--seed=1"):
        return benchmark.estimate_seconds(preset, measured, "a", env_id, seeds.split())

    assert estimate({}, "y") == 200.0  # nothing measured: the guess
    assert estimate({}, "z") is None  # no guess either
    measured = {"a/x/1": {"wall_s": 50.0, "finished": True}}
    assert estimate(measured, "x") == 50.0  # its own measurement
    assert estimate(measured, "x", "--seed=1 --num-seeds=2") == 50.0  # another job (two seeds): x's guess, scaled
    assert estimate(measured, "y") == 100.0  # the guess, scaled as x's was (x took half)
    assert estimate(measured, "z") == 50.0  # no guess: the median of the measured jobs
    stopped = {**measured, "a/y/1-5": {"wall_s": 300.0, "finished": False}}
    assert estimate(stopped, "y", "--seed=1 --num-seeds=5") == 375.0  # stopped at 300 s before: longer than that
    assert benchmark.job_key("a", "y", range(1, 6)) == "a/y/1-5" and benchmark.job_key("a", "y", range(3, 4)) == "a/y/3"


@pytest.mark.slow
def test_two_invocations_of_a_preset_keep_each_others_timings(tmp_path):
    """Two invocations of one preset (different --env-ids) each add their jobs' entries to
    timings.json and jobs.json as the file is when they write, not as it was when they started."""
    path = str(tmp_path / "timings.json")
    benchmark.write_json({"runs/a": {"wall_s": 1.0}}, path)
    first = benchmark.read_json(path)  # the first invocation starts
    benchmark.update_json({"runs/b": {"wall_s": 2.0}}, path)  # the second finishes a job
    first["runs/c"] = {"wall_s": 3.0}  # the first finishes one
    benchmark.update_json({"runs/c": first["runs/c"]}, path)
    assert benchmark.read_json(path) == {f"runs/{k}": {"wall_s": v} for k, v in (("a", 1.0), ("b", 2.0), ("c", 3.0))}


def test_a_pack_over_the_size_limit_writes_nothing(tmp_path):
    """--pack checks its limits before a file lands in the folder: an archive over the byte
    limit leaves the folder empty, and so does a table over it."""
    out_dir = tmp_path / "preset"
    run = out_dir / "runs" / "reacher__crl_infonce__1__1"
    run.mkdir(parents=True)
    (run / "args.json").write_text("{}")
    (run / "events.out.tfevents.1.host").write_bytes(np.random.default_rng(0).bytes(4096))  # incompressible
    (out_dir / "final.csv").write_text("env_id\nreacher\n")
    finals = [{"run_dir": os.path.relpath(run, out_dir)}]
    with pytest.raises(benchmark.BenchmarkError, match="runs.tgz would be"):
        benchmark.pack(str(out_dir), finals, str(tmp_path / "pack"), max_mb=2048 / 2**20)
    assert list((tmp_path / "pack").iterdir()) == []
    (out_dir / "final.csv").write_text("x" * 4096)
    with pytest.raises(benchmark.BenchmarkError, match="final.csv"):
        benchmark.pack(str(out_dir), finals, str(tmp_path / "pack2"), max_mb=2048 / 2**20)
    assert not (tmp_path / "pack2").exists()
    with pytest.raises(benchmark.BenchmarkError, match=r"2 files \(at most 1\)"):
        benchmark.pack(str(out_dir), finals, str(tmp_path / "pack4"), max_files=1, max_mb=1.0)
    written = benchmark.pack(str(out_dir), finals, str(tmp_path / "pack3"), max_mb=1.0)
    assert sorted(os.path.basename(path) for path in written) == ["final.csv", "runs.tgz"]


def test_gpu_crl_runs_within_its_time_budget_packs_within_the_limits_and_unpacks_elsewhere(tmp_path):
    """The preset at a toy scale (two seeds in one process): a budget too short starts nothing; a
    long one runs the job; --pack leaves at most 8 files of at most 16 MB; --unpack on another
    folder gives the same table; a second window finds the job finished."""
    script = [sys.executable, str(ROOT / "results" / "tools" / "benchmark.py"), "--preset=gpu-crl", "--env-ids=reacher"]
    window = [*script, "--seeds", "1", "2", *TINY_EXTRA, f"--out-dir={tmp_path / 'gpu'}", "--no-plot"]
    short = subprocess.run([*window, "--time-budget=5"], capture_output=True, text=True, timeout=600)
    assert short.returncode == 0, short.stderr[-3000:]
    assert "not started: estimated 240 s, 5 s of --time-budget left" in short.stdout
    assert not (tmp_path / "gpu" / "runs").exists()
    pack = tmp_path / "pack"
    long = subprocess.run([*window, "--time-budget=900", f"--pack={pack}"], capture_output=True, text=True, timeout=900)
    assert long.returncode == 0, long.stdout[-3000:] + long.stderr[-3000:]
    files = sorted(path.name for path in pack.iterdir())
    assert files == sorted(["summary.md", "final.csv", "evals.csv", "timings.json", "jobs.json", "runs.tgz"])
    assert all(path.stat().st_size <= 16 * 2**20 for path in pack.iterdir())
    jobs = json.loads((pack / "jobs.json").read_text())
    assert list(jobs) == ["crl_infonce/reacher/1-2"] and jobs["crl_infonce/reacher/1-2"]["finished"]
    here = tmp_path / "here"
    back = subprocess.run(
        [*script, "--seeds", "1", "2", *TINY_EXTRA, f"--out-dir={here}", f"--unpack={pack}", "--no-plot"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert back.returncode == 0, back.stderr[-3000:]
    with open(here / "final.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["env_id"], r["seed"], r["env_steps"]) for r in rows] == [
        ("reacher", "1", "400"),
        ("reacher", "2", "400"),
    ]
    assert not list(here.glob("runs/*/*.eqx")) and len(list(here.glob("runs/*/events.out.tfevents*"))) == 2
    again = subprocess.run([*window, "--time-budget=5"], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "already done" in again.stdout and "not started" not in again.stdout


# ------------------------------------------------------------------ the runner's tables on a full or read-only disk
def small_disk_unavailable() -> str | None:
    """Why a tmpfs cannot be mounted in a private mount namespace here (None: it can)."""
    if os.geteuid() != 0:
        return "mounting a small tmpfs in a private mount namespace (unshare -m) needs root"
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=4k tmpfs /mnt"], capture_output=True)
    return None if probe.returncode == 0 else f"unshare -m + mount -t tmpfs failed: {probe.stderr.decode().strip()}"


def finished_smoke_run(root: pathlib.Path) -> None:
    """A finished cpu-smoke run of crl_infonce, as its event file would hold it (written here
    with tensorboardX: no training needed to test the tables)."""
    from tensorboardX import SummaryWriter

    run_dir = root / "runs" / "reacher__crl_infonce__1__100"
    writer = SummaryWriter(str(run_dir))
    for step, success in ((0, 0.0), (200, 0.5), (400, 1.0)):
        for tag in benchmark.EVAL_TAGS.values():
            writer.add_scalar(tag, success, step)
        writer.add_scalar("charts/SPS", 1000.0, step)
    writer.close()


@pytest.mark.parametrize("disk", ["full", "read-only"])
def test_the_runners_tables_on_a_full_or_read_only_disk_stop_in_one_line_and_leave_no_partial_file(tmp_path, disk):
    """--finished-only writes evals.csv, final.csv, summary.md and curves.png next to its runs.
    On a 64 KiB tmpfs the runs and the CSVs fit and the figure does not; on a read-only one
    nothing fits. Either way: exit 2, one line naming the file and the reason, no traceback,
    no temporary file, the runs as they were."""
    reason = small_disk_unavailable()
    if reason:
        pytest.skip(reason)
    source = tmp_path / "source"
    finished_smoke_run(source)
    out = tmp_path / "out"
    out.mkdir()
    runner = [
        sys.executable,
        str(ROOT / "results" / "tools" / "benchmark.py"),
        "--preset=cpu-smoke",
        "--algorithms=crl_infonce",
    ]
    runner += ["--finished-only", f"--out-dir={out}"]
    steps = [
        f"mount -t tmpfs -o size=64k tmpfs {out}",
        f"cp -r {source / 'runs'} {out}/",
        *([f"mount -o remount,ro {out}"] if disk == "read-only" else []),
        " ".join(runner),
    ]
    script = " && ".join(steps) + f"; status=$?; find {out} -type f > {tmp_path / 'files'}; exit $status"
    result = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    (line,) = result.stderr.strip().splitlines()
    expected = "curves.png" if disk == "full" else "evals.csv"
    reason = "No space left on device" if disk == "full" else "Read-only file system"
    assert line.startswith("error: could not write") and expected in line and reason in line, line
    files = {os.path.relpath(f, out) for f in (tmp_path / "files").read_text().split()}
    assert not [f for f in files if ".tmp" in f]
    assert {
        "runs/reacher__crl_infonce__1__100/" + f for f in os.listdir(source / "runs" / "reacher__crl_infonce__1__100")
    } <= files
    if disk == "full":  # the tables that fitted are whole
        assert {"evals.csv", "final.csv", "summary.md"} <= files


def test_compare_files_times_two_versions_alternately_and_prints_their_ratio():
    """The same file against itself with --no-presample for the first version only."""
    tiny = "--num-envs 4 --unroll-length 10 --batch-size 16 --buffer-size 100 --learning-starts 10 --width 16 --depth 1"
    script = str(ROOT / "results" / "tools" / "compare_files.py")
    algorithm = str(ROOT / "algorithms" / "crl_infonce.py")
    command = [sys.executable, script, "--a", algorithm, "--b", algorithm, "--a-flags=--no-presample"]
    command += [f"--flags={tiny} --updates-per-rollout 2 --episode-length 20", "--steps", "2", "--rounds", "2"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split("|")[1:-1] for line in result.stdout.splitlines() if line.startswith("| ") and "---" not in line]
    assert [r[0].strip() for r in rows] == ["round", "1", "2"]
    for _, a_sps, b_sps, ratio in rows[1:]:
        a_sps, b_sps = float(a_sps.replace(",", "")), float(b_sps.replace(",", ""))
        assert min(a_sps, b_sps) > 0 and abs(float(ratio) - b_sps / a_sps) < 0.01
    assert "--no-presample" in result.stdout.split("a: ")[1].splitlines()[0]
    assert "presample" not in result.stdout.split("b: ")[1].splitlines()[0]
