// `umbra train` resume and bad input (the real binary, tiny models, a synthetic 28x28 dataset):
//  - N steps + checkpoint + resume N steps gives bit-identical parameters, EMA and optimizer
//    state to 2N steps uninterrupted, for each stage, without and with DP-SGD;
//  - a configuration that does not match the checkpoint (shapes), a missing run directory and a
//    NaN loss each stop with a clear message (exit 1) and keep the last good checkpoint.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tests/trainer/tiny_train_fixture.h"

namespace umbra {
namespace {

using test_util::run_command;

class TrainCli : public TinyTrainTest {
 protected:
  static void SetUpTestSuite() { make_data(600, 64, 300); }

  // Every tensor of model, EMA and optimizer state equal bit for bit.
  static void expect_identical(const std::string& a, const std::string& b) {
    const Checkpoint x = read_checkpoint(a), y = read_checkpoint(b);
    for (const auto& pair : {std::make_pair(&x.model, &y.model), std::make_pair(&x.ema, &y.ema),
                             std::make_pair(&x.optimizer, &y.optimizer)}) {
      const TensorMap& mx = *pair.first;
      const TensorMap& my = *pair.second;
      ASSERT_EQ(mx.size(), my.size());
      for (const auto& kv : mx) {
        ASSERT_TRUE(my.count(kv.first)) << kv.first;
        EXPECT_TRUE(torch::equal(kv.second, my.at(kv.first))) << kv.first << " differs";
      }
    }
    EXPECT_EQ(x.state.at("sampler"), y.state.at("sampler"));
    // The privacy record too, but for where sigma came from ("resumed from <checkpoint>").
    nlohmann::json px = x.state.value("privacy", nlohmann::json::object());
    nlohmann::json py = y.state.value("privacy", nlohmann::json::object());
    px.erase("noise_multiplier_source");
    py.erase("noise_multiplier_source");
    EXPECT_EQ(px, py);
  }

  void check_resume(const std::string& stage, const std::string& extra) {
    const std::string steps = stage + ".max_steps=";
    ASSERT_EQ(train("straight-" + stage, extra + " " + steps + "4").rc, 0);
    ASSERT_EQ(train("split-" + stage, extra + " " + steps + "2").rc, 0);
    const auto r = train("split-" + stage, extra + " " + steps + "4");
    ASSERT_EQ(r.rc, 0);
    EXPECT_NE(r.output.find("resuming from"), std::string::npos);
    expect_identical(stage_dir("straight-" + stage, stage) + "/checkpoints/step_4",
                     stage_dir("split-" + stage, stage) + "/checkpoints/step_4");
  }
};

TEST_F(TrainCli, ResumedAutoencoderIsBitIdenticalToUninterrupted) {
  check_resume("autoencoder", "stage=autoencoder");
}

TEST_F(TrainCli, ResumedPriorIsBitIdenticalToUninterrupted) {
  // The prior of both runs builds on the same stage-1 autoencoder (2 steps).
  check_resume("prior", "stage=both autoencoder.max_steps=2");
}

TEST_F(TrainCli, ResumedDpRunIsBitIdenticalToUninterrupted) {
  // Seeded noise is a function of (seed, step): a resumed DP run draws the same noise.
  check_resume("autoencoder",
               "stage=autoencoder privacy.enabled=true privacy.noise_multiplier=1.0 "
               "privacy.expected_batch_size=24 privacy.max_physical_batch=8 run.seed=5");
}

TEST_F(TrainCli, ResumesFromTheGivenCheckpointOfThisRunOnly) {
  ASSERT_EQ(train("straight", "stage=autoencoder autoencoder.max_steps=4").rc, 0);
  ASSERT_EQ(train("given", "stage=autoencoder autoencoder.max_steps=4").rc, 0);
  // Back to step 2 although step 4 exists: the new step 4 equals the uninterrupted one.
  const std::string step2 = stage_dir("given", "autoencoder") + "/checkpoints/step_2";
  auto r = train("given", "stage=autoencoder autoencoder.max_steps=4 run.resume=" + step2);
  ASSERT_EQ(r.rc, 0);
  EXPECT_NE(r.output.find("resuming from " + step2), std::string::npos) << r.output;
  expect_identical(stage_dir("straight", "autoencoder") + "/checkpoints/step_4",
                   stage_dir("given", "autoencoder") + "/checkpoints/step_4");
  // Another run's checkpoint is refused by name, not silently replaced by this run's newest.
  const std::string other = stage_dir("straight", "autoencoder") + "/checkpoints/step_2";
  r = train("given", "stage=autoencoder autoencoder.max_steps=6 run.resume=" + other);
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.output.find("not a checkpoint of this run"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(other), std::string::npos) << r.output;
}

TEST_F(TrainCli, ConfigThatDoesNotMatchTheCheckpointIsRefusedByName) {
  ASSERT_EQ(train("shape", "stage=autoencoder autoencoder.max_steps=2").rc, 0);
  const auto r =
      train("shape", "stage=autoencoder autoencoder.max_steps=4 autoencoder.channels=16");
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.output.find("has shape"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("does not match"), std::string::npos) << r.output;
  EXPECT_TRUE(verify_checkpoint(stage_dir("shape", "autoencoder") + "/checkpoints/step_2"));
}

TEST_F(TrainCli, MissingRunDirectoryIsAClearError) {
  const auto r = run_command(std::string(UMBRA_BINARY) + " sample --run " + runs_.path() +
                             "/no-such-run --out " + runs_.path() + "/x.png");
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find("no-such-run"), std::string::npos) << r.output;
}

TEST_F(TrainCli, NanLossStopsAndKeepsTheLastGoodCheckpoint) {
  // Two good steps (checkpointed), then a learning rate that blows the weights up.
  ASSERT_EQ(train("nan", "stage=autoencoder autoencoder.max_steps=2").rc, 0);
  const auto r = train("nan",
                       "stage=autoencoder autoencoder.max_steps=40 autoencoder.optimizer.lr=1e30 "
                       "autoencoder.optimizer.warmup_steps=0 autoencoder.grad_clip=0");
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find("loss became"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("the last good one is"), std::string::npos) << r.output;
  const auto latest = find_latest_checkpoint(stage_dir("nan", "autoencoder"));
  ASSERT_TRUE(latest.has_value());
  const Checkpoint c = read_checkpoint(*latest);
  for (const auto& kv : c.model) {
    EXPECT_TRUE(torch::isfinite(kv.second).all().item<bool>()) << kv.first << " in " << *latest;
  }
}

}  // namespace
}  // namespace umbra
