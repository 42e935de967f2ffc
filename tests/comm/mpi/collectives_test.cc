// MPI backend collectives against values every rank computes for itself (run by mpirun with 2
// and 3 ranks). Rank r's input element i is value(r, i); the expectation is the sum/max/min of
// value(q, i) over ranks q, computed locally in int64 (exact) and converted like the tensor.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "comm/mpi_communicator.h"
#include "comm/mpi_session.h"
#include "core/check.h"
#include "core/sha256.h"

namespace umbra {
namespace {

std::unique_ptr<MpiCommunicator> make_comm() {
  CommOptions options;
  options.timeout_s = 120;
  return std::make_unique<MpiCommunicator>(MPI_COMM_WORLD, options);
}

// Small integers, exactly representable in every dtype tested, whose sums over up to 3 ranks
// stay in range: what an 8/16-bit integer sum does on overflow is the MPI library's choice
// (Open MPI 4.1's AVX reduction saturates, open-mpi/ompi#8045; the tail past the vector width
// wraps), so it is not part of the contract.
torch::Tensor value(int rank, int64_t n, torch::ScalarType dtype) {
  const torch::Tensor i = torch::arange(n, torch::kInt64);
  torch::Tensor v;
  if (dtype == torch::kUInt8) {
    v = (i * 5 + rank * 11) % 80;
  } else if (dtype == torch::kInt8) {
    v = (i * 5 + rank * 3) % 40 - 20;
  } else {
    v = (i * 7 + rank * 3) % 17 - 8;
  }
  return v;  // int64; converted by the caller
}

torch::Tensor expected(ReduceOp op, int size, int64_t n, torch::ScalarType dtype) {
  torch::Tensor acc = value(0, n, dtype);
  for (int r = 1; r < size; ++r) {
    const torch::Tensor v = value(r, n, dtype);
    acc = op == ReduceOp::kSum   ? acc + v
          : op == ReduceOp::kMax ? torch::max(acc, v)
                                 : torch::min(acc, v);
  }
  return acc.to(dtype);
}

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

const std::vector<torch::ScalarType> kReduceTypes{torch::kFloat32, torch::kFloat64, torch::kInt64,
                                                  torch::kInt32,   torch::kInt16,   torch::kInt8,
                                                  torch::kUInt8};
const std::vector<int64_t> kSizes{0, 1, 7, 1001, (int64_t{1} << 18) + 3};

TEST(MpiCollectives, AllReduceEveryDtypeSizeAndOp) {
  auto comm = make_comm();
  for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax, ReduceOp::kMin}) {
    for (torch::ScalarType dtype : kReduceTypes) {
      for (int64_t n : kSizes) {
        torch::Tensor t = value(comm->rank(), n, dtype).to(dtype);
        comm->all_reduce(t, op);
        EXPECT_TRUE(torch::equal(t, expected(op, comm->size(), n, dtype)))
            << reduce_op_name(op) << " " << dtype << " n=" << n;
      }
    }
  }
}

TEST(MpiCollectives, AllReduceNonContiguousAndMultiDimensional) {
  auto comm = make_comm();
  torch::Tensor base = value(comm->rank(), 6 * 5, torch::kFloat32).to(torch::kFloat32).view({6, 5});
  torch::Tensor t = base.t();  // [5, 6], not contiguous: goes through a copy written back
  ASSERT_FALSE(t.is_contiguous());
  comm->all_reduce_sum(t);
  const torch::Tensor want =
      expected(ReduceOp::kSum, comm->size(), 30, torch::kFloat32).view({6, 5});
  EXPECT_TRUE(torch::equal(base, want));
}

TEST(MpiCollectives, BroadcastFromEveryRootAnyDtype) {
  auto comm = make_comm();
  for (int root = 0; root < comm->size(); ++root) {
    for (torch::ScalarType dtype : {torch::kFloat32, torch::kFloat64, torch::kInt64, torch::kUInt8,
                                    torch::kFloat16, torch::kBool}) {
      for (int64_t n : kSizes) {
        torch::Tensor t = value(comm->rank(), n, torch::kInt32).to(dtype);
        comm->broadcast(t, root);
        EXPECT_TRUE(torch::equal(t, value(root, n, torch::kInt32).to(dtype)))
            << "root " << root << " " << dtype << " n=" << n;
      }
    }
  }
}

TEST(MpiCollectives, AllGather) {
  auto comm = make_comm();
  for (torch::ScalarType dtype : {torch::kFloat32, torch::kInt64, torch::kUInt8, torch::kBool}) {
    for (int64_t n : kSizes) {
      const torch::Tensor mine = value(comm->rank(), n, torch::kInt32).to(dtype).view({n, 1});
      const torch::Tensor all = comm->all_gather(mine);
      ASSERT_EQ(all.sizes(), torch::IntArrayRef({comm->size(), n, 1}));
      for (int r = 0; r < comm->size(); ++r) {
        EXPECT_TRUE(torch::equal(all[r], value(r, n, torch::kInt32).to(dtype).view({n, 1})))
            << dtype << " n=" << n << " rank " << r;
      }
    }
  }
}

TEST(MpiCollectives, AllGatherMismatchFailsOnEveryRankAndKeepsTheCommunicator) {
  auto comm = make_comm();
  const torch::Tensor mine = torch::zeros({comm->rank() == 1 ? 4 : 3});
  const std::string error = error_of([&] { comm->all_gather(mine, "uneven"); });
  EXPECT_NE(error.find("all_gather 'uneven': tensors differ across ranks: rank 0 has 12 bytes of "
                       "Float, rank 1 has 16 bytes of Float"),
            std::string::npos)
      << error;
  // The mismatch was seen alike everywhere, so the ranks are still in step.
  EXPECT_EQ(comm->all_reduce_sum(int64_t{1}), comm->size());
}

TEST(MpiCollectives, BadArgumentsThrowBeforeAnyCollective) {
  auto comm = make_comm();
  torch::Tensor flags = torch::ones({3}, torch::kBool);
  EXPECT_NE(error_of([&] { comm->all_reduce_sum(flags); }).find("cannot be reduced"),
            std::string::npos);
  torch::Tensor t = torch::ones({3});
  EXPECT_NE(error_of([&] { comm->broadcast(t, comm->size()); }).find("is not a rank"),
            std::string::npos);
  comm->barrier();
}

TEST(MpiCollectives, AsyncReturnsAtOnceAndOverlapsComputation) {
  auto comm = make_comm();
  using Clock = std::chrono::steady_clock;
  // Rank 1 arrives 300 ms late; everyone else's all-reduce must be issued without blocking.
  if (comm->rank() == 1) std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::vector<torch::Tensor> tensors;
  std::vector<WorkHandle> work;
  const auto start = Clock::now();
  for (int k = 0; k < 4; ++k) {
    tensors.push_back(torch::full({100000}, static_cast<float>(comm->rank() + k)));
    work.push_back(
        comm->all_reduce_async(tensors.back(), ReduceOp::kSum, "async " + std::to_string(k)));
  }
  const double issue_s = std::chrono::duration<double>(Clock::now() - start).count();
  const bool completed_early = work[0]->is_completed();
  // Computation while the collectives are in flight.
  const torch::Tensor a = torch::randn({256, 256});
  const torch::Tensor b = torch::mm(a, a);
  for (int k = 3; k >= 0; --k) work[k]->wait();  // any wait order
  const double total_s = std::chrono::duration<double>(Clock::now() - start).count();
  EXPECT_TRUE(b.defined());
  if (comm->rank() != 1) {
    EXPECT_LT(issue_s, 0.1);
    EXPECT_FALSE(completed_early);
    EXPECT_GT(total_s, 0.2);
  }
  const double rank_sum = comm->size() * (comm->size() - 1) / 2.0;
  for (int k = 0; k < 4; ++k) {
    EXPECT_TRUE(work[k]->is_completed());
    EXPECT_TRUE(torch::equal(
        tensors[k], torch::full({100000}, static_cast<float>(rank_sum + k * comm->size()))));
  }
}

TEST(MpiCollectives, ScalarsAndStrings) {
  auto comm = make_comm();
  const int n = comm->size(), r = comm->rank();
  EXPECT_DOUBLE_EQ(comm->all_reduce_sum(r + 0.5), n * (n - 1) / 2.0 + 0.5 * n);
  EXPECT_EQ(comm->all_reduce_sum(int64_t{1} << 40), n * (int64_t{1} << 40));
  EXPECT_DOUBLE_EQ(comm->all_reduce_max(-1.0 * r), 0.0);
  EXPECT_DOUBLE_EQ(comm->all_reduce_min(-1.0 * r), -(n - 1.0));
  // Different lengths, an empty string and binary bytes.
  const std::string mine =
      r == 1 ? std::string()
             : std::string("rank-") + std::to_string(r) + std::string(1, '\0') + "x";
  const std::vector<std::string> all = comm->all_gather_strings(mine);
  ASSERT_EQ(static_cast<int>(all.size()), n);
  for (int q = 0; q < n; ++q) {
    const std::string want =
        q == 1 ? std::string()
               : std::string("rank-") + std::to_string(q) + std::string(1, '\0') + "x";
    EXPECT_EQ(all[q], want);
  }
}

TEST(MpiCollectives, ConfigHashMismatchNamesTheRanks) {
  auto comm = make_comm();
  const std::string config = "run:\n  seed: 1\ncomm:\n  bucket_mb: 25\n";
  const std::string other = "run:\n  seed: 2\ncomm:\n  bucket_mb: 25\n";
  const std::string hash = sha256_hex(config.data(), config.size());
  const std::string other_hash = sha256_hex(other.data(), other.size());
  comm->check_same_on_all_ranks("config hash", hash);  // equal: no error

  const std::string& mine = comm->rank() == 1 ? other_hash : hash;
  const std::string error = error_of([&] { comm->check_same_on_all_ranks("config hash", mine); });
  const std::string others = comm->size() == 2 ? "rank 0 has '" : "ranks 0, 2 have '";
  EXPECT_EQ(error, "config hash differs across ranks: " + others + hash + "'; rank 1 has '" +
                       other_hash + "'");
}

}  // namespace
}  // namespace umbra
