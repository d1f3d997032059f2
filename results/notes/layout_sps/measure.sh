#!/bin/bash
# Training SPS of crl_infonce at JaxGCRL's reacher config before (7e593dc, in a git worktree at
# $OLD) and after the harness contract, alternating, each a fresh process of
# results/tools/throughput.py in its own checkout: `bash results/notes/layout_sps/measure.sh OLD`
cd "$(dirname "$0")/../../.." && . .venv/bin/activate
OLD=${1:?a worktree of the commit before}
NEW=$PWD
FLAGS="--algorithm crl_infonce --env-id reacher --episode-length 51 --unroll-length 50 --backend generalized --repeats 3"
for round in 1 2 3; do
  for tree in "$OLD" "$NEW"; do
    echo "== round $round: $(git -C "$tree" log -1 --format=%h)"
    (cd "$tree" && PYTHONPATH="$tree" python results/tools/throughput.py $FLAGS 2>&1 | grep -v "^Failed to import")
  done
done
