#!/usr/bin/env bash
# Installs what Umbra needs from Debian bookworm (DESIGN.md §3) and skips what is present.
# Idempotent; needs root (or sudo). Usage: launch/setup.sh [--tools]
#   --tools  also the optional tools: clang + libFuzzer runtime (bench/fuzz.sh), chromium
#            (monitoring/render_console.sh), clang-format.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libtorch-dev libopenblas0-pthread
  libopenmpi-dev openmpi-bin
  libhdf5-dev hdf5-tools
  prometheus-cpp-dev prometheus
  libgtest-dev libgmock-dev libbenchmark-dev
  libyaml-cpp-dev libcli11-dev libspdlog-dev nlohmann-json3-dev
  libpng-dev libssl-dev zlib1g-dev
  dataset-fashion-mnist
  python3 python3-torch python3-numpy python3-h5py
)
if [[ "${1:-}" == "--tools" ]]; then
  packages+=(clang libclang-rt-14-dev clang-format chromium)
fi

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "setup: installing ${#missing[@]} packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "setup: done"
