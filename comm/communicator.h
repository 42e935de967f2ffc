// Communicator: the collectives every distributed part of Umbra uses (DESIGN.md §7).
//
// Backends (one interface, chosen in one place: comm/communicator_factory.h):
//   single  one process, no MPI needed; every collective is the identity.
//   mpi     CPU tensors over MPI (comm/mpi_communicator.h).
//   nccl    CUDA tensors over NCCL, bootstrapped over MPI (comm/nccl/, only when built with NCCL).
//
// Contract shared by all backends
// - Collectives are matched by order: every rank must issue the same collectives in the same
//   order (SPMD). Asynchronous collectives are queued in issue order, so issuing in the same order
//   is enough; their waits may happen in any order.
// - Tensors: any shape; in-place operations (all_reduce, broadcast) write the caller's tensor
//   (a non-contiguous tensor goes through a contiguous copy that is written back). Shapes and
//   dtypes must agree across ranks; all_gather checks this (MPI backend) and throws naming them.
//   Tensors are written through their storage, bypassing autograd: pass parameters as-is or
//   detached, never a tensor that is part of a graph still to be differentiated.
// - Async: *_async returns a Work handle at once. The tensors passed must stay alive and must not
//   be read or written until wait() returns (the handle keeps a reference, so lifetime is safe;
//   touching the data early is a race). wait() rethrows the collective's error as umbra::Error.
// - Errors: a failing library call becomes an umbra::Error naming the collective and carrying the
//   library's message. After such an error the communicator is broken: later collectives fail at
//   once with the first error (ranks cannot be re-synchronised; the caller should abort the job).
// - Hangs: every collective is watched (comm/watchdog.h). A collective still unfinished after
//   comm.timeout_s aborts the whole job with a message naming the collective, the step
//   (set_step) and the ranks that did not arrive.
// - Threads: a Communicator may be used from several threads, but collectives from different
//   threads have no defined relative order; issue them from one thread (or order them yourself).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace umbra {

enum class ReduceOp { kSum, kMax, kMin };

const char* reduce_op_name(ReduceOp op);

// Handle of an asynchronous collective. Thread-safe.
class Work {
 public:
  virtual ~Work() = default;
  // Blocks until the collective has finished on this rank; throws umbra::Error if it failed.
  virtual void wait() = 0;
  // True once wait() would return (or throw) without blocking.
  virtual bool is_completed() = 0;
};
using WorkHandle = std::shared_ptr<Work>;

// A Work that is already finished (used by the single-process backend and for empty operations).
WorkHandle completed_work();

class Communicator {
 public:
  virtual ~Communicator() = default;
  Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Rank among the processes of this node, and their number (GPU = local rank).
  virtual int local_rank() const = 0;
  virtual int local_size() const = 0;
  // "single", "mpi" or "nccl".
  virtual std::string backend() const = 0;

  // The step named in watchdog messages for collectives issued from now on.
  virtual void set_step(int64_t step) = 0;

  // ---- asynchronous primitives; `name` labels the collective in watchdog and error messages.
  // In place: tensor = op over ranks of tensor.
  virtual WorkHandle all_reduce_async(torch::Tensor tensor, ReduceOp op,
                                      const std::string& name = "all_reduce") = 0;
  // In place: tensor = root's tensor.
  virtual WorkHandle broadcast_async(torch::Tensor tensor, int root,
                                     const std::string& name = "broadcast") = 0;
  // output[r] = input of rank r. output: [size(), *input.shape], same dtype and device as input.
  virtual WorkHandle all_gather_async(torch::Tensor input, torch::Tensor output,
                                      const std::string& name = "all_gather") = 0;
  virtual WorkHandle barrier_async(const std::string& name = "barrier") = 0;

  // ---- blocking conveniences over the primitives.
  void all_reduce_sum(torch::Tensor tensor, const std::string& name = "all_reduce");
  void all_reduce(torch::Tensor tensor, ReduceOp op, const std::string& name = "all_reduce");
  void broadcast(torch::Tensor tensor, int root, const std::string& name = "broadcast");
  // Returns [size(), *input.shape].
  torch::Tensor all_gather(const torch::Tensor& input, const std::string& name = "all_gather");
  void barrier(const std::string& name = "barrier");

  // ---- host scalars and strings (go through CPU tensors; every rank must call).
  double all_reduce_sum(double value, const std::string& name = "all_reduce_sum(double)");
  int64_t all_reduce_sum(int64_t value, const std::string& name = "all_reduce_sum(int64)");
  double all_reduce_max(double value, const std::string& name = "all_reduce_max(double)");
  double all_reduce_min(double value, const std::string& name = "all_reduce_min(double)");
  // Element r is rank r's string (any lengths, including empty; binary-safe).
  std::vector<std::string> all_gather_strings(const std::string& value,
                                              const std::string& name = "all_gather_strings");
  // Throws umbra::Error on every rank unless `value` is identical on all ranks, naming the ranks
  // that differ, e.g. "config hash differs across ranks: ranks 0, 2 have 'ab12..'; rank 1 has
  // 'ff03..'". `what` names the value ("config hash").
  void check_same_on_all_ranks(const std::string& what, const std::string& value);
};

// Group ranks by value for the message of check_same_on_all_ranks (exposed for tests).
// Returns an empty string when all values are equal.
std::string describe_differences(const std::string& what, const std::vector<std::string>& values);

// "0-3, 5, 7" for {0, 1, 2, 3, 5, 7} (sorted, duplicates removed); "" when empty.
std::string format_ranks(std::vector<int> ranks);

}  // namespace umbra
