// Philox4x32-10 against the Random123 known-answer vectors (kat_vectors, Salmon et al. 2011) and
// the derived uniform/normal/below draws against their distributions (fixed seeds, so every
// statistical check is deterministic; thresholds are the textbook critical values).
#include "core/rng.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

namespace umbra {
namespace {

using Words = std::array<uint32_t, 4>;

TEST(Philox, Random123KnownAnswerZero) {
  EXPECT_EQ(philox4x32({0, 0, 0, 0}, {0, 0}),
            (Words{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}));
}

TEST(Philox, Random123KnownAnswerAllOnes) {
  EXPECT_EQ(
      philox4x32({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {0xffffffffu, 0xffffffffu}),
      (Words{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}));
}

TEST(Philox, Random123KnownAnswerPi) {
  EXPECT_EQ(
      philox4x32({0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, {0xa4093822u, 0x299f31d0u}),
      (Words{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}));
}

constexpr uint64_t kSeed = 20240607;
const uint64_t kStream = rng_stream(RngStream::kTest, 7);

TEST(RngUniform, InUnitIntervalWithMeanAndVarianceOfU01) {
  constexpr int kN = 400000;
  double sum = 0, sum_sq = 0;
  for (int i = 0; i < kN; ++i) {
    const double u = rng_uniform(kSeed, kStream, i);
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
    sum_sq += u * u;
  }
  const double mean = sum / kN;
  const double var = sum_sq / kN - mean * mean;
  // U(0,1): mean 1/2 (sd of the mean sqrt(1/12/N)), variance 1/12 (sd of the estimate
  // sqrt(1/180/N)); allow 5 standard deviations.
  EXPECT_NEAR(mean, 0.5, 5 * std::sqrt(1.0 / 12 / kN));
  EXPECT_NEAR(var, 1.0 / 12, 5 * std::sqrt(1.0 / 180 / kN));
}

// Pearson chi-square statistic of `counts` against equal expected counts.
double chi_square(const std::vector<int64_t>& counts, int64_t total) {
  const double expected = static_cast<double>(total) / counts.size();
  double chi2 = 0;
  for (int64_t c : counts) chi2 += (c - expected) * (c - expected) / expected;
  return chi2;
}

TEST(RngUniform, ChiSquareOnHundredBins) {
  constexpr int kBins = 100;
  constexpr int kN = 1000000;
  std::vector<int64_t> counts(kBins, 0);
  for (int i = 0; i < kN; ++i) ++counts[static_cast<int>(rng_uniform(kSeed, kStream, i) * kBins)];
  // 99 degrees of freedom: the 0.999 quantile is 148.23.
  EXPECT_LT(chi_square(counts, kN), 148.23);
}

TEST(RngUniform, LowBitsAreUniformToo) {
  // Bin by the 2^-40..2^-36 bits: a generator that only filled the top bits would fail this.
  constexpr int kBins = 16;
  constexpr int kN = 200000;
  std::vector<int64_t> counts(kBins, 0);
  for (int i = 0; i < kN; ++i) {
    const double u = rng_uniform(kSeed, kStream, i);
    ++counts[static_cast<int64_t>(std::ldexp(u, 40)) & (kBins - 1)];
  }
  // 15 degrees of freedom: the 0.999 quantile is 37.70.
  EXPECT_LT(chi_square(counts, kN), 37.70);
}

TEST(RngNormal, MeanStdAndOneSigmaMass) {
  constexpr int kN = 400000;
  double sum = 0, sum_sq = 0, sum_4 = 0;
  int64_t within_one = 0;
  for (int i = 0; i < kN; ++i) {
    const double z = rng_normal(kSeed, kStream, i);
    ASSERT_TRUE(std::isfinite(z));
    sum += z;
    sum_sq += z * z;
    sum_4 += z * z * z * z;
    within_one += std::fabs(z) < 1.0;
  }
  const double mean = sum / kN;
  const double var = sum_sq / kN - mean * mean;
  // N(0,1): sd of the mean 1/sqrt(N), of the variance sqrt(2/N), kurtosis 3 (sd sqrt(96/N)),
  // P(|z| < 1) = erf(1/sqrt 2) = 0.682689.
  EXPECT_NEAR(mean, 0.0, 5 / std::sqrt(kN));
  EXPECT_NEAR(var, 1.0, 5 * std::sqrt(2.0 / kN));
  EXPECT_NEAR(sum_4 / kN, 3.0, 5 * std::sqrt(96.0 / kN));
  const double p = std::erf(1 / std::sqrt(2.0));
  EXPECT_NEAR(static_cast<double>(within_one) / kN, p, 5 * std::sqrt(p * (1 - p) / kN));
}

TEST(RngBelow, StaysInRange) {
  for (uint64_t n : {uint64_t{1}, uint64_t{2}, uint64_t{3}, uint64_t{7}, uint64_t{1000},
                     (uint64_t{1} << 32) + 1, (uint64_t{1} << 63) + 1, UINT64_MAX}) {
    for (uint64_t i = 0; i < 2000; ++i) ASSERT_LT(rng_below(kSeed, kStream, i, n), n) << n;
  }
  for (uint64_t i = 0; i < 100; ++i) EXPECT_EQ(rng_below(kSeed, kStream, i, 1), 0u);
}

TEST(RngBelow, UniformOverSmallAndAwkwardRanges) {
  // 10 is small; 3 * 2^62 wastes a quarter of the 64-bit range and exposes modulo bias if the
  // rejection step is wrong (values below 2^62 would be drawn twice as often).
  constexpr int kN = 300000;
  std::vector<int64_t> counts(10, 0);
  for (int i = 0; i < kN; ++i) ++counts[rng_below(kSeed, kStream, i, 10)];
  // 9 degrees of freedom: 0.999 quantile 27.88.
  EXPECT_LT(chi_square(counts, kN), 27.88);

  const uint64_t n = uint64_t{3} << 62;
  std::vector<int64_t> thirds(3, 0);
  for (int i = 0; i < kN; ++i) ++thirds[rng_below(kSeed, kStream, i, n) / (uint64_t{1} << 62)];
  // 2 degrees of freedom: 0.999 quantile 13.82.
  EXPECT_LT(chi_square(thirds, kN), 13.82);
}

TEST(Rng, PureFunctionOfSeedStreamCounter) {
  for (uint64_t c : {uint64_t{0}, uint64_t{1}, uint64_t{123456789}, UINT64_MAX}) {
    EXPECT_EQ(rng_uniform(kSeed, kStream, c), rng_uniform(kSeed, kStream, c));
    EXPECT_EQ(rng_normal(kSeed, kStream, c), rng_normal(kSeed, kStream, c));
    EXPECT_EQ(rng_below(kSeed, kStream, c, 1000003), rng_below(kSeed, kStream, c, 1000003));
  }
  // Interleaving other draws changes nothing: there is no hidden state.
  const double first = rng_uniform(kSeed, kStream, 42);
  for (int i = 0; i < 100; ++i) rng_normal(kSeed + i, kStream, i);
  EXPECT_EQ(rng_uniform(kSeed, kStream, 42), first);
}

TEST(Rng, StreamsSeedsAndCountersDiffer) {
  constexpr int kN = 10000;
  const uint64_t other_stream = rng_stream(RngStream::kTest, 8);
  const uint64_t other_tag = rng_stream(RngStream::kPoisson, 7);
  int same_stream = 0, same_tag = 0, same_seed = 0, same_counter = 0;
  for (int i = 0; i < kN; ++i) {
    const double u = rng_uniform(kSeed, kStream, i);
    same_stream += u == rng_uniform(kSeed, other_stream, i);
    same_tag += u == rng_uniform(kSeed, other_tag, i);
    same_seed += u == rng_uniform(kSeed + 1, kStream, i);
    same_counter += u == rng_uniform(kSeed, kStream, i + 1);
  }
  // 53-bit values: a single coincidence among 10^4 pairs has probability ~1e-12.
  EXPECT_EQ(same_stream, 0);
  EXPECT_EQ(same_tag, 0);
  EXPECT_EQ(same_seed, 0);
  EXPECT_EQ(same_counter, 0);

  // Streams are also statistically unrelated: correlation of paired draws ~ N(0, 1/N).
  double sxy = 0, sx = 0, sy = 0, sxx = 0, syy = 0;
  for (int i = 0; i < kN; ++i) {
    const double x = rng_uniform(kSeed, kStream, i), y = rng_uniform(kSeed, other_stream, i);
    sx += x, sy += y, sxy += x * y, sxx += x * x, syy += y * y;
  }
  const double cov = sxy / kN - sx / kN * sy / kN;
  const double corr =
      cov / std::sqrt((sxx / kN - sx * sx / kN / kN) * (syy / kN - sy * sy / kN / kN));
  EXPECT_LT(std::fabs(corr), 5 / std::sqrt(kN));
}

TEST(Rng, StreamTagKeepsLow48Bits) {
  EXPECT_EQ(rng_stream(RngStream::kPoisson, 5), (uint64_t{2} << 48) | 5);
  EXPECT_EQ(rng_stream(RngStream::kTest, (uint64_t{1} << 48) | 9), (uint64_t{15} << 48) | 9);
}

}  // namespace
}  // namespace umbra
