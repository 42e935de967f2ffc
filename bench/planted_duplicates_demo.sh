#!/usr/bin/env bash
# The memorisation check and the canary audit on planted data, end to end (issue 7's
# demonstration). Three runs on the same data (5,000 Fashion-MNIST training images + 10 further
# images x 200 copies, bench/planted_fmnist.py), each followed by `umbra audit`:
#   nonprivate  bench/planted_duplicates.yaml as is: the check should flag samples that copy the
#               planted images (and name them in summary.json's copied_training_ids).
#   dp          the same with DP-SGD at epsilon = 10 (both stages) and canaries: no planted image
#               flagged, and the canaries' empirical epsilon lower bound below the accountant's.
#   canary0     sigma = 0 (non-private) with the same canaries on the first CANARY_BASE (500)
#               images alone (no planted copies), CANARY_AE_STEPS (1000) autoencoder steps so that
#               each canary is seen ~100 times: the audit's score must then separate the included canaries, and the
#               bound reach its ceiling (all guesses right).
# Per-example DP protects one record; an image present 200 times is a group of 200 records, for
# which epsilon = 10 promises nothing (group privacy gives 2000). The dp run shows what DP-SGD's
# clipping and noise do to such a model in practice, not a guarantee about the planted images.
#
#   bench/planted_duplicates_demo.sh WORK_DIR [nonprivate] [dp] [canary0]     (default: all three)
# Environment: BASE (base images, default 1000: on 2 CPU cores a model trained for minutes only
# reproduces images it sees very often, so the planted copies are 2/3 of this demo's data),
# AE_STEPS, PRIOR_STEPS (non-private run), DP_AE_STEPS, DP_PRIOR_STEPS, CANARY_BASE,
# CANARY_AE_STEPS, CANARY_PRIOR_STEPS, SAMPLES (audit samples,
# default 1000), CANARIES (default 100), RANKS (default 1), UMBRA (binary). Each WORK_DIR holds
# one BASE.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=${1:?usage: planted_duplicates_demo.sh WORK_DIR [nonprivate] [dp] [canary0]}
shift
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(nonprivate dp canary0)
umbra=${UMBRA:-$(find "$here/build" -name umbra -type f -perm -u+x | head -1)}
[ -x "$umbra" ] || { echo "planted_duplicates_demo: no umbra binary (build it or set UMBRA)" >&2; exit 2; }
python=${PYTHON:-/usr/bin/python3}
fmnist=${UMBRA_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
base=${BASE:-1000}
samples=${SAMPLES:-1000}
canaries=${CANARIES:-100}
ranks=${RANKS:-1}
config=$here/bench/planted_duplicates.yaml
launch=()
if [ "$ranks" -gt 1 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  launch=(mpirun --oversubscribe --bind-to none -np "$ranks")
fi
mkdir -p "$work"
data=$work/data
if [ ! -f "$data/manifest.json" ]; then
  "$python" "$here/bench/planted_fmnist.py" "$fmnist" "$work/source" "$base" 10 200
  "$umbra" pack fashion-mnist --source "$work/source" --out "$data" --force
  cp "$work/source/planted.json" "$work/planted.json"
fi
plain=$work/data_plain  # the first CANARY_BASE images alone, for the canary0 run
if [ ! -f "$plain/manifest.json" ]; then
  "$python" "$here/tests/trainer/tiny_fmnist.py" "$fmnist" "$work/source_plain" "${CANARY_BASE:-500}" 10000
  "$umbra" pack fashion-mnist --source "$work/source_plain" --out "$plain" --force
fi

run_part() {  # run_part NAME DATA_DIR [overrides...]
  local name=$1 data=$2
  shift 2
  local run=$work/runs/$name
  local start end
  start=$(date +%s)
  if [ ! -f "$run/summary.json" ]; then  # written when `umbra train` completes
    "${launch[@]}" "$umbra" train --config "$config" data.path="$data" run.dir="$work/runs" \
      run.name="$name" "$@"
  fi
  end=$(date +%s)
  echo "planted_duplicates_demo: $name trained in $((end - start)) s"
  start=$end
  "${launch[@]}" "$umbra" audit --run "$run" --samples "$samples" --out "$run/audit" --no-quality
  end=$(date +%s)
  echo "planted_duplicates_demo: $name audited in $((end - start)) s"
  "$python" - "$work/planted.json" "$run/audit/summary.json" "$name" <<'PY'
import json, sys
planted = json.load(open(sys.argv[1]))
s = json.load(open(sys.argv[2]))
name = sys.argv[3]
first_copy = {min(v): int(k) for k, v in planted["copy_positions"].items()}  # id -> source pos
copy_ids = {i for v in planted["copy_positions"].values() for i in v}
m = s["memorization"]
g, h = m["generated"], m["heldout"]
copied = g.get("copied_training_ids", [])
on_planted = sum(c["flagged_samples"] for c in copied if c["id"] in copy_ids)
planted_hit = sorted({c["id"] for c in copied if c["id"] in copy_ids})
print(f"[{name}] memorisation: {g['flagged']} of {g['count']} samples flagged "
      f"(rate {g['flag_rate']:.4f}; held-out null {h['flagged']} of {h['count']}, "
      f"rate {h['flag_rate']:.4f}); {on_planted} flagged samples copy a planted image; "
      f"planted images copied: {len(planted_hit)} of {len(planted['copy_positions'])}; "
      f"flagged samples copying a non-planted image: {g['flagged'] - on_planted}")
c = s.get("canaries", {})
if c.get("present"):
    print(f"[{name}] canaries: {c.get('guesses')} guesses, {c.get('correct')} right; "
          f"epsilon lower bound {c.get('epsilon_lower_bound'):.3f} (ceiling "
          f"{c.get('epsilon_ceiling'):.3f}); accountant epsilon {c.get('accountant_epsilon')}")
p = s.get("privacy", {})
if p.get("private"):
    print(f"[{name}] accountant: epsilon {p.get('epsilon')} at delta {p.get('delta')}")
PY
}

for part in "${parts[@]}"; do
  case $part in
    nonprivate)
      run_part nonprivate "$data" autoencoder.max_steps="${AE_STEPS:-400}" prior.max_steps="${PRIOR_STEPS:-1200}"
      ;;
    dp)
      run_part dp "$data" autoencoder.max_steps="${DP_AE_STEPS:-100}" prior.max_steps="${DP_PRIOR_STEPS:-300}" \
        privacy.enabled=true privacy.target_epsilon=10 privacy.delta=1e-5 \
        privacy.noise_multiplier=0 privacy.max_grad_norm=1 privacy.expected_batch_size=128 \
        privacy.noise_multiplicity=2 privacy.max_physical_batch=64 \
        data.canaries.count="$canaries" data.canaries.kind=ood data.canaries.seed=7
      ;;
    canary0)
      run_part canary0 "$plain" autoencoder.max_steps="${CANARY_AE_STEPS:-1000}" \
        prior.max_steps="${CANARY_PRIOR_STEPS:-300}" \
        data.canaries.count="$canaries" data.canaries.kind=ood data.canaries.seed=7
      ;;
    *)
      echo "planted_duplicates_demo: unknown part '$part' (nonprivate, dp, canary0)" >&2
      exit 2
      ;;
  esac
done
