// Checks for NCCL and CUDA runtime calls: a failure becomes an umbra::Error carrying file:line,
// the call, and the library's own error name and text (ncclGetErrorString + ncclGetLastError,
// cudaGetErrorName + cudaGetErrorString).
//
//   UMBRA_NCCL_CHECK(ncclAllReduce(...));
//   UMBRA_CUDA_CHECK(cudaEventRecord(event, stream));
#pragma once

#include <cuda_runtime_api.h>
#include <nccl.h>

#if !defined(NCCL_VERSION_CODE) || NCCL_VERSION_CODE < NCCL_VERSION(2, 14, 0)
#error "Umbra's NCCL backend needs NCCL >= 2.14 (ncclCommFinalize, ncclBfloat16)"
#endif

namespace umbra::detail {
[[noreturn]] void nccl_fail(ncclResult_t result, const char* call, const char* file, int line);
[[noreturn]] void cuda_fail(cudaError_t error, const char* call, const char* file, int line);
}  // namespace umbra::detail

#define UMBRA_NCCL_CHECK(call)                                               \
  do {                                                                       \
    const ncclResult_t umbra_nccl_rc_ = (call);                              \
    if (umbra_nccl_rc_ != ncclSuccess && umbra_nccl_rc_ != ncclInProgress)   \
      ::umbra::detail::nccl_fail(umbra_nccl_rc_, #call, __FILE__, __LINE__); \
  } while (0)

#define UMBRA_CUDA_CHECK(call)                                               \
  do {                                                                       \
    const cudaError_t umbra_cuda_rc_ = (call);                               \
    if (umbra_cuda_rc_ != cudaSuccess)                                       \
      ::umbra::detail::cuda_fail(umbra_cuda_rc_, #call, __FILE__, __LINE__); \
  } while (0)
