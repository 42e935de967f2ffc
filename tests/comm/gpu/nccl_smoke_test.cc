// NCCL backend smoke test (CTest label gpu; one rank per GPU: `mpirun -np N` on N GPUs, N >= 1).
// Skips where no CUDA device is visible. Works with a CPU-only LibTorch through the raw
// device-pointer API; with a CUDA LibTorch it also runs the tensor API.
#include <gtest/gtest.h>

#include <vector>

#include "comm/communicator_factory.h"
#include "comm/nccl/nccl_check.h"
#include "comm/nccl/nccl_communicator.h"

namespace umbra {
namespace {

bool have_gpu() {
  int devices = 0;
  return cudaGetDeviceCount(&devices) == cudaSuccess && devices > 0;
}

float value(int rank, size_t i) { return static_cast<float>((i * 7 + rank * 3) % 17) - 8.0f; }

TEST(NcclSmoke, RawDevicePointersAndHostHelpers) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device visible";
  CommOptions options;
  options.backend = "nccl";
  options.timeout_s = 120;
  std::unique_ptr<Communicator> comm = make_communicator(options, torch::Device(torch::kCUDA));
  ASSERT_EQ(comm->backend(), "nccl");
  auto* nccl = dynamic_cast<NcclCommunicator*>(comm.get());
  ASSERT_NE(nccl, nullptr);
  const int rank = comm->rank(), size = comm->size();

  for (size_t n : {size_t{1}, size_t{1001}, (size_t{1} << 22) + 3}) {
    std::vector<float> host(n);
    for (size_t i = 0; i < n; ++i) host[i] = value(rank, i);
    float* device = nullptr;
    UMBRA_CUDA_CHECK(cudaMalloc(&device, n * sizeof(float)));
    UMBRA_CUDA_CHECK(cudaMemcpy(device, host.data(), n * sizeof(float), cudaMemcpyHostToDevice));
    nccl->all_reduce_device(device, n, ncclFloat32, ReduceOp::kSum, "smoke sum")->wait();
    UMBRA_CUDA_CHECK(cudaMemcpy(host.data(), device, n * sizeof(float), cudaMemcpyDeviceToHost));
    size_t wrong = 0;
    for (size_t i = 0; i < n; ++i) {
      float want = 0;
      for (int r = 0; r < size; ++r) want += value(r, i);
      wrong += host[i] != want;
    }
    EXPECT_EQ(wrong, 0u) << "all_reduce n=" << n;

    for (size_t i = 0; i < n; ++i) host[i] = value(rank, i);
    UMBRA_CUDA_CHECK(cudaMemcpy(device, host.data(), n * sizeof(float), cudaMemcpyHostToDevice));
    nccl->broadcast_device(device, n, ncclFloat32, size - 1, "smoke broadcast")->wait();
    UMBRA_CUDA_CHECK(cudaMemcpy(host.data(), device, n * sizeof(float), cudaMemcpyDeviceToHost));
    wrong = 0;
    for (size_t i = 0; i < n; ++i) wrong += host[i] != value(size - 1, i);
    EXPECT_EQ(wrong, 0u) << "broadcast n=" << n;

    float* gathered = nullptr;
    UMBRA_CUDA_CHECK(cudaMalloc(&gathered, size * n * sizeof(float)));
    for (size_t i = 0; i < n; ++i) host[i] = value(rank, i);
    UMBRA_CUDA_CHECK(cudaMemcpy(device, host.data(), n * sizeof(float), cudaMemcpyHostToDevice));
    nccl->all_gather_device(device, gathered, n, ncclFloat32, "smoke gather")->wait();
    std::vector<float> all(size * n);
    UMBRA_CUDA_CHECK(
        cudaMemcpy(all.data(), gathered, all.size() * sizeof(float), cudaMemcpyDeviceToHost));
    wrong = 0;
    for (int r = 0; r < size; ++r) {
      for (size_t i = 0; i < n; ++i) wrong += all[r * n + i] != value(r, i);
    }
    EXPECT_EQ(wrong, 0u) << "all_gather n=" << n;
    UMBRA_CUDA_CHECK(cudaFree(gathered));
    UMBRA_CUDA_CHECK(cudaFree(device));
  }

  // Host tensors go through the MPI bootstrap.
  EXPECT_EQ(comm->all_reduce_sum(int64_t{1}), size);
  comm->check_same_on_all_ranks("smoke", "same");
  comm->barrier();
}

TEST(NcclSmoke, TensorApiWithCudaLibTorch) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device visible";
  if (!torch::cuda::is_available()) GTEST_SKIP() << "this LibTorch has no CUDA";
  CommOptions options;
  options.backend = "nccl";
  std::unique_ptr<Communicator> comm = make_communicator(options, torch::Device(torch::kCUDA));
  const int rank = comm->rank(), size = comm->size();
  const torch::Device gpu(torch::kCUDA, dynamic_cast<NcclCommunicator&>(*comm).device());
  torch::Tensor t = torch::full({1000}, static_cast<float>(rank + 1), gpu);
  comm->all_reduce_sum(t);
  EXPECT_TRUE(torch::equal(t.cpu(), torch::full({1000}, size * (size + 1) / 2.0f)));
  const torch::Tensor all = comm->all_gather(torch::full({3}, static_cast<double>(rank), gpu));
  for (int r = 0; r < size; ++r)
    EXPECT_TRUE(torch::equal(all[r].cpu(), torch::full({3}, 1.0 * r, torch::kFloat64)));
}

}  // namespace
}  // namespace umbra
