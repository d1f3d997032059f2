#!/usr/bin/env bash
# One command of a GPU lent for minutes at a time: at most about 9.5 minutes, everything it
# writes in $OUT as two files (window.tgz and summary.txt), within the 8 files that come back.
#
#   bash results/tools/gpu_window.sh measure        # seed_cost.py, step_latency.py, depths 4 and 64 at the chosen default
#   bash results/tools/gpu_window.sh crl [SECONDS]  # gpu-crl jobs that fit in SECONDS (default 420), packed
#
# `crl` may take SECONDS + 2 minutes (a job stopped at the budget gets 30 s to end, then the
# tables and the pack). A window (15 minutes of device time, its start of 1-2 minutes included)
# holds one `measure` or one `crl 420`, and a second call with what is left: `crl` with the
# minutes left less 3, as seconds. Back on this side:
#
#   mkdir -p window && tar xzf FILES_AT/window.tgz -C window
#   python results/tools/benchmark.py --preset gpu-crl --unpack window/gpu-crl   # rows into results/benchmark/gpu-crl/
#
# and record the figures of window/*.log in results/notes/ (seed_cost.md, step_latency.md) with the
# device and versions of window/env.txt. Where the project's wheels were carried as .whl/ (the
# GPU machine lacks brax, mujoco, tyro, tensorboardX), they are installed first. TINY=1 runs
# every step at a toy scale on reacher: a check of the command on a CPU (a few minutes).
set -uo pipefail
cd "$(dirname "$0")/../.."
: "${OUT:?set OUT to the folder that comes back}"
mode=${1:?measure or crl}
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
      --pack "$work/gpu-crl"
    ;;
  *)
    echo "unknown mode $mode: measure or crl" >&2
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
