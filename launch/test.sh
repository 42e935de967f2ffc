#!/usr/bin/env bash
# The README's test command: install what is missing, build, run the test suite.
# Tests labelled `slow` are excluded; run them with: ctest --test-dir build -L slow
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
bash launch/setup.sh
bash launch/build.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
ctest --test-dir build --output-on-failure -LE slow -j "$(nproc)" --timeout 900
echo "test.sh: total wall time $(( $(date +%s) - start )) s"
