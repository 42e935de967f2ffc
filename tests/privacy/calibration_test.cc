// Noise calibration: the returned σ meets the target and σ − tolerance does not, for both
// accountants; agreement with Opacus' published get_noise_multiplier values; spent history;
// impossible targets and bad inputs.
#include "privacy/calibration.h"

#include <gtest/gtest.h>

#include <string>

#include "core/check.h"

namespace umbra {
namespace {

double eps_at(AccountantKind kind, double sigma, double q, int64_t steps, double delta,
              std::vector<AccountantEntry> history = {}) {
  history.push_back({"x", sigma, q, steps});
  return compute_epsilon(kind, history, delta).epsilon;
}

TEST(Calibration, SmallestSigmaWithinTolerance) {
  const CalibrationOptions opts;
  struct Case {
    AccountantKind kind;
    double target, q;
    int64_t steps;
  };
  for (const Case& c :
       {Case{AccountantKind::kRdp, 1.0, 0.004, 14000}, Case{AccountantKind::kRdp, 10.0, 0.01, 5000},
        Case{AccountantKind::kPrv, 1.0, 0.004, 14000},
        Case{AccountantKind::kPrv, 8.0, 0.04, 2000}}) {
    const CalibrationResult r = calibrate_noise_multiplier(c.kind, c.target, 1e-5, c.q, c.steps);
    EXPECT_LE(eps_at(c.kind, r.noise_multiplier, c.q, c.steps, 1e-5), c.target);
    EXPECT_GT(eps_at(c.kind, r.noise_multiplier - opts.tolerance, c.q, c.steps, 1e-5), c.target);
    EXPECT_EQ(r.epsilon, eps_at(c.kind, r.noise_multiplier, c.q, c.steps, 1e-5));
    EXPECT_FALSE(r.at_lower_bound);
  }
}

// Opacus get_noise_multiplier (accountants_test): ε = 8, δ = 1e-5, q = 0.04, 2000 steps → RDP
// σ = 1.3562 (4 places). Opacus stops once ε is within 0.01 below the target and uses the exact
// alternating series, whose smallest σ is 1.35614; the |term| series used here (DESIGN.md's
// vectors) is ~1e-3 larger in ε at this point, which moves the smallest σ to 1.35625.
TEST(Calibration, AgreesWithOpacusRdp) {
  const CalibrationResult r =
      calibrate_noise_multiplier(AccountantKind::kRdp, 8.0, 1e-5, 0.04, 2000);
  EXPECT_NEAR(r.noise_multiplier, 1.3562, 1e-4);
  EXPECT_LE(r.epsilon, 8.0);
}

// Opacus' PRV calibration (σ = 1.2915 for the same setting) uses its upper bound with
// eps_error 0.01, so the tighter bound here needs no more noise than that.
TEST(Calibration, PrvNeedsLessNoiseThanRdp) {
  const CalibrationResult prv =
      calibrate_noise_multiplier(AccountantKind::kPrv, 8.0, 1e-5, 0.04, 2000);
  const CalibrationResult rdp =
      calibrate_noise_multiplier(AccountantKind::kRdp, 8.0, 1e-5, 0.04, 2000);
  EXPECT_LT(prv.noise_multiplier, rdp.noise_multiplier);
  EXPECT_LE(prv.noise_multiplier, 1.2915 + 5e-5);
  EXPECT_GT(prv.noise_multiplier, 1.2915 - 0.02);
}

// Stage 2 calibrated on top of stage 1: the composed ε meets the target.
TEST(Calibration, AccountsForSpentHistory) {
  const std::vector<AccountantEntry> stage1{{"autoencoder", 1.5, 0.01, 3000}};
  const double alone = compute_epsilon(AccountantKind::kRdp, stage1, 1e-5).epsilon;
  const double target = alone + 2.0;
  const CalibrationResult r =
      calibrate_noise_multiplier(AccountantKind::kRdp, target, 1e-5, 0.01, 5000, stage1);
  EXPECT_LE(eps_at(AccountantKind::kRdp, r.noise_multiplier, 0.01, 5000, 1e-5, stage1), target);
  EXPECT_GT(eps_at(AccountantKind::kRdp, r.noise_multiplier - 1e-4, 0.01, 5000, 1e-5, stage1),
            target);
  const CalibrationResult fresh =
      calibrate_noise_multiplier(AccountantKind::kRdp, target, 1e-5, 0.01, 5000);
  EXPECT_GT(r.noise_multiplier, fresh.noise_multiplier);
}

TEST(Calibration, EasyTargetReturnsLowerBound) {
  const CalibrationResult r =
      calibrate_noise_multiplier(AccountantKind::kRdp, 500.0, 1e-5, 0.001, 1);
  EXPECT_TRUE(r.at_lower_bound);
  EXPECT_EQ(r.noise_multiplier, CalibrationOptions{}.sigma_min);
}

TEST(Calibration, ImpossibleTargetIsAClearError) {
  for (AccountantKind kind : {AccountantKind::kRdp, AccountantKind::kPrv}) {
    try {
      calibrate_noise_multiplier(kind, 1e-4, 1e-5, 1.0, 100000);
      FAIL() << "expected an error";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("target epsilon 0.0001 cannot be met with q=1, steps=100000, delta=1e-05"),
                std::string::npos)
          << msg;
      EXPECT_NE(msg.find("even sigma=1000 gives eps="), std::string::npos) << msg;
    }
  }
}

TEST(Calibration, RejectsBadInputs) {
  auto fails = [](auto f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  const auto k = AccountantKind::kRdp;
  EXPECT_NE(fails([&] {
              calibrate_noise_multiplier(k, 0.0, 1e-5, 0.01, 10);
            }).find("privacy.target_epsilon"),
            std::string::npos);
  EXPECT_NE(fails([&] { calibrate_noise_multiplier(k, 1.0, 1.0, 0.01, 10); }).find("privacy.delta"),
            std::string::npos);
  EXPECT_NE(fails([&] { calibrate_noise_multiplier(k, 1.0, 1e-5, 0.0, 10); }).find("sample_rate"),
            std::string::npos);
  EXPECT_NE(fails([&] { calibrate_noise_multiplier(k, 1.0, 1e-5, 0.01, -5); }).find("steps"),
            std::string::npos);
}

}  // namespace
}  // namespace umbra
