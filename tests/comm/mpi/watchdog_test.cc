// The watchdog's report on a real multi-rank job, with a recording handler instead of the
// default abort: rank 1 arrives late at a barrier; every other rank's watchdog must name rank 1
// (and only rank 1) as not arrived, by asking it over the side channel while it sleeps.
#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <thread>

#include "comm/mpi_communicator.h"

namespace umbra {
namespace {

TEST(Watchdog, NamesTheRankThatDidNotArrive) {
  std::mutex mutex;
  std::vector<TimeoutReport> reports;
  CommOptions options;
  options.timeout_s = 0.5;
  MpiCommunicator comm(MPI_COMM_WORLD, options, [&](const TimeoutReport& report) {
    std::lock_guard<std::mutex> lock(mutex);
    reports.push_back(report);
  });
  comm.set_step(41);
  comm.barrier("before");
  comm.set_step(42);
  if (comm.rank() == 1) std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  comm.barrier("late");
  comm.barrier("after");  // every watchdog has reported by now (rank 1 answered before arriving)

  std::lock_guard<std::mutex> lock(mutex);
  if (comm.rank() == 1) {
    EXPECT_TRUE(reports.empty());
    return;
  }
  ASSERT_EQ(reports.size(), 1u);
  const TimeoutReport& r = reports[0];
  EXPECT_EQ(r.collective, "barrier 'late'");
  EXPECT_EQ(r.sequence, 2u);
  EXPECT_EQ(r.step, 42);
  EXPECT_EQ(r.rank, comm.rank());
  EXPECT_TRUE(r.side_channel);
  EXPECT_EQ(r.not_arrived, std::vector<int>{1});
  EXPECT_TRUE(r.no_answer.empty());
  EXPECT_GE(r.waited_s, 0.5);
  const std::string message = r.message();
  const std::string head = "umbra: collective barrier 'late' at step 42 timed out after ";
  EXPECT_EQ(message.rfind(head, 0), 0u) << message;
  EXPECT_NE(message.find(" s on rank " + std::to_string(comm.rank()) +
                         "; ranks that did not arrive: 1 [rank 1: last issued #1 barrier "
                         "'before' at step 41 (finished), idle "),
            std::string::npos)
      << message;
}

TEST(Watchdog, QuietWhenCollectivesFinishInTime) {
  int reports = 0;
  CommOptions options;
  options.timeout_s = 5;
  {
    MpiCommunicator comm(MPI_COMM_WORLD, options, [&](const TimeoutReport&) { ++reports; });
    torch::Tensor t = torch::ones({1 << 16});
    for (int i = 0; i < 20; ++i) comm.all_reduce_sum(t);
  }
  EXPECT_EQ(reports, 0);
}

}  // namespace
}  // namespace umbra
