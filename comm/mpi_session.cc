#include "comm/mpi_session.h"

#include <cstdio>
#include <cstdlib>

#include "comm/mpi_check.h"
#include "core/check.h"

namespace umbra {

MpiSession::MpiSession(int* argc, char*** argv) {
  int initialized = 0;
  UMBRA_MPI_CHECK(MPI_Initialized(&initialized));
  if (!initialized) {
    // Collectives run on the communicator's own thread, which shares its rank's core with the
    // compute thread (one core per rank under --bind-to core). Open MPI busy-polls while it waits
    // for the other ranks, taking that core from the backward pass; yielding gave 19% more
    // images/s on 2 ranks of the 32-channel autoencoder (bench/README.md). A user's own setting,
    // from the environment or mpirun --mca, wins.
    setenv("OMPI_MCA_mpi_yield_when_idle", "1", /*overwrite=*/0);
    int provided = 0;
    const int rc = MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided);
    UMBRA_CHECK(rc == MPI_SUCCESS, "MPI_Init_thread failed: ", mpi_error_string(rc));
    owns_ = true;
  }
  UMBRA_MPI_CHECK(MPI_Query_thread(&thread_level_));
}

MpiSession::~MpiSession() {
  if (owns_ && mpi_is_active()) MPI_Finalize();
}

bool mpi_is_active() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  return initialized && !finalized;
}

bool check_mpi_thread_level() {
  int level = 0;
  UMBRA_MPI_CHECK(MPI_Query_thread(&level));
  UMBRA_CHECK(
      level >= MPI_THREAD_SERIALIZED, "MPI grants only ", mpi_thread_level_name(level),
      "; Umbra runs collectives on a communication thread and needs at least "
      "MPI_THREAD_SERIALIZED (MPI_THREAD_MULTIPLE for the full watchdog). Initialise MPI "
      "with MPI_Init_thread(..., MPI_THREAD_MULTIPLE, ...) (umbra::MpiSession does) and use "
      "an MPI built with thread support (Open MPI >= 3 is)");
  return level >= MPI_THREAD_MULTIPLE;
}

void abort_job(int exit_code, const std::string& message) {
  const bool prefixed = message.rfind("umbra: ", 0) == 0;
  std::fprintf(stderr, "%s%s\n", prefixed ? "" : "umbra: ", message.c_str());
  std::fflush(stderr);
  std::fflush(stdout);
  if (mpi_is_active()) MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::_Exit(exit_code);
}

}  // namespace umbra
