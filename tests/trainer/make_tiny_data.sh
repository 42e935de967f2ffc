#!/usr/bin/env bash
# Packs a small Fashion-MNIST subset for the multi-rank training tests (CTest fixture).
#   make_tiny_data.sh UMBRA PYTHON SOURCE_DIR OUT_DIR [N_TRAIN N_TEST]
# SOURCE_DIR is the repository root; the images come from /usr/share/datasets/fashion-mnist.
set -euo pipefail
umbra=$1 python=$2 src=$3 out=$4 n_train=${5:-1200} n_test=${6:-200}
fmnist=${UMBRA_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
if [ -f "$out/manifest.json" ]; then
  echo "make_tiny_data: $out exists"
  exit 0
fi
tmp=$(mktemp -d "${out%/}.src.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
"$python" "$src/tests/trainer/tiny_fmnist.py" "$fmnist" "$tmp" "$n_train" "$n_test"
"$umbra" pack fashion-mnist --source "$tmp" --out "$out" --force
