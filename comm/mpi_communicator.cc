#include "comm/mpi_communicator.h"

#include <algorithm>
#include <climits>
#include <utility>

#include "comm/mpi_check.h"
#include "comm/mpi_session.h"
#include "core/check.h"

namespace umbra {

namespace {

// A failure every rank detects in the same way (so the ranks stay in step): it fails one
// collective without breaking the communicator.
class ConsistentError : public Error {
 public:
  explicit ConsistentError(const std::string& what) : Error(what) {}
};

class FutureWork final : public Work {
 public:
  explicit FutureWork(std::shared_future<void> future) : future_(std::move(future)) {}
  void wait() override { future_.get(); }
  bool is_completed() override {
    return future_.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
  }

 private:
  std::shared_future<void> future_;
};

MPI_Datatype reduce_type(torch::ScalarType dtype, const std::string& what) {
  switch (dtype) {
    case torch::kFloat32:
      return MPI_FLOAT;
    case torch::kFloat64:
      return MPI_DOUBLE;
    case torch::kInt64:
      return MPI_INT64_T;
    case torch::kInt32:
      return MPI_INT32_T;
    case torch::kInt16:
      return MPI_INT16_T;
    case torch::kInt8:
      return MPI_INT8_T;
    case torch::kUInt8:
      return MPI_UINT8_T;
    default:
      UMBRA_FAIL(what, ": dtype ", dtype,
                 " cannot be reduced by the MPI backend (supported: float32, float64, int64, "
                 "int32, int16, int8, uint8)");
  }
}

MPI_Op reduce_mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return MPI_SUM;
    case ReduceOp::kMax:
      return MPI_MAX;
    case ReduceOp::kMin:
      return MPI_MIN;
  }
  return MPI_SUM;
}

void check_cpu(const torch::Tensor& t, const std::string& what) {
  UMBRA_CHECK(t.defined(), what, ": the tensor is undefined");
  UMBRA_CHECK(t.device().is_cpu(), what, ": the MPI communicator takes CPU tensors, got one on ",
              t.device(), " (CUDA tensors go through the NCCL backend: comm.backend=auto|nccl)");
}

// A contiguous tensor sharing storage with `t` when possible, else a contiguous copy.
torch::Tensor contiguous_view(const torch::Tensor& t) {
  return t.is_contiguous() ? t : t.contiguous();
}

}  // namespace

MpiCommunicator::MpiCommunicator(MPI_Comm parent, const CommOptions& options,
                                 TimeoutHandler on_timeout) {
  UMBRA_CHECK(mpi_is_active(),
              "MPI communicator: MPI is not initialised; create an "
              "umbra::MpiSession at the start of main()");
  const bool thread_multiple = check_mpi_thread_level();
  UMBRA_MPI_CHECK(MPI_Comm_rank(parent, &rank_));
  UMBRA_MPI_CHECK(MPI_Comm_size(parent, &size_));
  MPI_Comm node = MPI_COMM_NULL;
  UMBRA_MPI_CHECK(MPI_Comm_split_type(parent, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node));
  UMBRA_MPI_CHECK(MPI_Comm_rank(node, &local_rank_));
  UMBRA_MPI_CHECK(MPI_Comm_size(node, &local_size_));
  UMBRA_MPI_CHECK(MPI_Comm_free(&node));
  UMBRA_MPI_CHECK(MPI_Comm_dup(parent, &comm_));
  UMBRA_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
  MPI_Comm side = MPI_COMM_NULL;
  if (thread_multiple) UMBRA_MPI_CHECK(MPI_Comm_dup(parent, &side));
  watchdog_ =
      std::make_unique<Watchdog>(rank_, size_, options.timeout_s, side, std::move(on_timeout));
  thread_ = std::thread([this] { thread_main(); });
}

MpiCommunicator::~MpiCommunicator() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
  watchdog_.reset();
  if (comm_ != MPI_COMM_NULL && mpi_is_active()) MPI_Comm_free(&comm_);
}

WorkHandle MpiCommunicator::submit(const char* kind, const std::string& name,
                                   std::function<void()> run) {
  const std::string label = name == kind ? name : std::string(kind) + " '" + name + "'";
  std::promise<void> done;
  std::shared_future<void> future = done.get_future().share();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    UMBRA_ASSERT(!stop_, "collective issued on a communicator being destroyed");
    const uint64_t sequence = watchdog_->begin(label, step_.load());
    queue_.push_back(Task{sequence, label, std::move(run), std::move(done)});
  }
  wake_.notify_one();
  return std::make_shared<FutureWork>(std::move(future));
}

void MpiCommunicator::thread_main() {
  for (;;) {
    Task task;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stop_ and drained
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    try {
      UMBRA_CHECK(broken_.empty(), task.name,
                  " not run: the communicator failed earlier: ", broken_);
      task.run();
      task.done.set_value();
    } catch (const ConsistentError& e) {
      task.done.set_exception(std::make_exception_ptr(Error(e.what())));
    } catch (const std::exception& e) {
      const std::string what = e.what();
      if (broken_.empty())
        broken_ = task.name + " failed on rank " + std::to_string(rank_) + ": " + what;
      task.done.set_exception(std::make_exception_ptr(
          Error(what.rfind(task.name, 0) == 0
                    ? what
                    : task.name + " failed on rank " + std::to_string(rank_) + ": " + what)));
    }
    watchdog_->end(task.sequence);
  }
}

WorkHandle MpiCommunicator::all_reduce_async(torch::Tensor tensor, ReduceOp op,
                                             const std::string& name) {
  check_cpu(tensor, "all_reduce '" + name + "'");
  const MPI_Datatype type = reduce_type(tensor.scalar_type(), "all_reduce '" + name + "'");
  tensor = tensor.detach();
  return submit("all_reduce", name, [this, tensor, type, op] {
    torch::Tensor data = contiguous_view(tensor);
    auto* base = static_cast<char*>(data.data_ptr());
    const int64_t item = data.element_size();
    for (int64_t offset = 0; offset < data.numel(); offset += INT_MAX) {
      const int count = static_cast<int>(std::min<int64_t>(INT_MAX, data.numel() - offset));
      UMBRA_MPI_CHECK(
          MPI_Allreduce(MPI_IN_PLACE, base + offset * item, count, type, reduce_mpi_op(op), comm_));
    }
    if (!data.is_same(tensor)) tensor.copy_(data);
  });
}

WorkHandle MpiCommunicator::broadcast_async(torch::Tensor tensor, int root,
                                            const std::string& name) {
  check_cpu(tensor, "broadcast '" + name + "'");
  UMBRA_CHECK(root >= 0 && root < size_, "broadcast '", name, "': root ", root,
              " is not a rank of this ", size_, "-rank communicator");
  tensor = tensor.detach();
  return submit("broadcast", name, [this, tensor, root] {
    torch::Tensor data = contiguous_view(tensor);
    auto* base = static_cast<char*>(data.data_ptr());
    const int64_t bytes = data.numel() * data.element_size();
    for (int64_t offset = 0; offset < bytes; offset += INT_MAX) {
      const int count = static_cast<int>(std::min<int64_t>(INT_MAX, bytes - offset));
      UMBRA_MPI_CHECK(MPI_Bcast(base + offset, count, MPI_BYTE, root, comm_));
    }
    if (!data.is_same(tensor)) tensor.copy_(data);
  });
}

WorkHandle MpiCommunicator::all_gather_async(torch::Tensor input, torch::Tensor output,
                                             const std::string& name) {
  const std::string what = "all_gather '" + name + "'";
  check_cpu(input, what);
  check_cpu(output, what);
  std::vector<int64_t> expected{size_};
  for (int64_t d : input.sizes()) expected.push_back(d);
  UMBRA_CHECK(
      output.sizes() == torch::IntArrayRef(expected) && output.scalar_type() == input.scalar_type(),
      what, ": output must be ", input.scalar_type(), " ", torch::IntArrayRef(expected), ", got ",
      output.scalar_type(), " ", output.sizes());
  const int64_t bytes = input.numel() * input.element_size();
  UMBRA_CHECK(bytes <= INT_MAX, what, ": ", bytes, " bytes per rank exceed MPI's 2 GiB limit");
  input = input.detach();
  output = output.detach();
  return submit("all_gather", name, [this, input, output, bytes, what] {
    // Every rank first learns every rank's size and dtype, so a mismatch is an error on all
    // ranks rather than a truncated message or a hang.
    int64_t mine[2] = {bytes, static_cast<int64_t>(input.scalar_type())};
    std::vector<int64_t> all(2 * static_cast<size_t>(size_));
    UMBRA_MPI_CHECK(MPI_Allgather(mine, 2, MPI_INT64_T, all.data(), 2, MPI_INT64_T, comm_));
    for (int r = 0; r < size_; ++r) {
      if (all[2 * r] != all[0] || all[2 * r + 1] != all[1]) {
        throw ConsistentError(detail::concat(
            what, ": tensors differ across ranks: rank 0 has ", all[0], " bytes of ",
            static_cast<torch::ScalarType>(all[1]), ", rank ", r, " has ", all[2 * r], " bytes of ",
            static_cast<torch::ScalarType>(all[2 * r + 1])));
      }
    }
    const torch::Tensor in = contiguous_view(input);
    torch::Tensor out = contiguous_view(output);
    UMBRA_MPI_CHECK(MPI_Allgather(in.data_ptr(), static_cast<int>(bytes), MPI_BYTE, out.data_ptr(),
                                  static_cast<int>(bytes), MPI_BYTE, comm_));
    if (!out.is_same(output)) output.copy_(out);
  });
}

WorkHandle MpiCommunicator::barrier_async(const std::string& name) {
  return submit("barrier", name, [this] { UMBRA_MPI_CHECK(MPI_Barrier(comm_)); });
}

}  // namespace umbra
