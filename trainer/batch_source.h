// Where a stage's micro-batches come from, behind one interface:
//   ImageSource  — the prefetching HDF5-backed loader (data/loader.h), stage 1;
//   LatentSource — encoded latents held in memory, stage 2 (gathering rows is cheap, so it
//                  runs on the calling thread).
// Both follow the same world-size-independent samplers, so a checkpoint's SamplerState resumes
// either on any number of ranks.
#pragma once

#include <memory>
#include <optional>

#include "data/loader.h"

namespace umbra {

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  // The next micro-batch (Batch::last_of_step() marks the end of a step); nullopt when done.
  virtual std::optional<Batch> next() = 0;
  // State of the first step not fully returned yet (what a checkpoint stores).
  virtual SamplerState state() const = 0;
  virtual double stall_seconds() const = 0;
};

class ImageSource : public BatchSource {
 public:
  ImageSource(std::shared_ptr<const SplitData> split, std::shared_ptr<const Sampler> sampler,
              const DataOptions& options, const LoaderSpec& spec)
      : loader_(std::move(split), std::move(sampler), options, spec) {}
  std::optional<Batch> next() override { return loader_.next(); }
  SamplerState state() const override { return loader_.state(); }
  double stall_seconds() const override { return loader_.stall_seconds(); }

 private:
  Loader loader_;
};

// Latents [N, ...] (float), labels [N], ids [N] in the split's position order.
struct LatentSet {
  torch::Tensor latents, labels, ids;
  int64_t count() const { return latents.size(0); }
};

class LatentSource : public BatchSource {
 public:
  LatentSource(std::shared_ptr<const LatentSet> set, std::shared_ptr<const Sampler> sampler,
               const LoaderSpec& spec);
  std::optional<Batch> next() override;
  SamplerState state() const override { return state_; }
  double stall_seconds() const override { return 0.0; }

 private:
  std::shared_ptr<const LatentSet> set_;
  std::shared_ptr<const Sampler> sampler_;
  LoaderSpec spec_;
  SamplerState state_;
  int64_t steps_done_ = 0;
  std::vector<std::vector<int64_t>> pending_;  // micro-batches left of the current step
  int64_t micro_index_ = 0, micro_count_ = 0;
};

}  // namespace umbra
