// MPI's lifetime in a process, and the one way to end a whole job.
//
// Threading: Umbra initialises MPI with MPI_Init_thread(MPI_THREAD_MULTIPLE). Collectives of a
// communicator all run on its one communication thread (comm/mpi_communicator.h), but the
// watchdog thread (comm/watchdog.h) makes point-to-point calls on its own communicator at the same
// time, and MPI_Abort may come from it; that concurrency needs MPI_THREAD_MULTIPLE (Open MPI >= 3
// provides it). If the library grants only MPI_THREAD_SERIALIZED, communication still works (only
// the communication thread calls MPI) but the watchdog cannot ask other ranks where they are and
// names the local rank only; anything less is refused with an error saying so.
#pragma once

#include <string>

namespace umbra {

class MpiSession {
 public:
  // Initialises MPI (MPI_THREAD_MULTIPLE requested) unless it already is; argc/argv may be null.
  // Throws umbra::Error when MPI_Init_thread fails.
  MpiSession(int* argc = nullptr, char*** argv = nullptr);
  // Finalises MPI if this session initialised it. Every communicator must be destroyed first.
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  // The thread level the library granted.
  int thread_level() const { return thread_level_; }

 private:
  bool owns_ = false;
  int thread_level_ = 0;
};

// True between MPI_Init* and MPI_Finalize.
bool mpi_is_active();

// The granted thread level, checked against what Umbra needs: throws umbra::Error below
// MPI_THREAD_SERIALIZED; returns true when MPI_THREAD_MULTIPLE (full watchdog) is available.
bool check_mpi_thread_level();

// Prints `message` to stderr (prefixed "umbra: " unless it already is) and ends every process of
// the job: MPI_Abort(MPI_COMM_WORLD) when MPI is active, _Exit otherwise. Safe from any thread.
[[noreturn]] void abort_job(int exit_code, const std::string& message);

}  // namespace umbra
