// Samplers that do not depend on the number of ranks (DESIGN.md §4).
//
// A sampler maps (epoch, step) to the global batch: positions 0..N-1 into a split (SplitData
// order). It holds no cursor: what a checkpoint needs to resume exactly is SamplerState =
// (seed, epoch, step), and any rank of any world size computes the same global batch from it.
// Rank r of W takes a contiguous slice of the global batch (rank_slice: sizes differ by at most
// one, concatenating the slices in rank order gives the global batch).
//
//  - EpochSampler: a permutation of 0..N-1 per epoch (Fisher-Yates, swap partner of position i
//    drawn with rng_below(seed, rng_stream(kPermutation, epoch), i, i + 1)); global batch b is
//    permutation positions [b*B, (b+1)*B). The last partial batch is dropped, so
//    steps_per_epoch = floor(N / B) on every rank.
//  - PoissonSampler (DP-SGD): position i is in global step s iff
//    rng_uniform(seed, rng_stream(kPoisson, s), i) < q, with s = epoch * steps_per_epoch + step
//    and steps_per_epoch = max(1, round(1 / q)). The batch is sorted, its size varies, empty
//    batches happen; normalise by expected_batch_size() = q * N.
//
// Thread-safety: all const methods may be called concurrently (the permutation cache is locked).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace umbra {

struct SamplerState {
  uint64_t seed = 0;
  int64_t epoch = 0;
  int64_t step = 0;  // within the epoch, 0..steps_per_epoch-1
};

// [begin, end) of rank `rank`'s share of n items split contiguously over `world` ranks.
std::pair<int64_t, int64_t> rank_slice(int64_t n, int rank, int world);

// Cuts a rank's part of a logical batch into physical micro-batches of at most
// max_physical_batch (<= 0: one micro-batch). An empty part gives one empty micro-batch, so the
// step still happens (DP-SGD adds noise to an empty sum).
std::vector<std::vector<int64_t>> physical_batches(const std::vector<int64_t>& positions,
                                                   int64_t max_physical_batch);

class Sampler {
 public:
  Sampler(int64_t num_samples, uint64_t seed);
  virtual ~Sampler() = default;

  int64_t num_samples() const { return num_samples_; }
  uint64_t seed() const { return seed_; }
  virtual int64_t steps_per_epoch() const = 0;
  // Mean size of a global batch (B for EpochSampler, q*N for PoissonSampler).
  virtual double expected_batch_size() const = 0;
  // Positions of the global batch at (epoch, step).
  virtual std::vector<int64_t> global_batch(int64_t epoch, int64_t step) const = 0;
  // Rank `rank` of `world`: its contiguous slice of global_batch(epoch, step).
  std::vector<int64_t> rank_batch(int64_t epoch, int64_t step, int rank, int world) const;

  // epoch * steps_per_epoch + step: the counter used for per-step random streams.
  int64_t global_step(int64_t epoch, int64_t step) const;
  // The state `steps` steps after `s` (crossing epochs).
  SamplerState advance(SamplerState s, int64_t steps = 1) const;

 protected:
  void check_position(int64_t epoch, int64_t step) const;

 private:
  int64_t num_samples_;
  uint64_t seed_;
};

class EpochSampler : public Sampler {
 public:
  // Throws when batch_size is not in [1, num_samples].
  EpochSampler(int64_t num_samples, int64_t batch_size, uint64_t seed);
  int64_t batch_size() const { return batch_size_; }
  int64_t steps_per_epoch() const override { return num_samples() / batch_size_; }
  double expected_batch_size() const override { return static_cast<double>(batch_size_); }
  std::vector<int64_t> global_batch(int64_t epoch, int64_t step) const override;
  // The whole permutation of an epoch (cached for the two most recent epochs).
  std::shared_ptr<const std::vector<int64_t>> permutation(int64_t epoch) const;

 private:
  int64_t batch_size_;
  mutable std::mutex mutex_;
  mutable std::vector<std::pair<int64_t, std::shared_ptr<const std::vector<int64_t>>>> cache_;
};

class PoissonSampler : public Sampler {
 public:
  // Throws when sample_rate is not in (0, 1].
  PoissonSampler(int64_t num_samples, double sample_rate, uint64_t seed);
  double sample_rate() const { return sample_rate_; }
  int64_t steps_per_epoch() const override { return steps_per_epoch_; }
  double expected_batch_size() const override {
    return sample_rate_ * static_cast<double>(num_samples());
  }
  std::vector<int64_t> global_batch(int64_t epoch, int64_t step) const override;

 private:
  double sample_rate_;
  int64_t steps_per_epoch_;
};

}  // namespace umbra
