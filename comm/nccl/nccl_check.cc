#include "comm/nccl/nccl_check.h"

#include <string>

#include "core/check.h"

namespace umbra::detail {

void nccl_fail(ncclResult_t result, const char* call, const char* file, int line) {
  const char* last = ncclGetLastError(nullptr);
  throw Error(concat("NCCL error at ", file, ":", line, ": ", call,
                     " failed: ", ncclGetErrorString(result),
                     (last != nullptr && *last != '\0') ? std::string(" (") + last + ")" : ""));
}

void cuda_fail(cudaError_t error, const char* call, const char* file, int line) {
  throw Error(concat("CUDA error at ", file, ":", line, ": ", call,
                     " failed: ", cudaGetErrorName(error), ": ", cudaGetErrorString(error)));
}

}  // namespace umbra::detail
