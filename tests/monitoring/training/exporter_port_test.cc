// "The exporter never takes down training" (DESIGN.md §10), through `mpirun -np 2 umbra train`:
// with rank 1's port held by another program, the job warns clearly and trains to the end without
// that rank's endpoint (and the file_sd target file leaves it out); with monitoring.required: true
// the same job stops at start with a message naming the address and the key.
#include <gtest/gtest.h>

#include "monitoring/file_sd.h"
#include "tests/monitoring/training_run.h"

namespace umbra {
namespace {

class ExporterPort : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(test::kFashionMnist)) GTEST_SKIP() << test::kFashionMnist;
    std::string why;
    data_ = test::pack_fashion_mnist_subset(dir_.path(), 256, 32, &why);
    ASSERT_FALSE(data_.empty()) << why;
    // port_base for local ranks 0 and 1, with port_base + 1 held by "another program".
    for (int attempt = 0; attempt < 20 && !holder_; ++attempt) {
      const int base = test::free_loopback_port();
      if (base >= 65535 || !test::PortHolder(base).holding()) continue;
      auto holder = std::make_unique<test::PortHolder>(base + 1);
      if (!holder->holding()) continue;
      port_base_ = base;
      holder_ = std::move(holder);
    }
    ASSERT_TRUE(holder_) << "found no two adjacent free loopback ports";
  }

  test::CommandResult train(const std::string& run, const std::string& extra) {
    return test::run_command(
        "timeout -k 5 100 " +
        test::tiny_train_command(2, data_, runs(), run,
                                 "stage=autoencoder autoencoder.max_steps=2 "
                                 "monitoring.enabled=true monitoring.port_base=" +
                                     std::to_string(port_base_) + " " + extra));
  }
  std::string runs() const { return dir_.path() + "/runs"; }
  std::string busy_address() const { return "127.0.0.1:" + std::to_string(port_base_ + 1); }

  test::TempDir dir_;
  std::string data_;
  int port_base_ = 0;
  std::unique_ptr<test::PortHolder> holder_;
};

TEST_F(ExporterPort, BusyPortWarnsAndTrainingContinues) {
  const test::CommandResult r = train("busy", "");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // Rank 1's warning reaches the terminal (ranks > 0 print warnings) and names the address.
  EXPECT_NE(r.output.find("[rank 1] warning monitoring: cannot serve metrics on " + busy_address()),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("Address already in use"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("this rank trains without a metrics endpoint"), std::string::npos)
      << r.output;
  // Trained to the end: both checkpoints' stage finished and the summary was written.
  const std::string run_dir = runs() + "/busy";
  EXPECT_TRUE(std::filesystem::exists(run_dir + "/summary.json"));
  EXPECT_TRUE(std::filesystem::exists(run_dir + "/autoencoder/checkpoints/step_2"));
  // The target file lists rank 0 only, on port_base.
  const nlohmann::json groups =
      nlohmann::json::parse(test::read_text_file(file_sd_path(runs(), "busy")));
  ASSERT_EQ(groups.size(), 1u) << groups.dump();
  EXPECT_EQ(groups[0]["labels"]["rank"], "0");
  EXPECT_EQ(groups[0]["targets"][0], "127.0.0.1:" + std::to_string(port_base_));
}

TEST_F(ExporterPort, BusyPortFailsAtStartWhenRequired) {
  const auto start = std::chrono::steady_clock::now();
  const test::CommandResult r = train("required", "monitoring.required=true");
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("starting the metrics exporter failed: rank 1: monitoring: cannot "
                          "serve metrics on " +
                          busy_address() + ": Address already in use; monitoring.required is true"),
            std::string::npos)
      << r.output;
  // Failed at start: no checkpoint, no logged step, no summary.
  const std::string run_dir = runs() + "/required";
  EXPECT_FALSE(std::filesystem::exists(run_dir + "/autoencoder"));
  EXPECT_FALSE(std::filesystem::exists(run_dir + "/summary.json"));
  EXPECT_EQ(test::read_text_file(run_dir + "/metrics.jsonl"), "");
  std::printf("failed after %.1f s\n", seconds);
}

}  // namespace
}  // namespace umbra
