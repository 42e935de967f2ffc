// Where this process sits in the job, from the launcher's environment (DESIGN.md §7), before MPI
// is initialised, and how many intra-op threads it should use.
//
// Launchers, first match wins:
//   Open MPI (mpirun)  OMPI_COMM_WORLD_RANK, _SIZE, _LOCAL_RANK, _LOCAL_SIZE
//   Slurm (srun)       SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID; the local size from
//                      SLURM_NTASKS_PER_NODE or SLURM_STEP_TASKS_PER_NODE/SLURM_TASKS_PER_NODE
//                      ("2(x3),1") at SLURM_NODEID. Only inside a job step (SLURM_STEP_ID set):
//                      an sbatch script itself also has SLURM_PROCID=0 and SLURM_NTASKS=<all>,
//                      but is one process.
//   torchrun-style     RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE (the last defaults to
//                      WORLD_SIZE: one node)
//   none               a single process.
// A malformed or inconsistent value throws umbra::Error naming the variable and its value.
#pragma once

#include <functional>
#include <string>

namespace umbra {

struct WorldInfo {
  int rank = 0;
  int size = 1;
  int local_rank = 0;           // rank among the processes of this node (also the GPU index)
  int local_size = 1;           // processes on this node
  std::string source = "none";  // "Open MPI", "Slurm", "torchrun", "none"
};

// Returns the value of an environment variable, or nullptr when unset.
using EnvLookup = std::function<const char*(const char*)>;

// Reads the process environment unless another lookup is given (tests pass a map).
WorldInfo discover_world(const EnvLookup& env = nullptr);

// CPUs this process may run on (its affinity mask) and CPUs online on the machine.
int affinity_cores();
int machine_cores();

// Intra-op threads for this process: `requested` when > 0; otherwise, when the launcher bound the
// process to a subset of the machine (affinity < machine), that subset is already this rank's
// share and all of it is used; otherwise the machine's cores divided by the ranks on the node.
// Always at least 1.
int intra_op_threads(int local_size, int requested = 0);
int intra_op_threads(int local_size, int requested, int affinity, int machine);

}  // namespace umbra
