// MPI backend of Communicator for CPU tensors.
//
// Threading model (see also comm/mpi_session.h): each MpiCommunicator owns ONE communication
// thread, and every collective of the communicator runs there, one at a time, in issue order,
// as a blocking MPI call. Why a thread rather than MPI's non-blocking collectives: Open MPI 4.1
// progresses MPI_Iallreduce only while some thread is inside an MPI call, so an all-reduce started
// from a backward hook would mostly run at the final wait, with no overlap; a thread blocked in
// MPI_Allreduce progresses it continuously while the caller computes. One thread per communicator
// also fixes the order of collectives to the issue order on every rank. The watchdog thread uses
// its own duplicate communicator concurrently, which is why MPI_THREAD_MULTIPLE is requested.
//
// Dtypes: broadcast and all_gather move bytes (any dtype); all_reduce supports float32, float64,
// int64, int32, int16, int8 and uint8. An integer sum that overflows its dtype has no defined
// result (Open MPI 4.1's AVX reduction saturates 8/16-bit sums, open-mpi/ompi#8045, while the
// elements past the vector width wrap): keep integer sums in range. Tensors above 2^31 elements
// are reduced and broadcast in chunks; all_gather is limited to 2 GiB per rank.
//
// Errors: the communicator's MPI handles use MPI_ERRORS_RETURN, so a failing MPI call becomes an
// umbra::Error (UMBRA_MPI_CHECK) delivered by Work::wait(); after one, every later collective
// fails with the same error. A mismatch that every rank detects alike (all_gather shapes) fails
// that collective only.
#pragma once

#include <mpi.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "comm/comm_options.h"
#include "comm/communicator.h"
#include "comm/watchdog.h"

namespace umbra {

class MpiCommunicator final : public Communicator {
 public:
  // Collective over `parent` (usually MPI_COMM_WORLD): every rank of it constructs, in the same
  // order relative to other collectives. MPI must be initialised (umbra::MpiSession) with at least
  // MPI_THREAD_SERIALIZED, otherwise throws umbra::Error saying so. Duplicates `parent` for the
  // collectives and (with MPI_THREAD_MULTIPLE) once more for the watchdog's side channel.
  MpiCommunicator(MPI_Comm parent, const CommOptions& options,
                  TimeoutHandler on_timeout = abort_on_timeout);
  // Runs the collectives already issued, then stops the threads and frees the duplicates.
  // Must run before MPI_Finalize.
  ~MpiCommunicator() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  int local_size() const override { return local_size_; }
  std::string backend() const override { return "mpi"; }
  void set_step(int64_t step) override { step_ = step; }

  WorkHandle all_reduce_async(torch::Tensor tensor, ReduceOp op,
                              const std::string& name = "all_reduce") override;
  WorkHandle broadcast_async(torch::Tensor tensor, int root,
                             const std::string& name = "broadcast") override;
  WorkHandle all_gather_async(torch::Tensor input, torch::Tensor output,
                              const std::string& name = "all_gather") override;
  WorkHandle barrier_async(const std::string& name = "barrier") override;

  // The watchdog shared with backends layered on this one (NCCL), so that all collectives of a
  // job are numbered in one sequence.
  Watchdog& watchdog() { return *watchdog_; }

 private:
  struct Task {
    uint64_t sequence;
    std::string name;
    std::function<void()> run;
    std::promise<void> done;
  };

  // Queues `run` for the communication thread under the watchdog name "<kind> '<name>'".
  WorkHandle submit(const char* kind, const std::string& name, std::function<void()> run);
  void thread_main();

  int rank_ = 0;
  int size_ = 1;
  int local_rank_ = 0;
  int local_size_ = 1;
  std::atomic<int64_t> step_{0};
  MPI_Comm comm_ = MPI_COMM_NULL;
  std::unique_ptr<Watchdog> watchdog_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Task> queue_;
  bool stop_ = false;
  std::string broken_;  // first MPI failure; touched by the communication thread only
  std::thread thread_;
};

}  // namespace umbra
