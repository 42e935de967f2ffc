// data.canaries through `umbra train` (the real binary, tiny models, synthetic 28x28 data): the
// included canaries join the training set of both stages (N = data + included, in the privacy
// accounting too), the run records them (canaries.json, state.json), a resume keeps them and
// refuses to change them, 2 ranks build the same set as 1, and bad options are refused.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "data/canaries.h"
#include "tests/data/data_test_util.h"
#include "trainer/checkpoint.h"

namespace umbra {
namespace {

using test_util::run_command;
using test_util::TempDir;

class CanaryTrain : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    data_ = new TempDir();
    const DatasetMeta meta = test_util::tiny_meta(1, 28, 28, 4);
    test_util::write_synthetic_dataset(data_->path() + "/big", meta, 1000, 64, 500);
    test_util::write_synthetic_dataset(data_->path() + "/small", meta, 60, 64, 500);
  }
  static void TearDownTestSuite() {
    delete data_;
    data_ = nullptr;
  }

  test_util::CommandResult train(const std::string& run_name, const std::string& data,
                                 const std::string& overrides, const std::string& launcher = "") {
    const std::string cmd = launcher + std::string(UMBRA_BINARY) + " train --config " +
                            UMBRA_SOURCE_DIR +
                            "/configs/tiny_test.yaml data.path=" + data_->path() + "/" + data +
                            " run.dir=" + runs_.path() + " run.name=" + run_name + " " + overrides;
    auto r = run_command(cmd);
    std::printf("$ %s\n-> exit %d\n%s\n", cmd.c_str(), r.rc, r.output.c_str());
    return r;
  }

  nlohmann::json read_json(const std::string& path) {
    std::ifstream in(path);
    EXPECT_TRUE(in.good()) << path;
    return in.good() ? nlohmann::json::parse(in) : nlohmann::json();
  }

  nlohmann::json final_state(const std::string& run_name, const std::string& stage) {
    const auto dir = find_latest_checkpoint(runs_.path() + "/" + run_name + "/" + stage);
    EXPECT_TRUE(dir.has_value());
    return dir ? read_json(*dir + "/state.json") : nlohmann::json();
  }

  // Every id in <run>/<stage>/sample_ids.rank*.txt.
  std::set<int64_t> logged_ids(const std::string& run_name, const std::string& stage) {
    std::set<int64_t> ids;
    for (const auto& e :
         std::filesystem::directory_iterator(runs_.path() + "/" + run_name + "/" + stage)) {
      if (e.path().filename().string().rfind("sample_ids.rank", 0) != 0) continue;
      std::ifstream in(e.path());
      std::string line;
      while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        std::istringstream words(line);
        int64_t step, id;
        words >> step;
        while (words >> id) ids.insert(id);
      }
    }
    return ids;
  }

  static TempDir* data_;
  TempDir runs_;
};
TempDir* CanaryTrain::data_ = nullptr;

int64_t included_count(uint64_t seed, int64_t m) {
  const auto in = canary_inclusion(seed, m);
  return std::count(in.begin(), in.end(), true);
}

TEST_F(CanaryTrain, PrivateRunCountsTheIncludedCanariesAndResumesWithThem) {
  const std::string dp =
      "stage=autoencoder privacy.enabled=true privacy.noise_multiplier=1.0 "
      "privacy.expected_batch_size=32 privacy.max_physical_batch=16 prior.scale_factor=1.0 "
      "data.canaries.count=20 data.canaries.seed=7 ";
  const int64_t included = included_count(7, 20);
  ASSERT_GT(included, 0);
  ASSERT_LT(included, 20);
  const int64_t n = 1000 + included;
  auto r = train("dp", "big", dp + "autoencoder.max_steps=2");
  ASSERT_EQ(r.rc, 0);
  EXPECT_NE(r.output.find("training on 1000 + " + std::to_string(included) + " = " +
                          std::to_string(n) + " images"),
            std::string::npos);
  const std::string run = runs_.path() + "/dp";
  const nlohmann::json record = read_json(run + "/canaries.json");
  EXPECT_EQ(record["count"], 20);
  EXPECT_EQ(record["kind"], "ood");
  EXPECT_EQ(record["seed"], 7);
  EXPECT_EQ(record["included"], included);
  EXPECT_EQ(record["dataset_images"], 1000);
  EXPECT_EQ(record["train_images"], n);
  nlohmann::json state = final_state("dp", "autoencoder");
  EXPECT_EQ(state["canaries"]["included"], included);
  EXPECT_EQ(state["canaries"]["train_images"], n);
  EXPECT_FALSE(state["canaries"].contains("seed"));
  // The accountant's N and q are those of the augmented set.
  EXPECT_EQ(state["privacy"]["num_samples"], n);
  EXPECT_DOUBLE_EQ(state["privacy"]["sample_rate"].get<double>(), 32.0 / static_cast<double>(n));

  // Resume: same canaries, further steps.
  r = train("dp", "big", dp + "autoencoder.max_steps=4");
  ASSERT_EQ(r.rc, 0);
  EXPECT_NE(r.output.find("resuming from"), std::string::npos);
  state = final_state("dp", "autoencoder");
  EXPECT_EQ(state["step"], 4);
  EXPECT_EQ(state["canaries"]["train_images"], n);
  EXPECT_EQ(read_json(run + "/canaries.json"), record);

  // Changing the canaries of a trained run is refused, and leaves config.yaml as it was.
  for (const std::string& change :
       {std::string("data.canaries.seed=8"), std::string("data.canaries.count=0"),
        std::string("data.canaries.kind=relabel")}) {
    r = train("dp", "big", dp + "autoencoder.max_steps=6 " + change);
    EXPECT_EQ(r.rc, 1) << change;
    EXPECT_NE(r.output.find("differs from what this run's checkpoints were trained with"),
              std::string::npos)
        << change;
  }
  std::ifstream cfg(run + "/config.yaml");
  const std::string yaml((std::istreambuf_iterator<char>(cfg)), {});
  EXPECT_NE(yaml.find("max_steps: 4"), std::string::npos);
  // A run trained without canaries cannot gain them either.
  ASSERT_EQ(train("plain", "big", "stage=autoencoder autoencoder.max_steps=2").rc, 0);
  r = train("plain", "big", "stage=autoencoder data.canaries.count=4 data.canaries.seed=1");
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.output.find("no canaries"), std::string::npos);
}

// Both stages see exactly the dataset plus the included canaries (one step = one epoch: the
// batch is the whole augmented set), and 2 ranks build the same set as 1.
TEST_F(CanaryTrain, BothStagesSeeExactlyTheIncludedCanariesOnAnyNumberOfRanks) {
  const auto in = canary_inclusion(3, 24);
  std::set<int64_t> expected;
  for (int64_t i = 0; i < 60; ++i) expected.insert(i);
  for (int64_t j = 0; j < 24; ++j) {
    if (in[j]) expected.insert(kCanaryIdBase + j);
  }
  const std::string n = std::to_string(expected.size());
  const std::string common =
      "run.log_sample_ids=true autoencoder.max_steps=1 prior.max_steps=1 "
      "autoencoder.batch_size=" +
      n + " prior.batch_size=" + n + " data.canaries.count=24 data.canaries.seed=3 ";
  ASSERT_EQ(train("one", "small", common).rc, 0);
  EXPECT_EQ(logged_ids("one", "autoencoder"), expected);
  EXPECT_EQ(logged_ids("one", "prior"), expected);
  EXPECT_EQ(final_state("one", "prior")["canaries"]["train_images"],
            static_cast<int64_t>(expected.size()));

  const auto r = train("two", "small", common,
                       "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun "
                       "--oversubscribe -np 2 ");
  ASSERT_EQ(r.rc, 0);
  EXPECT_EQ(logged_ids("two", "autoencoder"), expected);
  EXPECT_EQ(logged_ids("two", "prior"), expected);
  EXPECT_EQ(read_json(runs_.path() + "/two/canaries.json"),
            read_json(runs_.path() + "/one/canaries.json"));
}

TEST_F(CanaryTrain, RefusesBadCanaryOptions) {
  auto expect_refusal = [&](const std::string& overrides, const std::vector<std::string>& needles) {
    const auto r = train("bad", "big", "stage=autoencoder " + overrides);
    EXPECT_EQ(r.rc, 1) << overrides;
    for (const auto& n : needles) {
      EXPECT_NE(r.output.find(n), std::string::npos) << overrides << " lacks '" << n << "'";
    }
    EXPECT_FALSE(std::filesystem::exists(runs_.path() + "/bad/autoencoder")) << overrides;
  };
  expect_refusal("data.canaries.count=5 data.canaries.seed=1 data.canaries.kind=blue",
                 {"data.canaries.kind", "blue"});
  expect_refusal("data.canaries.count=-1 data.canaries.seed=1", {"data.canaries.count", "-1"});
  expect_refusal("data.canaries.count=5", {"data.canaries.seed", "set explicitly"});
  expect_refusal("data.canaries.count=65 data.canaries.seed=1 data.canaries.kind=relabel",
                 {"data.canaries.count 65", "only 64"});
  expect_refusal("data.canaries.count=1000000 data.canaries.seed=1", {"data.canaries.count"});
}

}  // namespace
}  // namespace umbra
