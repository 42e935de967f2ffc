#include "audit/run_privacy.h"

#include <gtest/gtest.h>

#include "audit/release.h"
#include "core/check.h"

namespace umbra {
namespace {

nlohmann::json entry(const std::string& stage, double sigma, double q, int64_t steps) {
  return {{"stage", stage}, {"noise_multiplier", sigma}, {"sample_rate", q}, {"steps", steps}};
}

// A checkpoint state.json in the DP trainer's format (trainer/stage_privacy.h).
nlohmann::json state(const std::string& stage, int64_t step,
                     const std::vector<nlohmann::json>& entries, double stored_epsilon = 1.0) {
  const nlohmann::json history = nlohmann::json(entries);
  return {{"stage", stage},
          {"step", step},
          {"checkpoint", "/runs/x/" + stage + "/checkpoints/step_" + std::to_string(step)},
          {"privacy",
           {{"enabled", true},
            {"accountant", {{"accountant", "rdp"}, {"history", history}}},
            {"delta", 1e-5},
            {"target_epsilon", 10.0},
            {"epsilon", stored_epsilon},
            {"noise_multiplier", 1.1},
            {"max_grad_norm", 1.0},
            {"sample_rate", 256.0 / 60000},
            {"expected_batch_size", 256},
            {"num_samples", 60000},
            {"noise_multiplicity", stage == "prior" ? 4 : 1},
            {"clipping", "flat"},
            {"secure_mode", false}}}};
}

TEST(RunPrivacy, RecomputesEpsilonOverBothStagesAndReportsTheStoredOne) {
  const double q = 256.0 / 60000;
  const auto ae = state("autoencoder", 4000, {entry("autoencoder", 1.1, q, 4000)});
  const auto prior = state(
      "prior", 10063, {entry("autoencoder", 1.1, q, 4000), entry("prior", 1.1, q, 10063)}, 2.5);
  const RunPrivacy p = read_run_privacy(ae, prior);
  EXPECT_TRUE(p.dp);
  EXPECT_FALSE(p.composed_by_audit);
  // The published vector: q = 256/60000, sigma = 1.1, T = 14063, delta = 1e-5 -> RDP 2.59666.
  EXPECT_NEAR(p.epsilon, 2.59666, 2e-4);
  EXPECT_DOUBLE_EQ(p.epsilon_recorded, 2.5);
  EXPECT_EQ(p.accountant, "rdp");
  EXPECT_NE(p.statement.find("differential privacy"), std::string::npos) << p.statement;
  const nlohmann::json report = p.report();
  EXPECT_NO_THROW(check_privacy_report(report));
  EXPECT_EQ(report["stages"]["autoencoder"]["steps"], 4000);
  EXPECT_EQ(report["stages"]["prior"]["steps"], 10063);
  EXPECT_EQ(report["stages"]["prior"]["noise_multiplicity"], 4);
  EXPECT_DOUBLE_EQ(report["delta"].get<double>(), 1e-5);
}

TEST(RunPrivacy, ComposesStageOneWhenThePriorHistoryLacksIt) {
  const double q = 256.0 / 60000;
  const auto ae = state("autoencoder", 4000, {entry("autoencoder", 1.1, q, 4000)});
  const auto prior = state("prior", 10063, {entry("prior", 1.1, q, 10063)});
  const RunPrivacy p = read_run_privacy(ae, prior);
  EXPECT_TRUE(p.composed_by_audit);
  EXPECT_NEAR(p.epsilon, 2.59666, 2e-4);
}

TEST(RunPrivacy, ANonPrivateStageMeansNoGuarantee) {
  const double q = 0.01;
  nlohmann::json plain = {{"stage", "autoencoder"}, {"step", 100}, {"checkpoint", "/c/ae"}};
  const auto prior = state("prior", 50, {entry("prior", 1.0, q, 50)});
  RunPrivacy p = read_run_privacy(plain, prior);
  EXPECT_FALSE(p.dp);
  EXPECT_NE(p.statement.find("autoencoder stage was"), std::string::npos) << p.statement;
  nlohmann::json report = p.report();
  EXPECT_NO_THROW(check_privacy_report(report));
  EXPECT_TRUE(report["epsilon"].is_null());

  // Neither stage private ("enabled": false counts as absent).
  nlohmann::json off = {{"stage", "prior"}, {"step", 7}, {"privacy", {{"enabled", false}}}};
  p = read_run_privacy(plain, off);
  EXPECT_FALSE(p.dp);
  EXPECT_NE(p.statement.find("autoencoder and prior stages were"), std::string::npos);
  report = p.report();
  EXPECT_NO_THROW(check_privacy_report(report));
  EXPECT_EQ(report["stages"]["prior"]["steps"], 7);
}

TEST(RunPrivacy, MalformedBlocksNameTheCheckpointAndField) {
  const double q = 0.01;
  auto ae = state("autoencoder", 10, {entry("autoencoder", 1.0, q, 10)});
  auto prior = state("prior", 10, {entry("autoencoder", 1.0, q, 10), entry("prior", 1.0, q, 10)});
  prior["privacy"].erase("delta");
  try {
    read_run_privacy(ae, prior);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("step_10/state.json: privacy.delta"), std::string::npos)
        << e.what();
  }
  prior = state("prior", 10, {entry("prior", -1.0, q, 10)});
  EXPECT_THROW(read_run_privacy(ae, prior), Error);
  prior["privacy"] = "yes";
  EXPECT_THROW(read_run_privacy(ae, prior), Error);
}

}  // namespace
}  // namespace umbra
