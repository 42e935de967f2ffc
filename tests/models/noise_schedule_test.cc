// Noise schedules (models/noise_schedule.h) against their defining formulas, evaluated here
// independently in long double, and the ε / x0 / v conversions.
#include "models/noise_schedule.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/check.h"
#include "models/samplers.h"

namespace umbra {
namespace {

TEST(NoiseSchedule, LinearMatchesDDPM) {
  const NoiseSchedule s(BetaSchedule::kLinear, 1000, 1e-4, 0.02);
  ASSERT_EQ(s.num_timesteps(), 1000);
  long double ab = 1.0L;
  for (int t = 0; t < 1000; ++t) {
    const long double beta = 1e-4L + (0.02L - 1e-4L) * t / 999.0L;
    ab *= 1.0L - beta;
    ASSERT_NEAR(s.beta(t), static_cast<double>(beta), 1e-15) << t;
    ASSERT_NEAR(s.alpha_cumprod(t), static_cast<double>(ab),
                1e-12 * static_cast<double>(ab) + 1e-15)
        << t;
  }
  EXPECT_EQ(s.alpha_cumprod(-1), 1.0);
  // DDPM's linear schedule ends at ᾱ_T ≈ 4.04e-5 (√ᾱ_T ≈ 0.0064): x_T is almost pure noise.
  EXPECT_NEAR(s.alpha_cumprod(999), 4.04e-5, 0.01e-5);
}

TEST(NoiseSchedule, CosineMatchesImprovedDDPM) {
  const int T = 1000;
  const NoiseSchedule s(BetaSchedule::kCosine, T);
  auto f = [](long double tau) {
    const long double c = std::cos((tau + 0.008L) / 1.008L * static_cast<long double>(M_PI) / 2);
    return c * c;
  };
  for (int t = 0; t < T; ++t) {
    const long double beta =
        std::min(1.0L - f((t + 1.0L) / T) / f(static_cast<long double>(t) / T), 0.999L);
    ASSERT_NEAR(s.beta(t), static_cast<double>(beta), 1e-12) << t;
    // Without clipping, ᾱ_t = f((t+1)/T) / f(0); clipping only touches the very last steps.
    if (beta < 0.999L) {
      const double expected = static_cast<double>(f((t + 1.0L) / T) / f(0));
      ASSERT_NEAR(s.alpha_cumprod(t), expected, 1e-9 * expected + 1e-15) << t;
    }
  }
  EXPECT_NEAR(s.beta(T - 1), 0.999, 1e-12);  // the clip is active at the end
}

TEST(NoiseSchedule, QSampleAndConversionsRoundTrip) {
  torch::manual_seed(0);
  for (auto kind : {BetaSchedule::kLinear, BetaSchedule::kCosine}) {
    const NoiseSchedule s(kind, 1000);
    const auto x0 = torch::randn({5, 4, 3, 3}, torch::kFloat64);
    const auto eps = torch::randn({5, 4, 3, 3}, torch::kFloat64);
    const auto t = torch::tensor({0, 1, 250, 700, 998}, torch::kLong);
    const auto xt = s.q_sample(x0, eps, t);
    for (int i = 0; i < 5; ++i) {
      const double ab = s.alpha_cumprod(t[i].item<int64_t>());
      ASSERT_TRUE(torch::allclose(xt[i], std::sqrt(ab) * x0[i] + std::sqrt(1 - ab) * eps[i]));
    }
    const auto v = s.target(PredictionType::kV, x0, eps, t);
    EXPECT_TRUE(torch::equal(s.target(PredictionType::kEpsilon, x0, eps, t), eps));
    EXPECT_TRUE(torch::allclose(s.x0_from_v(xt, v, t), x0, 1e-9, 1e-9));
    EXPECT_TRUE(torch::allclose(s.eps_from_v(xt, v, t), eps, 1e-9, 1e-9));
    EXPECT_TRUE(torch::allclose(s.v_from_eps(xt, eps, t), v, 1e-9, 1e-9));
    EXPECT_TRUE(torch::allclose(s.eps_from_x0(xt, x0, t), eps, 1e-9, 1e-9));
    EXPECT_TRUE(torch::allclose(s.x0_from_eps(xt, eps, t), x0, 1e-6, 1e-6));  // 1/√ᾱ is large
    for (auto type : {PredictionType::kEpsilon, PredictionType::kV}) {
      const auto [px0, peps] = s.predict_x0_eps(type, xt, s.target(type, x0, eps, t), t);
      EXPECT_TRUE(torch::allclose(px0, x0, 1e-6, 1e-6));
      EXPECT_TRUE(torch::allclose(peps, eps, 1e-9, 1e-9));
    }
    // float32 inputs keep their dtype.
    EXPECT_EQ(s.q_sample(x0.to(torch::kFloat32), eps.to(torch::kFloat32), t).scalar_type(),
              torch::kFloat32);
  }
}

TEST(NoiseSchedule, RejectsBadInput) {
  EXPECT_THROW(NoiseSchedule(BetaSchedule::kLinear, 1), Error);
  EXPECT_THROW(NoiseSchedule(BetaSchedule::kLinear, 10, 0.5, 0.1), Error);
  const NoiseSchedule s(BetaSchedule::kLinear, 10);
  const auto x = torch::zeros({2, 3});
  EXPECT_THROW(s.q_sample(x, x, torch::tensor({0, 10}, torch::kLong)), Error);
  EXPECT_THROW(parse_prediction_type("x0", "prior.prediction_type"), Error);
  EXPECT_THROW(parse_beta_schedule("quadratic", "prior.beta_schedule"), Error);
}

TEST(SamplingTimesteps, LeadingSpacing) {
  std::vector<int64_t> all = sampling_timesteps(1000, 1000);
  ASSERT_EQ(all.size(), 1000u);
  for (int64_t i = 0; i < 1000; ++i) ASSERT_EQ(all[i], 999 - i);
  const auto fifty = sampling_timesteps(1000, 50);
  ASSERT_EQ(fifty.size(), 50u);
  EXPECT_EQ(fifty.front(), 980);
  EXPECT_EQ(fifty.back(), 0);
  for (size_t i = 1; i < fifty.size(); ++i) EXPECT_EQ(fifty[i - 1] - fifty[i], 20);
  const auto seven = sampling_timesteps(1000, 7);
  EXPECT_EQ(seven, (std::vector<int64_t>{857, 714, 571, 428, 285, 142, 0}));
  EXPECT_EQ(sampling_timesteps(1000, 1), (std::vector<int64_t>{0}));
  EXPECT_THROW(sampling_timesteps(1000, 0), Error);
  EXPECT_THROW(sampling_timesteps(1000, 1001), Error);
}

// How much one deterministic DDIM step (η = 0) multiplies an error in the network's ε̂:
// x_prev = √ᾱ_prev (x − √(1−ᾱ) ε̂)/√ᾱ + √(1−ᾱ_prev) ε̂,
// so ∂x_prev/∂ε̂ = √(1−ᾱ_prev) − √(ᾱ_prev/ᾱ)√(1−ᾱ).
double largest_eps_error_gain(const NoiseSchedule& s, int64_t steps) {
  const auto ts = sampling_timesteps(s.num_timesteps(), steps);
  double worst = 0.0;
  for (size_t i = 0; i < ts.size(); ++i) {
    const double ab = s.alpha_cumprod(ts[i]);
    const double ab_prev = s.alpha_cumprod(i + 1 < ts.size() ? ts[i + 1] : -1);
    worst = std::max(
        worst, std::abs(std::sqrt(1 - ab_prev) - std::sqrt(ab_prev / ab) * std::sqrt(1 - ab)));
  }
  return worst;
}

// The cosine schedule's last β is clipped at 0.999, so ᾱ_999 ≈ 2.4e-9. The old trailing spacing
// started every DDIM run there: its first 50-step jump multiplied the ε̂ error by 633 (250 steps:
// 160), which turned a trained model's samples into blobs while DDPM's small steps were fine.
// The leading spacing keeps every step's gain small for both schedules; only S = T steps from
// t = 999 itself, where the gain is DDPM's own √(ᾱ_998/ᾱ_999) ≈ 32.
TEST(SamplingTimesteps, NoStepAmplifiesTheNetworksErrorOnCosineOrLinear) {
  const NoiseSchedule cosine(BetaSchedule::kCosine, 1000);
  const NoiseSchedule linear(BetaSchedule::kLinear, 1000, 1e-4, 0.02);
  EXPECT_NEAR(cosine.alpha_cumprod(999), 2.4e-9, 0.2e-9);
  for (int64_t steps : {1, 2, 10, 25, 50, 100, 250, 500}) {
    EXPECT_LT(largest_eps_error_gain(cosine, steps), 5.0) << steps << " steps";
    EXPECT_LT(largest_eps_error_gain(linear, steps), 5.0) << steps << " steps";
  }
  EXPECT_LT(largest_eps_error_gain(cosine, 1000), 33.0);
  // What the trailing spacing's first step did at 50 steps (999 -> 979).
  const double ab = cosine.alpha_cumprod(999), ab_prev = cosine.alpha_cumprod(979);
  EXPECT_GT(std::sqrt(ab_prev / ab) * std::sqrt(1 - ab) - std::sqrt(1 - ab_prev), 500.0);
}

}  // namespace
}  // namespace umbra
