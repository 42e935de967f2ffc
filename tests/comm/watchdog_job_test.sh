#!/usr/bin/env bash
# Runs comm_watchdog_probe as a real 2-rank job and checks that the job ends in time, with a
# non-zero exit status and the expected message.
#   watchdog_job_test.sh MPIEXEC PROBE stall|kill
set -u
mpiexec=$1 probe=$2 mode=$3
timeout_s=3
limit_s=$((timeout_s + 12))  # deadline + report grace + MPI start-up and teardown

start_ms=$(($(date +%s%N) / 1000000))
output=$("$mpiexec" --oversubscribe --allow-run-as-root -np 2 "$probe" "$mode" "$timeout_s" 2>&1)
status=$?
elapsed_ms=$(($(date +%s%N) / 1000000 - start_ms))
elapsed="$((elapsed_ms / 1000)).$(printf %03d $((elapsed_ms % 1000)))"
echo "$output"
echo "--- exit status $status after $elapsed s (limit $limit_s s)"

fail() { echo "FAIL: $*"; exit 1; }
[ "$status" -ne 0 ] || fail "the job exited with status 0"
[ "$elapsed_ms" -lt $((limit_s * 1000)) ] || fail "the job took $elapsed s"
echo "$output" | grep -q "the job was not aborted" && fail "a rank finished the collective"
case $mode in
  stall)
    pattern="umbra: collective all_reduce 'probe gradients' at step 7 timed out after [0-9.]+ s on rank 0; ranks that did not arrive: 1 \[rank 1: last issued #1 barrier 'warm-up' at step 6 \(finished\)"
    echo "$output" | grep -Eq "$pattern" || fail "no watchdog message matching: $pattern"
    ;;
  kill)
    echo "$output" | grep -Eq "rank 1 .*(signal 9|Killed)|timed out after" ||
      fail "no message saying that rank 1 was killed"
    ;;
  *) fail "unknown mode $mode" ;;
esac
echo PASS
