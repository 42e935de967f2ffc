// A test fixture for `umbra train` through the real binary: a synthetic 28x28, 4-class dataset
// made once per test suite, a fresh runs directory per test, and configs/tiny_test.yaml.
//   class MySuite : public TinyTrainTest {
//    protected:
//     static void SetUpTestSuite() { make_data(/*train=*/600, /*per_shard=*/64, /*test=*/300); }
//   };
// train() prints the command and its output, so a failing test shows what the binary said.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/data/data_test_util.h"
#include "trainer/checkpoint.h"

namespace umbra {

class TinyTrainTest : public ::testing::Test {
 protected:
  static void make_data(int64_t train_images, int64_t per_shard, int64_t test_images) {
    data_ = std::make_unique<test_util::TempDir>();
    test_util::write_synthetic_dataset(data_path(), test_util::tiny_meta(1, 28, 28, 4),
                                       train_images, per_shard, test_images);
  }
  static void TearDownTestSuite() { data_.reset(); }
  static std::string data_path() { return data_->path() + "/data"; }

  // The command line of `umbra train` on the tiny config for `run_name`, then `overrides`.
  std::string train_command(const std::string& run_name, const std::string& overrides) const {
    return std::string(UMBRA_BINARY) + " train --config " + UMBRA_SOURCE_DIR +
           "/configs/tiny_test.yaml data.path=" + data_path() + " run.dir=" + runs_.path() +
           " run.name=" + run_name + " " + overrides;
  }
  test_util::CommandResult train(const std::string& run_name, const std::string& overrides) const {
    const std::string cmd = train_command(run_name, overrides);
    auto r = test_util::run_command(cmd);
    std::printf("$ %s\n-> exit %d\n%s\n", cmd.c_str(), r.rc, r.output.c_str());
    return r;
  }
  std::string stage_dir(const std::string& run, const std::string& stage) const {
    return runs_.path() + "/" + run + "/" + stage;
  }
  // state.json of the newest checkpoint of a run's stage (a test failure when there is none).
  nlohmann::json final_state(const std::string& run, const std::string& stage) const {
    const auto dir = find_latest_checkpoint(stage_dir(run, stage));
    EXPECT_TRUE(dir.has_value()) << "no checkpoint under " << stage_dir(run, stage);
    if (!dir) return {};
    return nlohmann::json::parse(std::ifstream(*dir + "/state.json"));
  }

  inline static std::unique_ptr<test_util::TempDir> data_;
  test_util::TempDir runs_;
};

}  // namespace umbra
