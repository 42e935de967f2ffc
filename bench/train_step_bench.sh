#!/usr/bin/env bash
# C++ trainer step vs the Python PyTorch reference step (issue 3 benchmark; target C++/Python
# <= 1.0), measured side by side in one run. For every (malloc, stage, batch, threads) both
# sides run as long-lived processes in lock step: the driver lets one side take one step, then
# the other, alternating who goes first (AB BA AB ...), so a change of machine load hits both
# alike. The first --warmup rounds are dropped; figure per side = median of the remaining
# --steps step times; ratio = median over rounds of (C++ step / Python step of the same round).
#
#   bench/train_step_bench.sh [--stages "ae unet"] [--batches "64 256"] [--threads "1 2"]
#                             [--steps 5] [--warmup 1] [--malloc "default heap"]
#                             [--config FILE] [--out DIR]
#
# Both sides build their models from --config (default configs/fmnist.yaml; the C++ binary
# resolves it and hands the options to the Python side as JSON). Phases per step (ms): forward
# (per-sample draws + loss), backward, sync (C++: GradientSync finish on one rank = the division
# by the batch), clip (global grad norm), optimizer (AdamW), ema.
# --malloc: "default" = glibc as is; "heap" = both sides with MALLOC_MMAP_THRESHOLD_ and
# MALLOC_TRIM_THRESHOLD_ at 4 GiB, so tensors above glibc's 32 MiB mmap ceiling are reused from
# the heap instead of being mmapped, page-faulted and unmapped at every allocation.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
stages="ae unet" batches="64 256" threads="1 2" steps=5 warmup=1 malloc=default
config=$src/configs/fmnist.yaml
out=${TMPDIR:-/tmp}/umbra_train_step_bench
bin=${UMBRA_BENCH_BIN:-$src/build/bench/train_step_bench}
python=${UMBRA_PYTHON:-/usr/bin/python3}
while [ $# -gt 0 ]; do
  case $1 in
    --stages) stages=$2; shift 2 ;;
    --batches) batches=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --malloc) malloc=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h | --help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "train_step_bench: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ -x "$bin" ] || { echo "train_step_bench: $bin not found (build the train_step_bench target, or set UMBRA_BENCH_BIN)" >&2; exit 1; }
[ -f "$config" ] || { echo "train_step_bench: --config $config: no such file" >&2; exit 1; }
for m in $malloc; do
  case $m in default | heap) ;; *) echo "train_step_bench: --malloc '$m': expected default and/or heap" >&2; exit 2 ;; esac
done
mkdir -p "$out"
"$bin" --config "$config" --options-json "$out/options.json"
echo "train_step_bench: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average $(cut -d' ' -f1-3 /proc/loadavg) at start"

"$python" - "$bin" "$python" "$here/reference/train_step.py" "$config" "$out" "$steps" "$warmup" \
  "$malloc" "$stages" "$batches" "$threads" <<'EOF'
import json, os, statistics, subprocess, sys
bin_, python, script, config, out, steps, warmup = sys.argv[1:8]
steps, warmup = int(steps), int(warmup)
mallocs, stages, batches, threads = (s.split() for s in sys.argv[8:12])
PHASES = ["forward", "backward", "sync", "clip", "optimizer", "ema"]
HEAP = {"MALLOC_MMAP_THRESHOLD_": str(4 << 30), "MALLOC_TRIM_THRESHOLD_": str(4 << 30)}

def load():
    return open("/proc/loadavg").read().split()[0]

results = open(os.path.join(out, "results.jsonl"), "w")
rows = []
for malloc in mallocs:
    env = dict(os.environ, **(HEAP if malloc == "heap" else {}))
    for stage in stages:
        for batch in batches:
            for t in threads:
                common = ["--stage", stage, "--batch", batch, "--threads", t, "--lockstep"]
                procs = {
                    "cpp": subprocess.Popen([bin_, "--config", config] + common, env=env,
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                            text=True),
                    "python": subprocess.Popen(
                        [python, script, "--options", os.path.join(out, "options.json")] + common,
                        env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True),
                }
                got = {"cpp": [], "python": []}
                loads = [load()]
                for r in range(warmup + steps):
                    for side in (("cpp", "python") if r % 2 == 0 else ("python", "cpp")):
                        p = procs[side]
                        p.stdin.write("go\n")
                        p.stdin.flush()
                        line = p.stdout.readline()
                        if not line:
                            sys.exit(f"train_step_bench: the {side} side ended early "
                                     f"({stage}, batch {batch}, {t} threads): exit {p.wait()}")
                        rec = json.loads(line)
                        rec.update(malloc=malloc, round=r, warmup=r < warmup)
                        results.write(json.dumps(rec) + "\n")
                        if r >= warmup:
                            got[side].append(rec)
                    loads.append(load())
                for p in procs.values():
                    p.stdin.close()
                    if p.wait() != 0:
                        sys.exit(f"train_step_bench: a side failed with exit {p.returncode}")
                med = {s: statistics.median(x["total_ms"] for x in v) for s, v in got.items()}
                ph = {s: {k: statistics.median(x["phases"][k] for x in v) for k in PHASES}
                      for s, v in got.items()}
                ratio = statistics.median(c["total_ms"] / p["total_ms"]
                                          for c, p in zip(got["cpp"], got["python"]))
                rows.append((malloc, stage, batch, t, med, ph, ratio, min(loads), max(loads)))
                print(f"  {malloc} {stage} batch {batch} threads {t}: C++ {med['cpp']:.1f} ms, "
                      f"Python {med['python']:.1f} ms, ratio {ratio:.3f} (load {min(loads)}-"
                      f"{max(loads)})", file=sys.stderr, flush=True)

print("\n| malloc | stage | batch | threads | C++ ms/step | Python ms/step | C++/Python | "
      "C++ fwd/bwd/sync/clip/opt/ema | Python fwd/bwd/clip/opt/ema | load |")
print("|---|---|---|---|---|---|---|---|---|---|")
for malloc, stage, batch, t, med, ph, ratio, lo, hi in rows:
    cph = "/".join(f"{ph['cpp'][x]:.1f}" for x in PHASES)
    pph = "/".join(f"{ph['python'][x]:.1f}" for x in PHASES if x != "sync")
    name = {"ae": "autoencoder", "unet": "UNet prior"}[stage]
    print(f"| {malloc} | {name} | {batch} | {t} | {med['cpp']:.1f} | {med['python']:.1f} | "
          f"**{ratio:.3f}** | {cph} | {pph} | {lo}-{hi} |")
print(f"\n(medians of {steps} lock-step rounds after {warmup} warm-up; ratio = median of the "
      "per-round C++/Python ratios; target <= 1.0)")
EOF
echo "train_step_bench: load average $(cut -d' ' -f1-3 /proc/loadavg) at end"
