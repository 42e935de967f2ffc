// DP-SGD through `umbra train` (the real binary, tiny models, a synthetic 28x28 dataset): the run
// records its privacy in every checkpoint, both stages compose into one epsilon within the
// target, the budget stop, resume keeping the spent epsilon, and the refusals of DESIGN.md §5.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "privacy/accountant.h"
#include "tests/trainer/tiny_train_fixture.h"

namespace umbra {
namespace {

using test_util::run_command;

class DpTrain : public TinyTrainTest {
 protected:
  static void SetUpTestSuite() { make_data(1000, 64, 500); }

  // umbra train on the tiny config with DP and the given extra overrides.
  test_util::CommandResult train(const std::string& run_name, const std::string& overrides) {
    return TinyTrainTest::train(run_name,
                                "privacy.enabled=true privacy.expected_batch_size=32 "
                                "privacy.max_physical_batch=16 prior.scale_factor=1.0 " +
                                    overrides);
  }
};

TEST_F(DpTrain, BothStagesComposeIntoOneEpsilonWithinTheTarget) {
  const auto r = train("both", "privacy.target_epsilon=8 privacy.noise_multiplicity=2");
  ASSERT_EQ(r.rc, 0) << r.output;
  const auto ae = final_state("both", "autoencoder").at("privacy");
  const auto prior = final_state("both", "prior").at("privacy");
  EXPECT_TRUE(prior.at("enabled").get<bool>());
  // One sigma for the whole run, calibrated in stage 1 for both stages' steps.
  EXPECT_EQ(ae.at("noise_multiplier"), prior.at("noise_multiplier"));
  EXPECT_DOUBLE_EQ(prior.at("sample_rate").get<double>(), 32.0 / 1000.0);
  const Accountant acc = Accountant::from_json(prior.at("accountant"));
  EXPECT_EQ(acc.stage_steps("autoencoder"), 4);
  EXPECT_EQ(acc.stage_steps("prior"), 4);
  const double eps = acc.epsilon(1e-5);
  EXPECT_NEAR(prior.at("epsilon").get<double>(), eps, 1e-9);
  EXPECT_LE(eps, 8.0);
  EXPECT_GT(eps, 7.0);  // calibrated to spend (almost) the whole target
  EXPECT_LT(ae.at("epsilon").get<double>(), eps);
  EXPECT_NE(r.output.find("DP-SGD sigma="), std::string::npos);
}

TEST_F(DpTrain, StopsBeforeAStepThatWouldExceedTheTarget) {
  // sigma fixed at 0.8: the budget runs out after a few steps of the 20.
  const auto r = train("budget",
                       "stage=autoencoder autoencoder.max_steps=20 privacy.noise_multiplier=0.8 "
                       "privacy.target_epsilon=2.5");
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("privacy budget allows"), std::string::npos);
  const auto state = final_state("budget", "autoencoder");
  const int64_t steps = state.at("step").get<int64_t>();
  EXPECT_GT(steps, 0);
  EXPECT_LT(steps, 20);
  const Accountant acc = Accountant::from_json(state.at("privacy").at("accountant"));
  EXPECT_LE(acc.epsilon(1e-5), 2.5);
  Accountant one_more = acc;
  one_more.add_steps("autoencoder", 0.8, 32.0 / 1000.0, 1);
  EXPECT_GT(one_more.epsilon(1e-5), 2.5);

  // Nothing left: a further run refuses to step and says why.
  const auto again = train("budget",
                           "stage=autoencoder autoencoder.max_steps=20 "
                           "privacy.noise_multiplier=0.8 privacy.target_epsilon=2.5");
  EXPECT_EQ(again.rc, 1);
  EXPECT_NE(again.output.find("privacy budget is spent"), std::string::npos) << again.output;
}

TEST_F(DpTrain, ResumeKeepsTheSpentEpsilon) {
  const std::string common = "stage=autoencoder privacy.noise_multiplier=1.1 ";
  ASSERT_EQ(train("resume", common + "autoencoder.max_steps=4").rc, 0);
  const auto r = train("resume", common + "autoencoder.max_steps=6");
  ASSERT_EQ(r.rc, 0);
  EXPECT_NE(r.output.find("resuming from"), std::string::npos);
  const auto privacy = final_state("resume", "autoencoder").at("privacy");
  const Accountant acc = Accountant::from_json(privacy.at("accountant"));
  EXPECT_EQ(acc.total_steps(), 6);
  Accountant fresh;
  fresh.add_steps("autoencoder", 1.1, 0.032, 6);
  EXPECT_NEAR(acc.epsilon(1e-5), fresh.epsilon(1e-5), 1e-12);
}

TEST_F(DpTrain, RefusesWhatWouldLeakOrCannotBeMet) {
  auto expect_refusal = [&](const std::string& name, const std::string& overrides,
                            const std::string& needle) {
    const auto r = train(name, overrides);
    EXPECT_EQ(r.rc, 1) << overrides;
    EXPECT_NE(r.output.find(needle), std::string::npos) << overrides << "\n" << r.output;
  };
  // A latent scale computed from the private latents.
  expect_refusal("scale", "prior.scale_factor=0", "prior.scale_factor");
  // delta >= 1/N (N = 1000).
  expect_refusal("delta", "privacy.delta=0.002", "privacy.delta");
  // No sigma in range meets a tiny target.
  expect_refusal("target", "privacy.target_epsilon=0.00001", "cannot be met");
  // A DP prior on an autoencoder trained without DP.
  ASSERT_EQ(run_command(train_command("mixed", "stage=autoencoder")).rc, 0);
  expect_refusal("mixed", "stage=prior", "WITHOUT DP-SGD");
}

}  // namespace
}  // namespace umbra
