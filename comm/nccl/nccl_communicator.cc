#include "comm/nccl/nccl_communicator.h"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>

#include "comm/nccl/nccl_check.h"
#include "core/check.h"

namespace umbra {

struct NcclCommunicator::State {
  ncclComm_t comm = nullptr;
  int device = 0;
  std::shared_ptr<MpiCommunicator> bootstrap;  // keeps the watchdog alive

  ~State() {
    if (comm == nullptr) return;
    // Destructors must not throw: report and go on.
    cudaSetDevice(device);
    ncclResult_t rc = ncclCommFinalize(comm);
    if (rc == ncclSuccess || rc == ncclInProgress) {
      ncclResult_t state = ncclInProgress;
      while (state == ncclInProgress && ncclCommGetAsyncError(comm, &state) == ncclSuccess) {
        if (state == ncclInProgress) std::this_thread::yield();
      }
      rc = ncclCommDestroy(comm);
    } else {
      ncclCommAbort(comm);
    }
    if (rc != ncclSuccess) {
      std::fprintf(stderr, "umbra: NCCL communicator teardown failed: %s\n",
                   ncclGetErrorString(rc));
    }
  }
};

namespace {

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return ncclSum;
    case ReduceOp::kMax:
      return ncclMax;
    case ReduceOp::kMin:
      return ncclMin;
  }
  return ncclSum;
}

class NcclWork final : public Work {
 public:
  NcclWork(std::shared_ptr<void> state, ncclComm_t comm, cudaEvent_t event, Watchdog* watchdog,
           uint64_t sequence, std::string label)
      : state_(std::move(state)),
        comm_(comm),
        event_(event),
        watchdog_(watchdog),
        sequence_(sequence),
        label_(std::move(label)) {}

  ~NcclWork() override {
    watchdog_->end(sequence_);
    cudaEventDestroy(event_);
  }

  void wait() override {
    while (!is_completed()) std::this_thread::sleep_for(std::chrono::microseconds(20));
  }

  bool is_completed() override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (done_) return true;
    const cudaError_t status = cudaEventQuery(event_);
    if (status == cudaSuccess) {
      done_ = true;
      watchdog_->end(sequence_);
      return true;
    }
    if (status != cudaErrorNotReady) {
      done_ = true;
      watchdog_->end(sequence_);
      UMBRA_FAIL(label_, ": CUDA error while waiting: ", cudaGetErrorName(status), ": ",
                 cudaGetErrorString(status));
    }
    ncclResult_t async = ncclSuccess;
    UMBRA_NCCL_CHECK(ncclCommGetAsyncError(comm_, &async));
    if (async != ncclSuccess && async != ncclInProgress) {
      done_ = true;
      watchdog_->end(sequence_);
      const char* last = ncclGetLastError(nullptr);
      UMBRA_FAIL(label_, ": NCCL reported ", ncclGetErrorString(async),
                 last != nullptr ? std::string(" (") + last + ")" : std::string());
    }
    return false;
  }

 private:
  std::shared_ptr<void> state_;
  ncclComm_t comm_;
  cudaEvent_t event_;
  Watchdog* watchdog_;
  uint64_t sequence_;
  std::string label_;
  std::mutex mutex_;
  bool done_ = false;
};

}  // namespace

ncclDataType_t NcclCommunicator::nccl_type(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kFloat32:
      return ncclFloat32;
    case torch::kFloat64:
      return ncclFloat64;
    case torch::kFloat16:
      return ncclFloat16;
    case torch::kBFloat16:
      return ncclBfloat16;
    case torch::kInt64:
      return ncclInt64;
    case torch::kInt32:
      return ncclInt32;
    case torch::kInt8:
      return ncclInt8;
    case torch::kUInt8:
      return ncclUint8;
    default:
      UMBRA_FAIL("NCCL communicator: dtype ", dtype,
                 " is not supported (float32, float64, float16, bfloat16, int64, int32, int8, "
                 "uint8)");
  }
}

NcclCommunicator::NcclCommunicator(std::shared_ptr<MpiCommunicator> bootstrap, int device,
                                   cudaStream_t stream)
    : bootstrap_(std::move(bootstrap)), device_(device), stream_(stream) {
  UMBRA_CHECK(bootstrap_ != nullptr, "NCCL communicator: no MPI bootstrap communicator");
  int devices = 0;
  UMBRA_CUDA_CHECK(cudaGetDeviceCount(&devices));
  UMBRA_CHECK(device >= 0 && device < devices, "NCCL communicator on rank ", rank(),
              ": CUDA device ", device, " does not exist (", devices,
              " visible; one GPU per local rank needs at least ", local_size(), ")");
  UMBRA_CUDA_CHECK(cudaSetDevice(device_));

  ncclUniqueId id;
  std::memset(&id, 0, sizeof(id));
  if (rank() == 0) UMBRA_NCCL_CHECK(ncclGetUniqueId(&id));
  torch::Tensor bytes = torch::empty({static_cast<int64_t>(sizeof(id))}, torch::kUInt8);
  std::memcpy(bytes.data_ptr(), &id, sizeof(id));
  bootstrap_->broadcast(bytes, 0, "nccl unique id");
  std::memcpy(&id, bytes.data_ptr(), sizeof(id));

  state_ = std::make_shared<State>();
  state_->device = device_;
  state_->bootstrap = bootstrap_;
  Watchdog& watchdog = bootstrap_->watchdog();
  const uint64_t sequence = watchdog.begin("ncclCommInitRank", step_.load());
  try {
    UMBRA_NCCL_CHECK(ncclCommInitRank(&state_->comm, size(), id, rank()));
  } catch (...) {
    watchdog.end(sequence);
    throw;
  }
  watchdog.end(sequence);
  if (stream_ == nullptr) {
    UMBRA_CUDA_CHECK(cudaStreamCreate(&stream_));
    owns_stream_ = true;
  }
}

NcclCommunicator::~NcclCommunicator() {
  cudaSetDevice(device_);
  const cudaError_t rc = cudaStreamSynchronize(stream_);
  if (rc != cudaSuccess) {
    std::fprintf(stderr, "umbra: NCCL communicator: stream synchronisation failed: %s\n",
                 cudaGetErrorString(rc));
  }
  state_.reset();
  if (owns_stream_) cudaStreamDestroy(stream_);
}

ncclComm_t NcclCommunicator::nccl_comm() const { return state_->comm; }

void NcclCommunicator::set_step(int64_t step) {
  step_ = step;
  bootstrap_->set_step(step);
}

template <class Enqueue>
WorkHandle NcclCommunicator::launch(const std::string& label, cudaStream_t stream,
                                    Enqueue&& enqueue) {
  if (stream == nullptr) stream = stream_;
  Watchdog& watchdog = bootstrap_->watchdog();
  const uint64_t sequence = watchdog.begin(label, step_.load());
  cudaEvent_t event = nullptr;
  try {
    UMBRA_CUDA_CHECK(cudaSetDevice(device_));
    enqueue(state_->comm, stream);
    UMBRA_CUDA_CHECK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
    UMBRA_CUDA_CHECK(cudaEventRecord(event, stream));
  } catch (...) {
    if (event != nullptr) cudaEventDestroy(event);
    watchdog.end(sequence);
    throw;
  }
  return std::make_shared<NcclWork>(state_, state_->comm, event, &watchdog, sequence, label);
}

void NcclCommunicator::check_cuda_tensor(const torch::Tensor& t, const std::string& what) const {
  UMBRA_CHECK(t.defined(), what, ": the tensor is undefined");
  UMBRA_CHECK(t.device().is_cuda() && t.device().index() == device_, what,
              ": the NCCL communicator of rank ", rank(), " takes tensors on cuda:", device_,
              ", got one on ", t.device());
  UMBRA_CHECK(t.is_contiguous(), what, ": NCCL needs a contiguous tensor (call .contiguous())");
}

WorkHandle NcclCommunicator::all_reduce_device(void* data, size_t count, ncclDataType_t type,
                                               ReduceOp op, const std::string& name,
                                               cudaStream_t stream) {
  return launch("all_reduce '" + name + "'", stream, [&](ncclComm_t comm, cudaStream_t s) {
    UMBRA_NCCL_CHECK(ncclAllReduce(data, data, count, type, nccl_op(op), comm, s));
  });
}

WorkHandle NcclCommunicator::broadcast_device(void* data, size_t count, ncclDataType_t type,
                                              int root, const std::string& name,
                                              cudaStream_t stream) {
  UMBRA_CHECK(root >= 0 && root < size(), "broadcast '", name, "': root ", root,
              " is not a rank of this ", size(), "-rank communicator");
  return launch("broadcast '" + name + "'", stream, [&](ncclComm_t comm, cudaStream_t s) {
    UMBRA_NCCL_CHECK(ncclBroadcast(data, data, count, type, root, comm, s));
  });
}

WorkHandle NcclCommunicator::all_gather_device(const void* input, void* output, size_t count,
                                               ncclDataType_t type, const std::string& name,
                                               cudaStream_t stream) {
  return launch("all_gather '" + name + "'", stream, [&](ncclComm_t comm, cudaStream_t s) {
    UMBRA_NCCL_CHECK(ncclAllGather(input, output, count, type, comm, s));
  });
}

WorkHandle NcclCommunicator::all_reduce_async(torch::Tensor tensor, ReduceOp op,
                                              const std::string& name) {
  if (tensor.defined() && tensor.device().is_cpu()) {
    return bootstrap_->all_reduce_async(tensor, op, name);
  }
  check_cuda_tensor(tensor, "all_reduce '" + name + "'");
  const ncclDataType_t type = nccl_type(tensor.scalar_type());
  return all_reduce_device(tensor.data_ptr(), static_cast<size_t>(tensor.numel()), type, op, name);
}

WorkHandle NcclCommunicator::broadcast_async(torch::Tensor tensor, int root,
                                             const std::string& name) {
  if (tensor.defined() && tensor.device().is_cpu()) {
    return bootstrap_->broadcast_async(tensor, root, name);
  }
  check_cuda_tensor(tensor, "broadcast '" + name + "'");
  // Bytes: any dtype can be broadcast.
  return broadcast_device(tensor.data_ptr(),
                          static_cast<size_t>(tensor.numel() * tensor.element_size()), ncclUint8,
                          root, name);
}

WorkHandle NcclCommunicator::all_gather_async(torch::Tensor input, torch::Tensor output,
                                              const std::string& name) {
  if (input.defined() && input.device().is_cpu()) {
    return bootstrap_->all_gather_async(input, output, name);
  }
  const std::string what = "all_gather '" + name + "'";
  check_cuda_tensor(input, what);
  check_cuda_tensor(output, what);
  UMBRA_CHECK(
      output.numel() == input.numel() * size() && output.scalar_type() == input.scalar_type(), what,
      ": output must hold ", size(), " x ", input.numel(), " elements of ", input.scalar_type(),
      ", got ", output.numel(), " of ", output.scalar_type());
  return all_gather_device(input.data_ptr(), output.data_ptr(),
                           static_cast<size_t>(input.numel() * input.element_size()), ncclUint8,
                           name);
}

WorkHandle NcclCommunicator::barrier_async(const std::string& name) {
  UMBRA_CUDA_CHECK(cudaSetDevice(device_));
  UMBRA_CUDA_CHECK(cudaStreamSynchronize(stream_));
  return bootstrap_->barrier_async(name);
}

}  // namespace umbra
