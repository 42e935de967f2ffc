// NCCL backend of Communicator for CUDA memory, bootstrapped over MPI (DESIGN.md §7).
//
// Construction (collective over the bootstrap's ranks): rank 0 calls ncclGetUniqueId, the id is
// broadcast with MPI, every rank calls ncclCommInitRank on its device.
//
// No LibTorch-CUDA headers: this backend sees CUDA memory as raw device pointers plus a
// cudaStream_t, so it compiles and links against a CPU-only LibTorch (Debian's) and the CUDA
// toolkit alone. Two ways in:
// - the raw API (*_device): device pointers of `device()`, enqueued on a stream you pass
//   (default: stream());
// - the Communicator tensor API: CUDA tensors (a CUDA build of LibTorch) on `device()` go
//   through NCCL on stream(), using tensor.data_ptr(); CPU tensors go through the MPI bootstrap
//   communicator, so host-side helpers (all_gather_strings, check_same_on_all_ranks, scalars)
//   work unchanged. CUDA tensors must be contiguous.
//
// Streams: by default the communicator creates its own stream with cudaStreamCreate, a
// *blocking* stream: CUDA orders it with the legacy default stream, on which LibTorch runs
// kernels unless told otherwise, so a collective sees the gradients computed before it was
// issued and later kernels see its result, with no event plumbing. A caller that runs LibTorch on
// other streams hands in its own stream (and orders it with events itself).
//
// Work::wait() blocks the host until the collective has finished on the GPU (polling a CUDA
// event and ncclCommGetAsyncError, so an NCCL failure becomes an umbra::Error instead of a
// hang). Every collective is registered with the bootstrap's watchdog (one sequence for the
// job) from issue until its Work observes completion or is destroyed. Work handles keep the NCCL
// communicator's resources alive.
#pragma once

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <atomic>
#include <memory>
#include <string>

#include "comm/communicator.h"
#include "comm/mpi_communicator.h"

namespace umbra {

class NcclCommunicator final : public Communicator {
 public:
  // device: the CUDA ordinal this rank uses (one GPU per local rank: usually local_rank()).
  // stream: where collectives are enqueued; nullptr creates (and owns) a blocking stream.
  NcclCommunicator(std::shared_ptr<MpiCommunicator> bootstrap, int device,
                   cudaStream_t stream = nullptr);
  // Waits for the stream, then finalises and destroys the NCCL communicator (once no Work
  // handle holds it).
  ~NcclCommunicator() override;

  int rank() const override { return bootstrap_->rank(); }
  int size() const override { return bootstrap_->size(); }
  int local_rank() const override { return bootstrap_->local_rank(); }
  int local_size() const override { return bootstrap_->local_size(); }
  std::string backend() const override { return "nccl"; }
  void set_step(int64_t step) override;

  WorkHandle all_reduce_async(torch::Tensor tensor, ReduceOp op,
                              const std::string& name = "all_reduce") override;
  WorkHandle broadcast_async(torch::Tensor tensor, int root,
                             const std::string& name = "broadcast") override;
  WorkHandle all_gather_async(torch::Tensor input, torch::Tensor output,
                              const std::string& name = "all_gather") override;
  // Waits for stream(), then an MPI barrier.
  WorkHandle barrier_async(const std::string& name = "barrier") override;

  // ---- raw device-pointer API; count in elements of `type`.
  WorkHandle all_reduce_device(void* data, size_t count, ncclDataType_t type, ReduceOp op,
                               const std::string& name, cudaStream_t stream = nullptr);
  WorkHandle broadcast_device(void* data, size_t count, ncclDataType_t type, int root,
                              const std::string& name, cudaStream_t stream = nullptr);
  // output holds size() * count elements: rank r's input at [r * count, (r + 1) * count).
  WorkHandle all_gather_device(const void* input, void* output, size_t count, ncclDataType_t type,
                               const std::string& name, cudaStream_t stream = nullptr);

  int device() const { return device_; }
  cudaStream_t stream() const { return stream_; }
  ncclComm_t nccl_comm() const;

  // The NCCL type of a LibTorch dtype; throws umbra::Error for dtypes NCCL cannot reduce.
  static ncclDataType_t nccl_type(torch::ScalarType dtype);

 private:
  struct State;  // the NCCL communicator, shared with outstanding Work handles

  // Registers with the watchdog, runs `enqueue` on the stream and records a completion event.
  template <class Enqueue>
  WorkHandle launch(const std::string& label, cudaStream_t stream, Enqueue&& enqueue);
  void check_cuda_tensor(const torch::Tensor& t, const std::string& what) const;

  std::shared_ptr<MpiCommunicator> bootstrap_;
  int device_;
  cudaStream_t stream_ = nullptr;
  bool owns_stream_ = false;
  std::atomic<int64_t> step_{0};
  std::shared_ptr<State> state_;
};

}  // namespace umbra
