#!/usr/bin/env bash
# Configures and builds Umbra in ./build (Release, Ninja, ccache when present).
# Usage: launch/build.sh [extra cmake -D options]
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
# Each LibTorch translation unit needs ~1 GB to compile; keep jobs within memory.
mem_gb=$(awk '/MemAvailable/ {print int($2 / 1048576)}' /proc/meminfo)
(( mem_gb > 0 && jobs > mem_gb )) && jobs=$mem_gb
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build build -j "$jobs"
