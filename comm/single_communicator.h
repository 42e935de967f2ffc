// Single-process backend: a world of one rank, no MPI needed. Every collective is the identity
// (all_reduce and broadcast leave the tensor as it is, all_gather returns it with a leading
// dimension of 1) and completes before returning; nothing can hang, so there is no watchdog.
// Tensors may live on any device.
#pragma once

#include "comm/communicator.h"

namespace umbra {

class SingleCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_rank() const override { return 0; }
  int local_size() const override { return 1; }
  std::string backend() const override { return "single"; }
  void set_step(int64_t) override {}

  WorkHandle all_reduce_async(torch::Tensor tensor, ReduceOp op,
                              const std::string& name = "all_reduce") override;
  WorkHandle broadcast_async(torch::Tensor tensor, int root,
                             const std::string& name = "broadcast") override;
  WorkHandle all_gather_async(torch::Tensor input, torch::Tensor output,
                              const std::string& name = "all_gather") override;
  WorkHandle barrier_async(const std::string& name = "barrier") override;
};

}  // namespace umbra
