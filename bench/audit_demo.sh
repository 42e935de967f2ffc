#!/usr/bin/env bash
# End-to-end audit and release on Fashion-MNIST, timed: pack -> train (configs/tiny_test.yaml
# unless CONFIG is given) -> `umbra audit` of N samples against the 60,000 training images ->
# `umbra release` -> `umbra release --verify`. Prints the audit table and the seconds of each
# audit phase (summary.json "seconds").
#
#   bench/audit_demo.sh [WORK_DIR] [N_SAMPLES] [extra audit flags...]
#   RANKS=2 bench/audit_demo.sh /tmp/demo 10000 --no-quality     # under mpirun -np 2
#   CONFIG=configs/fmnist.yaml bench/audit_demo.sh /tmp/demo     # a real model (hours on CPU)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/tmp/umbra_audit_demo}
n=${2:-10000}
shift $(($# < 2 ? $# : 2))
umbra=${UMBRA:-$(find "$here/build" -name umbra -type f -perm -u+x | head -1)}
config=${CONFIG:-$here/configs/tiny_test.yaml}
ranks=${RANKS:-1}
[ -x "$umbra" ] || { echo "audit_demo: no umbra binary (build it or set UMBRA)" >&2; exit 2; }
mkdir -p "$work"
[ -f "$work/data/manifest.json" ] || "$umbra" pack fashion-mnist --out "$work/data"
run="$work/runs/demo"
if [ ! -d "$run/prior/checkpoints" ]; then
  "$umbra" train --config "$config" data.path="$work/data" run.dir="$work/runs" run.name=demo
fi
launch=()
if [ "$ranks" -gt 1 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  launch=(mpirun --oversubscribe -np "$ranks")
fi
out="$work/audit_n${n}_np${ranks}"
start=$(date +%s.%N)
"${launch[@]}" "$umbra" audit --run "$run" --samples "$n" --out "$out" "$@"
end=$(date +%s.%N)
echo "audit wall time: $(echo "$end - $start" | bc) s for $n samples on $ranks rank(s)"
/usr/bin/python3 - "$out/summary.json" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
print("phases (s):", ", ".join(f"{k} {v:.1f}" for k, v in s["seconds"].items()))
print("training images searched:", s["memorization"]["training_images"])
EOF
rm -rf "$work/release"
"$umbra" release --run "$run" --audit "$out" --out "$work/release"
"$umbra" release --verify "$work/release"
