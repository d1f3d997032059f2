#!/bin/bash
# the quasimetric measurement runs, one after another
cd "$(dirname "$0")/../../.." && . .venv/bin/activate
R=results/notes/quasimetric
REACHER="--env-id reacher --unroll-length 50 --total-timesteps 3000000 --num-evals 6 --num-eval-envs 256"
UMAZE="--env-id simple_u_maze --episode-length 200 --unroll-length 50 --learning-starts 200 --num-eval-envs 256 --total-timesteps 640000 --num-evals 5"
for spec in "reacher:$REACHER" "umaze:$UMAZE"; do
  name=${spec%%:*}; flags=${spec#*:}
  for e in norm mrn iqe; do
    echo "$(date -u +%H:%M:%S) start $name $e" >> $R/logs/times.txt
    python algorithms/crl_infonce.py $flags --energy-fn $e --num-seeds 3 --eval-task-episodes 16 --exp-name crl_infonce_$e --run-root $R/runs > $R/logs/${name}_$e.log 2>&1
    echo "$(date -u +%H:%M:%S) end $name $e rc=$?" >> $R/logs/times.txt
  done
done
# simple_big_maze at 2M steps (--total-timesteps 2000000 --num-evals 10, the env's defaults) is not run
# yet: 126k gradient steps per seed at its default update ratio, about 45 minutes for mrn's three
# seeds on a 2-core CPU and several hours for iqe's (results/notes/quasimetric.md).
