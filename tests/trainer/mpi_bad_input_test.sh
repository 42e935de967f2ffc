#!/usr/bin/env bash
# Bad input in a multi-rank `umbra train` job ends the whole job quickly with each rank's reason:
#   mpi_bad_input_test.sh MPIEXEC UMBRA SOURCE_DIR DATA_DIR WORK_DIR
# 1. The ranks were given different configurations (an MPMD job: rank 1 gets another learning
#    rate): the config hash check at start must name it; nothing is trained.
# 2. Rank 1 cannot open its data (data.path is relative and rank 1 runs in a folder without it,
#    as on a node where the dataset is not mounted): the job must stop with rank 1's reason.
set -uo pipefail
mpiexec=$1 umbra=$(readlink -f "$2") src=$3 data=$(readlink -f "$4") work=$5
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
limit_s=60
rm -rf "$work" && mkdir -p "$work"
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

common=(train --config "$src/configs/tiny_test.yaml" threads=1 monitoring.enabled=false
        stage=autoencoder autoencoder.max_steps=4 comm.timeout_s=20 run.name=run)
# run_job NAME MPIRUN-ARGS...: runs the job; sets $output and $status; checks status and time.
run_job() {
  local name=$1
  shift
  local start=$(($(date +%s%N) / 1000000))
  output=$("$mpiexec" --oversubscribe --allow-run-as-root --bind-to none "$@" 2>&1)
  status=$?
  local ms=$(($(date +%s%N) / 1000000 - start))
  echo "$output" | grep -v '^\s*$' | head -n 8 | sed 's/^/    /'
  printf '%s: exit status %d after %d.%03d s\n' "$name" "$status" $((ms / 1000)) $((ms % 1000))
  [ "$status" -ne 0 ] || fail "$name: the job exited with status 0"
  [ "$ms" -lt $((limit_s * 1000)) ] || fail "$name: the job took more than $limit_s s"
}

run_job mismatch \
  -np 1 "$umbra" "${common[@]}" "data.path=$data" "run.dir=$work/mismatch" \
  autoencoder.optimizer.lr=0.001 : \
  -np 1 "$umbra" "${common[@]}" "data.path=$data" "run.dir=$work/mismatch" \
  autoencoder.optimizer.lr=0.002
echo "$output" | grep -Eiq "config hash.*rank 0.*rank 1|config hash.*rank 1" ||
  fail "mismatch: no message naming the config hash and rank 1"
ls "$work/mismatch/run/autoencoder/checkpoints" > /dev/null 2>&1 &&
  fail "mismatch: a checkpoint was written"

mkdir -p "$work/node0" "$work/node1"
ln -s "$data" "$work/node0/dataset"
run_job missing_data \
  -np 1 -wdir "$work/node0" "$umbra" "${common[@]}" data.path=dataset "run.dir=$work/missing" : \
  -np 1 -wdir "$work/node1" "$umbra" "${common[@]}" data.path=dataset "run.dir=$work/missing"
echo "$output" | grep -Eq "rank 1: .*dataset" ||
  fail "missing_data: no message giving rank 1's reason with the path"
echo "$output" | grep -Eq "rank 0: " && fail "missing_data: rank 0 is blamed too"

[ "$failures" -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
echo PASS
