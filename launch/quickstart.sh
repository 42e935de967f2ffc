#!/usr/bin/env bash
# The README's main job, end to end on this machine: install what is missing, build, pack
# Fashion-MNIST into HDF5 shards and verify them, train a small DP-SGD model (both stages, one
# epsilon) on 2 MPI ranks, sample from it, audit what it memorised, and write a privacy-audited
# release bundle, then verify the bundle's hashes.
# Usage: launch/quickstart.sh [WORK_DIR]   (default: ./quickstart)
# Environment: UMBRA_QUICKSTART_RANKS (default 2), UMBRA_QUICKSTART_OVERRIDES (extra key=value
# overrides for configs/quickstart.yaml, e.g. "autoencoder.max_steps=20 prior.max_steps=20").
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-quickstart}
ranks=${UMBRA_QUICKSTART_RANKS:-2}
start=$(date +%s)
stamp() { echo "quickstart: $* ($(( $(date +%s) - start )) s)"; }

bash launch/setup.sh
bash launch/build.sh
umbra=$PWD/build/launch/umbra
mkdir -p "$work"
work=$(cd "$work" && pwd)
stamp "built"

if [[ -f "$work/fashion-mnist/manifest.json" ]]; then
  echo "quickstart: $work/fashion-mnist already packed"
else
  "$umbra" pack fashion-mnist --out "$work/fashion-mnist"
fi
"$umbra" inspect "$work/fashion-mnist"
stamp "data ready in $work/fashion-mnist"

# Training on $ranks ranks, one intra-op thread each (configs/quickstart.yaml: threads: 1).
# A re-run resumes from the newest checkpoint (run.resume: auto).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpi=(mpirun --oversubscribe --bind-to none -np "$ranks")
run=$work/runs/quickstart
# shellcheck disable=SC2086
"${mpi[@]}" "$umbra" train --config configs/quickstart.yaml data.path="$work/fashion-mnist" \
  run.dir="$work/runs" ${UMBRA_QUICKSTART_OVERRIDES:-}
stamp "trained: $run"

"$umbra" sample --run "$run" --out "$work/samples.png" --n 100
stamp "samples: $work/samples.png"

"${mpi[@]}" "$umbra" audit --run "$run" --samples 500 --quick
stamp "audit: $run/audit/index.html"

rm -rf "$work/release"
"$umbra" release --run "$run" --out "$work/release"
"$umbra" release --verify "$work/release"
stamp "release: $work/release"

cat <<MSG

quickstart: done in $(( $(date +%s) - start )) s.
  run directory     $run   (report.html, metrics.jsonl, checkpoints, logs)
  samples           $work/samples.png   (one row per class)
  audit             $run/audit/index.html
  release bundle    $work/release   (MODEL_CARD.md, privacy_report.json, SHA256SUMS)
Next: configs/fmnist_eps10.yaml for a full private run (configs/README.md documents every key).
MSG
