#!/bin/bash
# The Adam-against-SPlus runs, one after another, each 3 seeds through one compile (the depth-16
# runs one seed) of crl_infonce.py with its norm energy. `bash results/notes/splus/measure.sh
# [name ...]` runs the named ones (default: all, in this order);
# `python results/notes/splus.py --runs results/notes/splus/runs` tabulates and draws them.
cd "$(dirname "$0")/../../.." && . .venv/bin/activate
R=results/notes/splus
COMMON="--num-eval-envs 256 --eval-task-episodes 16 --run-root $R/runs"
REACHER="--num-seeds 3 --env-id reacher --unroll-length 50 --total-timesteps 3000000 --num-evals 12"
UMAZE="--env-id simple_u_maze --episode-length 200 --unroll-length 50 --learning-starts 200 --total-timesteps 640000 --num-evals 10"
declare -A RUNS=(
  [reacher_adam_3e-4]="$REACHER --optimizer adam --actor-lr 3e-4 --critic-lr 3e-4"
  [reacher_adam_1e-3]="$REACHER --optimizer adam --actor-lr 1e-3 --critic-lr 1e-3"
  [reacher_splus_0.15]="$REACHER --optimizer splus --splus-lr 0.15"
  [reacher_splus_0.05]="$REACHER --optimizer splus --splus-lr 0.05"
  [reacher_adam_3e-3]="$REACHER --optimizer adam --actor-lr 3e-3 --critic-lr 3e-3"
  [reacher_splus_0.5]="$REACHER --optimizer splus --splus-lr 0.5"
  [umaze_adam_3e-4]="$UMAZE --num-seeds 3 --optimizer adam --actor-lr 3e-4 --critic-lr 3e-4"
  [umaze_splus_0.15]="$UMAZE --num-seeds 3 --optimizer splus --splus-lr 0.15"
  [umaze_adam_1e-3]="$UMAZE --num-seeds 3 --optimizer adam --actor-lr 1e-3 --critic-lr 1e-3"
  [umaze_adam_3e-3]="$UMAZE --num-seeds 3 --optimizer adam --actor-lr 3e-3 --critic-lr 3e-3"
  # depth 16: one seed each (a gradient step costs about 10x depth 2's on this CPU)
  [deep_adam_1e-3]="$UMAZE --num-seeds 1 --residual --depth 16 --optimizer adam --actor-lr 1e-3 --critic-lr 1e-3"
  [deep_splus_0.15]="$UMAZE --num-seeds 1 --residual --depth 16 --optimizer splus --splus-lr 0.15"
)
ORDER=(reacher_adam_3e-4 reacher_splus_0.15 reacher_splus_0.05 reacher_adam_1e-3 umaze_adam_3e-4 umaze_splus_0.15
  umaze_adam_1e-3 reacher_adam_3e-3 reacher_splus_0.5 umaze_adam_3e-3 deep_adam_1e-3 deep_splus_0.15)
[ $# -gt 0 ] && ORDER=("$@")
for name in "${ORDER[@]}"; do
  echo "$(date -u +%H:%M:%S) start $name" >> $R/logs/times.txt
  task=${name%%_*}; exp=${name#*_}; [ "$task" = deep ] && exp="deep16_$exp"
  python algorithms/crl_infonce.py ${RUNS[$name]} $COMMON --exp-name "crl_infonce_$exp" > $R/logs/$name.log 2>&1
  echo "$(date -u +%H:%M:%S) end $name rc=$?" >> $R/logs/times.txt
done
