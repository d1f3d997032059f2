#!/usr/bin/env bash
# One GPU job with a wall-time limit (a cluster queue's limit, a rented hour) that must hand back
# a small archive: everything it writes goes into the folder $OUT as two files, window.tgz and
# summary.txt. Its parameters:
#
#   OUT=FOLDER bash results/tools/gpu_window.sh measure        # about 9.5 minutes: seed_cost.py, step_latency.py, scaling.py
#   OUT=FOLDER bash results/tools/gpu_window.sh crl [SECONDS]  # the gpu-crl jobs that fit in SECONDS (default 420)
#   OUT=FOLDER bash results/tools/gpu_window.sh splus          # about 9 minutes: Adam against SPlus (results/notes/splus.md)
#
# * OUT: the folder the job hands back;
# * SECONDS: the time budget of `crl`, which takes up to SECONDS + 2 minutes (a job stopped at
#   the budget gets 30 s to end, then the tables and the pack): a job limited to N minutes,
#   its start included, runs `crl` with SECONDS = 60 * (N - 3);
# * PACK_MAX_FILES and PACK_MAX_MB (default 8 and 16): what the job may hand back, checked by
#   benchmark.py's --pack before anything lands in the pack.
#
# A second job with the time left continues the preset: finished runs are not repeated. Back on
# this side:
#
#   mkdir -p window && tar xzf OUT/window.tgz -C window
#   python results/tools/benchmark.py --preset gpu-crl --unpack window/gpu-crl   # rows into results/benchmark/gpu-crl/
#
# and record the figures of window/*.log in results/notes/ (seed_cost.md, step_latency.md) with the
# device and versions of window/env.txt. Where the project's wheels were carried as .whl/ (a GPU
# machine without the registries lacks brax, mujoco, tyro, tensorboardX), they are installed
# first. TINY=1 runs every step at a toy scale on reacher: a check of the command on a CPU (a
# few minutes).
set -uo pipefail
cd "$(dirname "$0")/../.."
: "${OUT:?set OUT to the folder that comes back}"
mode=${1:?measure, crl or splus}
work=$(mktemp -d)
begin=$SECONDS

if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export MUJOCO_GL=disable PYTHONUNBUFFERED=1

{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null
  python3 -c "import jax, brax, mujoco; print('jax', jax.__version__, 'brax', brax.__version__, 'mujoco', mujoco.__version__, jax.devices())"
  git log -1 --format='commit %h %s' 2>/dev/null
} > "$work/env.txt" 2>&1

step() {  # step NAME LIMIT COMMAND...: run with a time limit, its output in NAME.log
  local name=$1 limit=$2
  shift 2
  local start=$SECONDS
  timeout --signal=TERM --kill-after=30 "$limit" "$@" > "$work/$name.log" 2>&1
  echo "$name: exit $? after $((SECONDS - start)) s (limit $limit s)" >> "$work/steps.txt"
}

if [ "${TINY:-0}" = 1 ]; then
  seed_cost=(--tiny --env-id reacher --seeds 1 2)
  step_latency=(--tiny --depths 4)
  depth=(--depths 8 4 --steps 1 --repeats 1 -- --env-id reacher --num-envs 4 --unroll-length 5 --episode-length 20
         --batch-size 16 --buffer-size 40 --learning-starts 5 --width 16 --repr-dim 8 --updates-per-rollout 2)
  crl=(--env-ids reacher --seeds 1 2 --out-dir "$work/gpu-crl-runs")  # not results/benchmark/gpu-crl/
  splus_cost=(--depths 2 --steps 2 --repeats 1)
  splus_runs=(--num-envs 4 --num-eval-envs 2 --unroll-length 5 --batch-size 16 --buffer-size 40 --learning-starts 5
              --width 16 --repr-dim 8 --updates-per-rollout 2 --total-timesteps 400 --num-evals 2 --episode-length 20
              --no-eval-tasks --num-seeds 2)
  splus_depth=4
  splus_limits=(240 240 240 240 60)  # compile on a CPU: minutes
  for flag in num-envs=4 num-eval-envs=2 unroll-length=10 batch-size=16 buffer-size=100 learning-starts=10 \
              width=16 depth=1 repr-dim=8 updates-per-rollout=2 total-timesteps=400 num-evals=2 episode-length=20; do
    crl+=("--extra=--$flag")
  done
else
  seed_cost=()
  step_latency=()
  depth=(--depths 64 4 --steps 1 --repeats 1 -- --env-id humanoid --episode-length 1001 --num-envs 1024
         --learning-starts 62 --num-evals 1 --total-timesteps 10000000 --updates-per-rollout 256)
  crl=()
  splus_cost=(--depths 2 16 64)
  splus_runs=(--num-seeds 3 --num-eval-envs 256 --eval-task-episodes 16)
  splus_depth=16
  splus_limits=(60 50 60 100 20)  # seconds: the cost, a reacher, U maze and deep U maze run, the table
fi

case $mode in
  measure)
    step seed_cost 270 python3 results/tools/seed_cost.py "${seed_cost[@]}" --output "$work/seed_cost.json"
    step step_latency 180 python3 results/notes/step_latency.py "${step_latency[@]}"
    # the residual networks at depths 4 and 64 (humanoid, 1024 envs), one training step of 256
    # gradient steps, with the --scan-unroll default of this platform
    step depth 90 python3 results/tools/scaling.py "${depth[@]}"
    ;;
  crl)
    budget=${2:-420}
    step gpu-crl $((budget + 120)) python3 results/tools/benchmark.py --preset gpu-crl "${crl[@]}" --time-budget "$budget" \
      --pack "$work/gpu-crl" --pack-max-files "${PACK_MAX_FILES:-8}" --pack-max-mb "${PACK_MAX_MB:-16}"
    ;;
  splus)
    # the cost of a gradient step at depths 2, 16 and 64, then Adam and SPlus, 3 seeds each, on
    # reacher (3M steps), the point U maze (640k) and the point U maze with a residual critic of
    # depth 16, Adam at 3e-3 (its best on reacher and the maze, results/notes/splus.md) and SPlus
    # at its default 0.15; then their table
    step splus_cost "${splus_limits[0]}" python3 results/notes/splus.py "${splus_cost[@]}" --output "$work/splus_cost.md"
    reacher=(--env-id reacher --unroll-length 50 --total-timesteps 3000000 --num-evals 12)
    umaze=(--env-id simple_u_maze --episode-length 200 --unroll-length 50 --learning-starts 200 --total-timesteps 640000 --num-evals 10)
    deep=("${umaze[@]}" --residual --depth "$splus_depth")
    [ "${TINY:-0}" = 1 ] && reacher=(--env-id reacher) umaze=(--env-id simple_u_maze) deep=(--env-id simple_u_maze --residual --depth 4)
    declare -A limit=([reacher]=${splus_limits[1]} [umaze]=${splus_limits[2]} [deep]=${splus_limits[3]})
    for task in reacher umaze deep; do
      declare -n flags=$task
      step "splus_${task}_adam" "${limit[$task]}" python3 algorithms/crl_infonce.py "${flags[@]}" "${splus_runs[@]}" --optimizer adam --actor-lr 3e-3 --critic-lr 3e-3 \
        --exp-name "crl_infonce_${task}_adam" --run-root "$work/splus-runs"
      step "splus_${task}_splus" "${limit[$task]}" python3 algorithms/crl_infonce.py "${flags[@]}" "${splus_runs[@]}" --optimizer splus \
        --exp-name "crl_infonce_${task}_splus" --run-root "$work/splus-runs"
    done
    step splus_table "${splus_limits[4]}" python3 results/notes/splus.py --runs "$work/splus-runs" --output "$work/splus_table.md"
    ;;
  *)
    echo "unknown mode $mode: measure, crl or splus" >&2
    exit 2
    ;;
esac

echo "window: $((SECONDS - begin)) s in all" >> "$work/steps.txt"
tar czf "$OUT/window.tgz" -C "$work" .
{
  cat "$work/env.txt" "$work/steps.txt"
  for log in "$work"/*.log; do
    echo "== $(basename "$log") (last lines)"
    tail -n 25 "$log"
  done
} > "$OUT/summary.txt"
cat "$OUT/summary.txt"
