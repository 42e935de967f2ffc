// Gaussian noise of DP-SGD: statistics of both sources (seeded and secure_mode), reproducibility
// of the seeded stream, and the one-rank contract.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "core/check.h"
#include "privacy/dp_noise.h"

namespace umbra {
namespace {

constexpr int64_t kN = 1 << 20;

// Sample mean/std/kurtosis of `x` and checks against N(0, std²) at ~5 standard errors:
// se(mean) = std/√n, se(std) ≈ std/√(2n), se(kurtosis) ≈ √(24/n); the mass within ±1 std is
// 0.682689 with se √(p(1−p)/n).
void expect_gaussian(const torch::Tensor& x, double std) {
  const torch::Tensor d = x.to(torch::kDouble);
  const double n = static_cast<double>(d.numel());
  const double mean = d.mean().item<double>();
  const double sd = d.std().item<double>();
  const double kurtosis = ((d - mean).pow(4).mean() / std::pow(sd, 4)).item<double>();
  const double within = (d.abs() < std).to(torch::kDouble).mean().item<double>();
  EXPECT_LT(std::abs(mean), 5 * std / std::sqrt(n)) << "mean " << mean;
  EXPECT_LT(std::abs(sd - std), 5 * std / std::sqrt(2 * n)) << "std " << sd << " vs " << std;
  EXPECT_LT(std::abs(kurtosis - 3.0), 5 * std::sqrt(24.0 / n)) << "kurtosis " << kurtosis;
  const double p = 0.682689492137;
  EXPECT_LT(std::abs(within - p), 5 * std::sqrt(p * (1 - p) / n)) << "P(|z|<std) " << within;
}

TEST(Noise, SeededStdIsSigmaTimesC) {
  const GaussianNoise noise(1.3, 0.7, /*secure_mode=*/false, 42);
  EXPECT_DOUBLE_EQ(noise.std(), 1.3 * 0.7);
  // Added to gradient tensors of several shapes: the added values are the noise.
  std::vector<torch::Tensor> grads = {torch::zeros({512, 1024}), torch::zeros({1 << 19}),
                                      torch::zeros({3, 5})};
  ASSERT_TRUE(noise.add(grads, 5, 0));
  torch::Tensor all = torch::cat({grads[0].flatten(), grads[1], grads[2].flatten()});
  expect_gaussian(all, 1.3 * 0.7);
}

TEST(Noise, SecureModeStdAndMean) {
  const GaussianNoise noise(2.0, 0.5, /*secure_mode=*/true, 0);
  std::vector<torch::Tensor> grads = {torch::full({kN}, 3.0)};
  ASSERT_TRUE(noise.add(grads, 0, 0));
  expect_gaussian(grads[0] - 3.0, 1.0);
  // Not a replay: two draws differ.
  EXPECT_FALSE(torch::equal(noise.sample(1000, 0), noise.sample(1000, 0)));
}

TEST(Noise, SeededIsReproduciblePerStepAndSeed) {
  const GaussianNoise a(1.0, 1.0, false, 7), b(1.0, 1.0, false, 7), c(1.0, 1.0, false, 8);
  EXPECT_TRUE(torch::equal(a.sample(1000, 3), b.sample(1000, 3)));
  EXPECT_FALSE(torch::equal(a.sample(1000, 3), a.sample(1000, 4)));
  EXPECT_FALSE(torch::equal(a.sample(1000, 3), c.sample(1000, 3)));
  // The split into tensors does not change the stream.
  std::vector<torch::Tensor> one = {torch::zeros({10})};
  std::vector<torch::Tensor> two = {torch::zeros({4}), torch::zeros({2, 3})};
  a.add(one, 9, 0);
  a.add(two, 9, 0);
  EXPECT_TRUE(torch::equal(one[0], torch::cat({two[0], two[1].flatten()})));
  // Consecutive steps are independent: no correlation between step 0 and step 1.
  const torch::Tensor s0 = a.sample(kN, 0), s1 = a.sample(kN, 1);
  const double corr = (s0 * s1).mean().item<double>();
  EXPECT_LT(std::abs(corr), 5.0 / std::sqrt(static_cast<double>(kN)));
}

TEST(Noise, OnlyRankZeroAdds) {
  const GaussianNoise noise(1.0, 1.0, false, 1);
  std::vector<torch::Tensor> grads = {torch::ones({100})};
  EXPECT_FALSE(noise.add(grads, 0, 1));
  EXPECT_FALSE(noise.add(grads, 0, 3));
  EXPECT_TRUE(torch::equal(grads[0], torch::ones({100})));
  EXPECT_TRUE(noise.add(grads, 0, 0));
  EXPECT_FALSE(torch::equal(grads[0], torch::ones({100})));
}

TEST(Noise, ZeroSigmaAddsNothingAndBadScaleIsRefused) {
  const GaussianNoise zero(0.0, 1.0, false, 1);
  std::vector<torch::Tensor> grads = {torch::randn({50})};
  const torch::Tensor before = grads[0].clone();
  zero.add(grads, 0, 0);
  EXPECT_TRUE(torch::equal(grads[0], before));
  EXPECT_THROW(GaussianNoise(-1.0, 1.0, false, 1), Error);
  EXPECT_THROW(GaussianNoise(1.0, std::numeric_limits<double>::infinity(), false, 1), Error);
}

}  // namespace
}  // namespace umbra
