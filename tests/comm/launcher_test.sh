#!/usr/bin/env bash
# The launch scripts' error paths and command lines: launch/umbra-mpirun (bad usage and hostfile
# problems -> a clear message and exit 2; a real 2-rank job through mpirun) and
# launch/slurm/umbra.sbatch (the srun/mpirun command it builds, with stub launchers).
#   launcher_test.sh SOURCE_DIR UMBRA
set -u
src=$1 umbra=$2
wrapper=$src/launch/umbra-mpirun sbatch=$src/launch/slurm/umbra.sbatch
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# expect RC PATTERN -- COMMAND...: runs COMMAND, checks its exit status and that its output
# matches the extended regular expression PATTERN.
expect() {
  local rc=$1 pattern=$2
  shift 3
  local out status
  out=$("$@" 2>&1)
  status=$?
  echo "\$ ${*##*/}"
  echo "$out" | sed 's/^/    /' | head -n 8
  [ "$status" -eq "$rc" ] || fail "'$*' exited with $status, expected $rc"
  echo "$out" | grep -Eq -- "$pattern" || fail "'$*': output does not match: $pattern"
}

export UMBRA_BIN=$umbra
expect 0 "--hostfile FILE" -- "$wrapper" --help
expect 2 "hostfile '$tmp/missing': no such file" -- "$wrapper" --hostfile "$tmp/missing" train
mkdir "$tmp/dir"
expect 2 "hostfile '$tmp/dir': not a regular file" -- "$wrapper" --hostfile "$tmp/dir" train
: > "$tmp/empty"
expect 2 "hostfile '$tmp/empty': names no host" -- "$wrapper" --hostfile "$tmp/empty" train
printf 'node1 slots=2\nnode2 slots=two\n' > "$tmp/bad"
expect 2 "hostfile '$tmp/bad' line 2: slots 'two' is not a positive number" -- \
  "$wrapper" --hostfile "$tmp/bad" train
printf 'node1 slots=2 cpus=4\n' > "$tmp/bad2"
expect 2 "line 1: unexpected 'cpus=4'" -- "$wrapper" --hostfile "$tmp/bad2" train
if [ "$(id -u)" != 0 ]; then  # root reads any file
  printf 'node1\n' > "$tmp/secret" && chmod 000 "$tmp/secret"
  expect 2 "hostfile '$tmp/secret': not readable" -- "$wrapper" --hostfile "$tmp/secret" train
fi
expect 2 "unknown option '--frobnicate'" -- "$wrapper" --frobnicate train
expect 2 "-n 'zero': expected a positive whole number" -- "$wrapper" -n zero train
expect 2 "missing the umbra verb" -- "$wrapper" -n 2
expect 2 "--bind 'socket': expected none or core" -- "$wrapper" --bind socket train
expect 2 "option --hostfile needs a value" -- "$wrapper" --hostfile
expect 1 "umbra binary '$tmp/nope': not an executable file" -- "$wrapper" --umbra "$tmp/nope" train
expect 1 "mpirun '$tmp/nompirun': not an executable file" -- \
  "$wrapper" --mpirun "$tmp/nompirun" train

# Command lines: N from the hostfile's slots, binding, threads.
printf '# two nodes\nnode1 slots=2\nnode2 slots=3 max_slots=4\n' > "$tmp/hosts"
expect 0 "-np 5 .*--hostfile $tmp/hosts --bind-to none .*umbra train --config c\.yaml" -- \
  "$wrapper" --dry-run --hostfile "$tmp/hosts" train --config c.yaml
expect 0 "-np 2 .*--map-by slot:PE=1 --bind-to core .*-x OMP_NUM_THREADS .*train a=b threads=1" -- \
  "$wrapper" --dry-run -n 2 --bind core --threads 1 train a=b

# A real job: 2 ranks through mpirun, each printing the world it discovered.
out=$("$wrapper" -q -n 2 --umbra /usr/bin/env -- bash -c \
  'echo "rank ${OMPI_COMM_WORLD_RANK}/${OMPI_COMM_WORLD_SIZE} threads ${OPENBLAS_NUM_THREADS}"' 2>&1)
status=$?
echo "$out" | sed 's/^/    /'
[ "$status" -eq 0 ] || fail "the 2-rank job exited with $status"
for r in 0 1; do
  echo "$out" | grep -q "rank $r/2 threads 1" || fail "rank $r did not run (or saw another world)"
done

# umbra.sbatch with stub srun/mpirun that print their arguments.
mkdir "$tmp/bin"
for stub in srun mpirun; do
  printf '#!/bin/sh\necho %s "$@"\n' "$stub" > "$tmp/bin/$stub"
  chmod +x "$tmp/bin/$stub"
done
slurm_env=(SLURM_JOB_ID=42 SLURM_NTASKS=8 SLURM_CPUS_PER_TASK=4 SLURM_JOB_NUM_NODES=2
           "PATH=$tmp/bin:$PATH" "UMBRA_BIN=$umbra")
expect 0 "srun --mpi=pmix --kill-on-bad-exit=1 --cpu-bind=cores --cpus-per-task=4 .*umbra train --config c\.yaml threads=4" -- \
  env "${slurm_env[@]}" bash "$sbatch" --config c.yaml
expect 0 "mpirun -np 8 --map-by slot:PE=4 --bind-to core .*umbra train --config c\.yaml threads=4" -- \
  env "${slurm_env[@]}" UMBRA_LAUNCHER=mpirun bash "$sbatch" --config c.yaml
expect 1 "runs inside a Slurm allocation" -- env -u SLURM_JOB_ID bash "$sbatch" --config c.yaml
expect 2 "UMBRA_LAUNCHER='pbs': expected srun or mpirun" -- \
  env "${slurm_env[@]}" UMBRA_LAUNCHER=pbs bash "$sbatch" --config c.yaml

[ "$failures" -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
echo PASS
