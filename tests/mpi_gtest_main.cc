// main() of the GoogleTest binaries that CTest runs under real `mpirun -np N`
// (umbra_mpi_test in tests/CMakeLists.txt).
//
// - MPI is initialised with MPI_THREAD_MULTIPLE (what umbra::MpiSession asks for), finalised at
//   the end.
// - Rank 0 prints GoogleTest's normal output; other ranks print only their failures, each line
//   prefixed with "[rank r]", so N ranks do not print N copies of the same log.
// - Every rank learns whether any rank failed and exits 1 if so: mpirun's exit status then
//   reflects a failure on any rank, and rank 0 names the failing ranks.
// Tests must issue the same collectives on every rank whatever their assertions say (use EXPECT_*
// after collectives; an ASSERT_* that returns early on one rank leaves the others waiting).
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdio>
#include <string>
#include <vector>

namespace {

class FailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit FailurePrinter(int rank) : rank_(rank) {}

  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::fprintf(stderr, "[rank %d] %s:%d: Failure\n[rank %d] %s\n", rank_,
                 result.file_name() ? result.file_name() : "?", result.line_number(), rank_,
                 result.message());
  }

  void OnTestEnd(const ::testing::TestInfo& info) override {
    if (info.result()->Failed()) {
      std::fprintf(stderr, "[rank %d] [  FAILED  ] %s.%s\n", rank_, info.test_suite_name(),
                   info.name());
    }
  }

 private:
  int rank_;
};

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  if (MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS) {
    std::fprintf(stderr, "mpi_gtest_main: MPI_Init_thread failed\n");
    return 1;
  }
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (provided < MPI_THREAD_MULTIPLE && rank == 0) {
    std::fprintf(stderr,
                 "mpi_gtest_main: warning: MPI grants thread level %d, not "
                 "MPI_THREAD_MULTIPLE\n",
                 provided);
  }

  ::testing::InitGoogleTest(&argc, argv);
  if (rank != 0) {
    ::testing::TestEventListeners& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new FailurePrinter(rank));
  }
  const int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;

  std::vector<int> all(static_cast<size_t>(size), 0);
  MPI_Allgather(&failed, 1, MPI_INT, all.data(), 1, MPI_INT, MPI_COMM_WORLD);
  std::string failing;
  for (int r = 0; r < size; ++r) {
    if (all[r]) failing += (failing.empty() ? "" : ", ") + std::to_string(r);
  }
  if (rank == 0 && !failing.empty()) {
    std::fprintf(stderr, "mpi_gtest_main: tests failed on rank(s) %s of %d\n", failing.c_str(),
                 size);
  }
  std::fflush(stdout);
  std::fflush(stderr);
  MPI_Finalize();
  return failing.empty() ? 0 : 1;
}
