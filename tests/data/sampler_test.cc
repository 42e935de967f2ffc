// Samplers: world-size independence (1, 2, 3 ranks see the 1-rank global batch), the documented
// permutation and inclusion rules, Poisson statistics against the binomial law, and restore.
#include "data/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/rng.h"
#include "data_test_util.h"

namespace umbra {
namespace {

using namespace test_util;

// Concatenating the ranks' slices in rank order must give the global batch, with slice sizes
// differing by at most one.
void expect_world_independent(const Sampler& s, int64_t epochs) {
  for (int world : {1, 2, 3})
    for (int64_t e = 0; e < epochs; ++e)
      for (int64_t step = 0; step < s.steps_per_epoch(); ++step) {
        const std::vector<int64_t> global = s.global_batch(e, step);
        std::vector<int64_t> joined;
        size_t smallest = SIZE_MAX, largest = 0;
        for (int r = 0; r < world; ++r) {
          const std::vector<int64_t> part = s.rank_batch(e, step, r, world);
          smallest = std::min(smallest, part.size());
          largest = std::max(largest, part.size());
          joined.insert(joined.end(), part.begin(), part.end());
        }
        ASSERT_EQ(joined, global) << "world " << world << " epoch " << e << " step " << step;
        ASSERT_LE(largest - smallest, 1u);
      }
}

TEST(EpochSampler, IsTheDocumentedFisherYatesPermutation) {
  const int64_t n = 1003, b = 64;
  const EpochSampler s(n, b, 42);
  EXPECT_EQ(s.steps_per_epoch(), 15);  // floor(1003 / 64), last partial batch dropped
  for (int64_t epoch : {0, 1, 7}) {
    std::vector<int64_t> ref(n);
    std::iota(ref.begin(), ref.end(), 0);
    for (int64_t i = n - 1; i > 0; --i)
      std::swap(ref[i], ref[rng_below(42, rng_stream(RngStream::kPermutation, epoch), i, i + 1)]);
    std::vector<int64_t> got;
    for (int64_t step = 0; step < s.steps_per_epoch(); ++step) {
      const auto batch = s.global_batch(epoch, step);
      ASSERT_EQ(static_cast<int64_t>(batch.size()), b);
      got.insert(got.end(), batch.begin(), batch.end());
    }
    EXPECT_TRUE(std::equal(got.begin(), got.end(), ref.begin()));
    std::vector<int64_t> sorted = *s.permutation(epoch);
    std::sort(sorted.begin(), sorted.end());
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(sorted[i], i);
  }
  EXPECT_NE(*s.permutation(0), *s.permutation(1));
  EXPECT_NE(*s.permutation(0), *EpochSampler(n, b, 43).permutation(0));
}

TEST(EpochSampler, WorldSizeIndependent) {
  expect_world_independent(EpochSampler(1003, 64, 7), 3);
  expect_world_independent(EpochSampler(100, 7, 1), 2);  // batches not divisible by 2 or 3
  expect_world_independent(EpochSampler(10, 1, 1), 2);   // one sample: ranks 1, 2 get none
}

TEST(PoissonSampler, WorldSizeIndependentAndDocumentedRule) {
  const PoissonSampler s(997, 0.07, 5);
  EXPECT_EQ(s.steps_per_epoch(), 14);  // round(1 / 0.07)
  expect_world_independent(s, 3);
  for (int64_t g : {0, 15, 40}) {
    const int64_t epoch = g / 14, step = g % 14;
    std::vector<int64_t> ref;
    for (int64_t i = 0; i < 997; ++i)
      if (rng_uniform(5, rng_stream(RngStream::kPoisson, g), i) < 0.07) ref.push_back(i);
    EXPECT_EQ(s.global_batch(epoch, step), ref);
  }
}

// Inclusion of each sample is Bernoulli(q) independently per step: per-sample counts over T
// steps are Binomial(T, q), batch sizes Binomial(N, q). Fixed seed, 5-sigma bounds.
TEST(PoissonSampler, InclusionFrequencyAndBatchSizeMatchBinomial) {
  const int64_t n = 2000, steps = 2000;
  const double q = 0.05;
  const PoissonSampler s(n, q, 2024);
  std::vector<int64_t> per_sample(n, 0);
  std::vector<double> sizes;
  for (int64_t g = 0; g < steps; ++g) {
    const auto batch = s.global_batch(g / s.steps_per_epoch(), g % s.steps_per_epoch());
    ASSERT_TRUE(std::is_sorted(batch.begin(), batch.end()));
    for (int64_t i : batch) ++per_sample[i];
    sizes.push_back(static_cast<double>(batch.size()));
  }
  const double mean_count = steps * q, sd_count = std::sqrt(steps * q * (1 - q));
  for (int64_t i = 0; i < n; ++i)
    ASSERT_LT(std::abs(per_sample[i] - mean_count), 5 * sd_count) << "sample " << i;
  const double total = std::accumulate(per_sample.begin(), per_sample.end(), 0.0);
  EXPECT_LT(std::abs(total - n * steps * q), 5 * std::sqrt(n * steps * q * (1 - q)));

  const double expected_mean = q * n, expected_var = q * (1 - q) * n;
  EXPECT_DOUBLE_EQ(s.expected_batch_size(), expected_mean);
  const double mean = std::accumulate(sizes.begin(), sizes.end(), 0.0) / steps;
  double var = 0;
  for (double x : sizes) var += (x - mean) * (x - mean);
  var /= steps - 1;
  EXPECT_LT(std::abs(mean - expected_mean), 5 * std::sqrt(expected_var / steps));
  EXPECT_LT(std::abs(var - expected_var), 5 * expected_var * std::sqrt(2.0 / (steps - 1)));
  std::printf(
      "Poisson q=%.2f N=%lld over %lld steps: mean batch %.3f (qN %.1f), variance %.3f "
      "(q(1-q)N %.1f)\n",
      q, static_cast<long long>(n), static_cast<long long>(steps), mean, expected_mean, var,
      expected_var);
}

TEST(PoissonSampler, EmptyBatchesAndMicroBatches) {
  const PoissonSampler s(20, 0.01, 3);  // expected 0.2 per step: most batches are empty
  int empty = 0;
  for (int64_t step = 0; step < s.steps_per_epoch(); ++step) {
    const auto parts = physical_batches(s.rank_batch(0, step, 1, 2), 4);
    ASSERT_GE(parts.size(), 1u);
    if (parts.size() == 1 && parts[0].empty()) ++empty;
  }
  EXPECT_GT(empty, 50);
  std::vector<int64_t> v(11);
  std::iota(v.begin(), v.end(), 100);
  const auto parts = physical_batches(v, 4);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[2], (std::vector<int64_t>{108, 109, 110}));
  EXPECT_EQ(physical_batches(v, 0).size(), 1u);
  EXPECT_EQ(physical_batches({}, 4), (std::vector<std::vector<int64_t>>{{}}));
}

TEST(Sampler, RestoringStateReproducesBatches) {
  const EpochSampler e(500, 32, 11);
  const PoissonSampler p(500, 0.1, 11);
  for (const Sampler* s : {static_cast<const Sampler*>(&e), static_cast<const Sampler*>(&p)}) {
    // Run 40 steps from the start, remember state at step 23, then resume from it with a
    // freshly constructed sampler of the same seed.
    SamplerState st{11, 0, 0};
    std::vector<std::vector<int64_t>> first;
    SamplerState saved;
    for (int i = 0; i < 40; ++i) {
      if (i == 23) saved = st;
      first.push_back(s->rank_batch(st.epoch, st.step, 1, 3));
      st = s->advance(st);
    }
    std::unique_ptr<Sampler> fresh;
    if (s == &e)
      fresh = std::make_unique<EpochSampler>(500, 32, saved.seed);
    else
      fresh = std::make_unique<PoissonSampler>(500, 0.1, saved.seed);
    SamplerState r = saved;
    for (int i = 23; i < 40; ++i) {
      EXPECT_EQ(fresh->rank_batch(r.epoch, r.step, 1, 3), first[i]) << "step " << i;
      r = fresh->advance(r);
    }
    EXPECT_EQ(s->advance(SamplerState{11, 0, 0}, 40).epoch, r.epoch);
    EXPECT_EQ(s->advance(SamplerState{11, 0, 0}, 40).step, r.step);
  }
}

TEST(SamplerBadInput, Arguments) {
  expect_error([] { EpochSampler(10, 11, 0); }, {"batch_size", "[1, 10]", "got 11"});
  expect_error([] { PoissonSampler(10, 0.0, 0); }, {"sample_rate", "(0, 1]"});
  expect_error([] { EpochSampler(10, 2, 0).global_batch(0, 5); }, {"step 5", "[0, 5)"});
}

TEST(Sampler, RankSlice) {
  EXPECT_EQ(rank_slice(10, 0, 3), (std::pair<int64_t, int64_t>{0, 4}));
  EXPECT_EQ(rank_slice(10, 1, 3), (std::pair<int64_t, int64_t>{4, 7}));
  EXPECT_EQ(rank_slice(10, 2, 3), (std::pair<int64_t, int64_t>{7, 10}));
  EXPECT_EQ(rank_slice(0, 2, 3), (std::pair<int64_t, int64_t>{0, 0}));
}

}  // namespace
}  // namespace umbra
