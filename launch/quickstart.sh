#!/usr/bin/env bash
# The README's main job, end to end on this machine: install what is missing, build, pack
# Fashion-MNIST into HDF5 shards, verify them, and run the pipeline stages that exist.
# Usage: launch/quickstart.sh [WORK_DIR]   (default: ./quickstart)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-quickstart}
start=$(date +%s)

bash launch/setup.sh
bash launch/build.sh
umbra=build/launch/umbra
mkdir -p "$work"

if [[ -f "$work/fashion-mnist/manifest.json" ]]; then
  echo "quickstart: $work/fashion-mnist already packed"
else
  $umbra pack fashion-mnist --out "$work/fashion-mnist"
fi
$umbra inspect "$work/fashion-mnist"

echo
echo "quickstart: data ready in $work/fashion-mnist ($(( $(date +%s) - start )) s)."
