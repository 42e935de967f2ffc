// A 2-rank job for comm_watchdog_{stall,kill} (watchdog_job_test.sh).
//   comm_watchdog_probe stall TIMEOUT_S   rank 1 sleeps far past the deadline before an
//                                         all-reduce: rank 0's watchdog must abort the job.
//   comm_watchdog_probe kill TIMEOUT_S    rank 1 kills itself (SIGKILL) before the all-reduce:
//                                         mpirun must end the job.
// Reaching the end is a failure (exit 3): the job should have been aborted.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "comm/mpi_communicator.h"
#include "comm/mpi_session.h"

int main(int argc, char** argv) {
  umbra::MpiSession session(&argc, &argv);
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s stall|kill TIMEOUT_S\n", argv[0]);
    return 2;
  }
  const std::string mode = argv[1];
  umbra::CommOptions options;
  options.timeout_s = std::atof(argv[2]);
  umbra::MpiCommunicator comm(MPI_COMM_WORLD, options);
  comm.set_step(6);
  comm.barrier("warm-up");
  comm.set_step(7);
  if (comm.rank() == 1) {
    if (mode == "kill") std::raise(SIGKILL);
    std::this_thread::sleep_for(std::chrono::duration<double>(20 * options.timeout_s));
  }
  torch::Tensor gradients = torch::ones({1000});
  comm.all_reduce_sum(gradients, "probe gradients");
  std::printf("rank %d: the all-reduce finished, the job was not aborted\n", comm.rank());
  return 3;
}
