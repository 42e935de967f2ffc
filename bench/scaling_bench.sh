#!/usr/bin/env bash
# Data-parallel scaling on this machine: `umbra train` throughput with 2 ranks x 1 thread against
# 1 rank x 1 thread (weak scaling: the same batch per rank, so 2 ranks take a global batch twice
# as large), with each rank's step-time breakdown (data, forward, backward, clip, all-reduce
# wait, optimizer) from the umbra_step_duration_seconds{phase} histograms, scraped from the
# ranks' Prometheus endpoints while they train. Steady state only: the figures are differences
# between the first scrape after --warmup steps and the last scrape before the job ends.
#
#   bench/scaling_bench.sh [--steps N] [--warmup W] [--batch B] [--channels C] [--stage S]
#                          [--data DIR] [--ranks "1 2"] [--port-base P] [--out DIR] [--no-control]
#
# Defaults: 80 steps (first 20 skipped) of the tiny autoencoder of configs/tiny_test.yaml (8
# channels), batch 32 per rank, on a 6,000-image Fashion-MNIST subset packed on first use.
# Efficiency = throughput(2 ranks) / (2 x throughput(1 rank)); target >= 90% (DESIGN.md §7).
#
# Control (on unless --no-control): two independent 1-rank jobs at once, each pinned to its own
# core, with no communication at all. Their throughput over 2 x one job alone is what this machine
# gives two processes sharing its caches and memory bus: the ceiling for any 2-rank job here.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
steps=80 warmup=20 batch=32 channels=8 stage=autoencoder data="" ranks="1 2" port_base=9470
control=1
out=${TMPDIR:-/tmp}/umbra_scaling_bench
umbra=${UMBRA_BIN:-$src/build/launch/umbra}
python=${UMBRA_PYTHON:-/usr/bin/python3}
while [ $# -gt 0 ]; do
  case $1 in
    --steps) steps=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --channels) channels=$2; shift 2 ;;
    --stage) stage=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    --port-base) port_base=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --no-control) control=0; shift ;;
    -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) echo "scaling_bench: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ "$stage" = autoencoder ] || { echo "scaling_bench: only --stage autoencoder is wired up" >&2; exit 2; }
[ -x "$umbra" ] || { echo "scaling_bench: $umbra not found (build it, or set UMBRA_BIN)" >&2; exit 1; }
mkdir -p "$out"
if [ -z "$data" ]; then
  data=$out/fmnist_6000
  bash "$src/tests/trainer/make_tiny_data.sh" "$umbra" "$python" "$src" "$data" 6000 500 > /dev/null
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

# scrape_while RUN PORT0 COUNT PID...: scrape ports PORT0..PORT0+COUNT-1 about 4 times a second
# while any PID lives, into RUN/scrapes/rank<r>.<i>.txt: <t> then the exposition text.
scrape_while() {
  local run=$1 port0=$2 count=$3 i=0 r t body
  shift 3
  alive() { local p; for p in "$@"; do kill -0 "$p" 2> /dev/null && return 0; done; return 1; }
  while alive "$@"; do
    for ((r = 0; r < count; ++r)); do
      t=$(date +%s.%N)
      if body=$(curl -s --max-time 1 "http://127.0.0.1:$((port0 + r))/metrics"); then
        printf '%s\n%s\n' "$t" "$body" > "$run/scrapes/rank$r.$(printf %06d $i).txt"
      fi
    done
    i=$((i + 1))
    sleep 0.25
  done
}

for np in $ranks; do
  run=$out/np$np
  rm -rf "$run" && mkdir -p "$run/scrapes"
  "$src/launch/umbra-mpirun" -q -n "$np" --threads 1 --bind core --umbra "$umbra" \
    train --config "$src/configs/tiny_test.yaml" "data.path=$data" "run.dir=$run" run.name=run \
    stage=autoencoder "autoencoder.max_steps=$steps" "autoencoder.batch_size=$((batch * np))" \
    "autoencoder.channels=$channels" autoencoder.log_every=10 "checkpoint.every_steps=$steps" \
    monitoring.enabled=true "monitoring.port_base=$port_base" > "$run/train.log" 2>&1 &
  job=$!
  scrape_while "$run" "$port_base" "$np" "$job"
  wait "$job" || { cat "$run/train.log"; echo "scaling_bench: training on $np rank(s) failed" >&2; exit 1; }
done

# The control: two independent single-process jobs, one per core, scraped like a 2-rank job.
if [ "$control" = 1 ]; then
  run=$out/np2x1
  rm -rf "$run" && mkdir -p "$run/scrapes"
  jobs_=()
  for r in 0 1; do
    OMP_NUM_THREADS=1 taskset -c "$r" "$umbra" train --config "$src/configs/tiny_test.yaml" \
      "data.path=$data" "run.dir=$run/job$r" run.name=run threads=1 stage=autoencoder \
      "autoencoder.max_steps=$steps" "autoencoder.batch_size=$batch" \
      "autoencoder.channels=$channels" autoencoder.log_every=10 "checkpoint.every_steps=$steps" \
      monitoring.enabled=true "monitoring.port_base=$((port_base + 10 + r))" \
      > "$run/train$r.log" 2>&1 &
    jobs_+=($!)
  done
  scrape_while "$run" "$((port_base + 10))" 2 "${jobs_[@]}"
  for r in 0 1; do
    wait "${jobs_[$r]}" || { cat "$run/train$r.log"; echo "scaling_bench: control job $r failed" >&2; exit 1; }
  done
fi

"$python" - "$out" "$warmup" "$batch" "$control" $ranks <<'EOF'
import glob, json, os, re, sys
out, warmup, batch, control = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
ranks = [int(x) for x in sys.argv[5:]]
PHASES = ["data", "forward", "backward", "clip", "allreduce", "optimizer"]

def parse(path):
    with open(path) as f:
        t = float(f.readline())
        vals = {}
        for line in f:
            m = re.match(r'(umbra_[a-z_]+)(\{[^}]*\})? ([-+0-9.eEinfa]+)$', line.strip())
            if not m:
                continue
            name, labels, v = m.group(1), m.group(2) or "", float(m.group(3))
            phase = re.search(r'phase="([a-z]+)"', labels)
            key = name + (":" + phase.group(1) if phase else "")
            vals[key] = v
    return t, vals

def measure(folder, count):
    per_rank = []
    for r in range(count):
        scrapes = [parse(p) for p in sorted(glob.glob(f"{out}/{folder}/scrapes/rank{r}.*.txt"))]
        scrapes = [s for s in scrapes if "umbra_steps_total" in s[1]]
        if not scrapes:
            sys.exit(f"{folder}: no scrape of rank {r} (monitoring port busy?)")
        first = next((s for s in scrapes if s[1]["umbra_steps_total"] >= warmup), None)
        # The last scrape before the final step: the final step also evaluates the model and
        # writes a checkpoint, which are not training throughput.
        final = scrapes[-1][1]["umbra_steps_total"]
        last = [s for s in scrapes if s[1]["umbra_steps_total"] < final][-1]
        if first is None or last[1]["umbra_steps_total"] - first[1]["umbra_steps_total"] < 10:
            sys.exit(f"{folder}: too few steps between scrapes; raise --steps")
        d = lambda k: last[1].get(k, 0.0) - first[1].get(k, 0.0)
        n = d("umbra_steps_total")
        per_rank.append({
            "steps": n, "seconds": last[0] - first[0], "samples": d("umbra_samples_total"),
            "phase_ms": {p: 1e3 * d(f"umbra_step_duration_seconds_sum:{p}") / n for p in PHASES},
        })
    return per_rank

results = {}
for np_ in ranks:
    per_rank = measure(f"np{np_}", np_)
    # Throughput: steps per second (the scrape window) times the global batch.
    steps_per_s = per_rank[0]["steps"] / per_rank[0]["seconds"]
    results[np_] = {"images_per_s": steps_per_s * batch * np_, "ranks": per_rank}
control_result = None
if control:
    jobs = measure("np2x1", 2)
    control_result = {"images_per_s": sum(batch * x["steps"] / x["seconds"] for x in jobs),
                      "ranks": jobs}
print(f"weak scaling, {batch} images per rank per step, 1 thread per rank")
for np_, res in results.items():
    for r, x in enumerate(res["ranks"]):
        ph = x["phase_ms"]
        total = sum(ph.values())
        print(f"  np={np_} rank {r}: {x['steps']:.0f} steps in {x['seconds']:.1f} s; ms/step " +
              ", ".join(f"{p} {ph[p]:.2f}" for p in PHASES) + f"; sum {total:.1f}, wall "
              f"{1e3 * x['seconds'] / x['steps']:.1f}")
    print(f"  np={np_}: {res['images_per_s']:.0f} images/s")
if control_result:
    for r, x in enumerate(control_result["ranks"]):
        ph = x["phase_ms"]
        print(f"  control job {r} (alone on core {r}): {x['steps']:.0f} steps in {x['seconds']:.1f} s;"
              " ms/step " + ", ".join(f"{p} {ph[p]:.2f}" for p in PHASES) +
              f"; wall {1e3 * x['seconds'] / x['steps']:.1f}")
    print(f"  control, 2 independent 1-rank jobs at once: {control_result['images_per_s']:.0f} images/s")
if 1 in results and 2 in results:
    eff = results[2]["images_per_s"] / (2 * results[1]["images_per_s"])
    print(f"scaling efficiency 2 ranks vs 1: {100 * eff:.1f}% (target >= 90%)")
    if control_result:
        ceiling = control_result["images_per_s"] / (2 * results[1]["images_per_s"])
        print(f"machine ceiling (2 independent jobs vs 2 x 1 job): {100 * ceiling:.1f}%; "
              f"2 ranks reach {100 * eff / ceiling:.1f}% of it")
record = {str(k): v for k, v in results.items()}
if control_result:
    record["control_2x1"] = control_result
with open(os.path.join(out, "scaling.json"), "w") as f:
    json.dump(record, f, indent=1)
EOF
