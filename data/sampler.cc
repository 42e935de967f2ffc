#include "data/sampler.h"

#include <algorithm>
#include <cmath>

#include "core/check.h"
#include "core/rng.h"

namespace umbra {

std::pair<int64_t, int64_t> rank_slice(int64_t n, int rank, int world) {
  UMBRA_ASSERT(world >= 1 && rank >= 0 && rank < world, "rank ", rank, " of world ", world);
  const int64_t base = n / world, extra = n % world;
  const int64_t begin = rank * base + std::min<int64_t>(rank, extra);
  return {begin, begin + base + (rank < extra ? 1 : 0)};
}

std::vector<std::vector<int64_t>> physical_batches(const std::vector<int64_t>& positions,
                                                   int64_t max_physical_batch) {
  if (positions.empty() || max_physical_batch <= 0) return {positions};
  std::vector<std::vector<int64_t>> out;
  for (size_t i = 0; i < positions.size(); i += static_cast<size_t>(max_physical_batch)) {
    const size_t end = std::min(positions.size(), i + static_cast<size_t>(max_physical_batch));
    out.emplace_back(positions.begin() + static_cast<std::ptrdiff_t>(i),
                     positions.begin() + static_cast<std::ptrdiff_t>(end));
  }
  return out;
}

Sampler::Sampler(int64_t num_samples, uint64_t seed) : num_samples_(num_samples), seed_(seed) {
  UMBRA_CHECK(num_samples >= 1, "sampler: the split holds no samples");
}

std::vector<int64_t> Sampler::rank_batch(int64_t epoch, int64_t step, int rank, int world) const {
  const std::vector<int64_t> global = global_batch(epoch, step);
  const auto [begin, end] = rank_slice(static_cast<int64_t>(global.size()), rank, world);
  return {global.begin() + begin, global.begin() + end};
}

int64_t Sampler::global_step(int64_t epoch, int64_t step) const {
  return epoch * steps_per_epoch() + step;
}

SamplerState Sampler::advance(SamplerState s, int64_t steps) const {
  const int64_t spe = steps_per_epoch();
  const int64_t g = s.epoch * spe + s.step + steps;
  s.epoch = g / spe;
  s.step = g % spe;
  return s;
}

void Sampler::check_position(int64_t epoch, int64_t step) const {
  UMBRA_CHECK(epoch >= 0 && step >= 0 && step < steps_per_epoch(), "sampler: step ", step,
              " of epoch ", epoch, " is outside [0, ", steps_per_epoch(), ")");
}

EpochSampler::EpochSampler(int64_t num_samples, int64_t batch_size, uint64_t seed)
    : Sampler(num_samples, seed), batch_size_(batch_size) {
  UMBRA_CHECK(batch_size >= 1 && batch_size <= num_samples, "batch_size: must be in [1, ",
              num_samples, "] (the split's size), got ", batch_size);
}

std::shared_ptr<const std::vector<int64_t>> EpochSampler::permutation(int64_t epoch) const {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& [e, perm] : cache_)
      if (e == epoch) return perm;
  }
  auto perm = std::make_shared<std::vector<int64_t>>(static_cast<size_t>(num_samples()));
  for (int64_t i = 0; i < num_samples(); ++i) (*perm)[i] = i;
  const uint64_t stream = rng_stream(RngStream::kPermutation, static_cast<uint64_t>(epoch));
  for (int64_t i = num_samples() - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(
        rng_below(seed(), stream, static_cast<uint64_t>(i), static_cast<uint64_t>(i + 1)));
    std::swap((*perm)[i], (*perm)[j]);
  }
  std::lock_guard<std::mutex> lock(mutex_);
  if (cache_.size() >= 2) cache_.erase(cache_.begin());
  cache_.emplace_back(epoch, perm);
  return perm;
}

std::vector<int64_t> EpochSampler::global_batch(int64_t epoch, int64_t step) const {
  check_position(epoch, step);
  const auto perm = permutation(epoch);
  const auto begin = perm->begin() + step * batch_size_;
  return {begin, begin + batch_size_};
}

PoissonSampler::PoissonSampler(int64_t num_samples, double sample_rate, uint64_t seed)
    : Sampler(num_samples, seed), sample_rate_(sample_rate) {
  UMBRA_CHECK(sample_rate > 0.0 && sample_rate <= 1.0, "sample_rate: must be in (0, 1], got ",
              sample_rate);
  steps_per_epoch_ = std::max<int64_t>(1, std::llround(1.0 / sample_rate));
}

std::vector<int64_t> PoissonSampler::global_batch(int64_t epoch, int64_t step) const {
  check_position(epoch, step);
  const uint64_t stream =
      rng_stream(RngStream::kPoisson, static_cast<uint64_t>(global_step(epoch, step)));
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(expected_batch_size() * 1.2) + 16);
  for (int64_t i = 0; i < num_samples(); ++i)
    if (rng_uniform(seed(), stream, static_cast<uint64_t>(i)) < sample_rate_) out.push_back(i);
  return out;
}

}  // namespace umbra
