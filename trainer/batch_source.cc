#include "trainer/batch_source.h"

namespace umbra {

LatentSource::LatentSource(std::shared_ptr<const LatentSet> set,
                           std::shared_ptr<const Sampler> sampler, const LoaderSpec& spec)
    : set_(std::move(set)), sampler_(std::move(sampler)), spec_(spec), state_(spec.start) {}

std::optional<Batch> LatentSource::next() {
  if (pending_.empty()) {
    if (spec_.num_steps >= 0 && steps_done_ >= spec_.num_steps) return std::nullopt;
    const auto positions = sampler_->rank_batch(state_.epoch, state_.step, spec_.rank, spec_.world);
    pending_ = physical_batches(positions, spec_.max_physical_batch);
    micro_index_ = 0;
    micro_count_ = static_cast<int64_t>(pending_.size());
  }
  const std::vector<int64_t> positions = pending_.front();
  pending_.erase(pending_.begin());
  const auto index = torch::tensor(positions, torch::kInt64);
  Batch b;
  b.images = set_->latents.index_select(0, index);
  b.labels = set_->labels.index_select(0, index);
  b.ids = set_->ids.index_select(0, index);
  b.epoch = state_.epoch;
  b.step = state_.step;
  b.global_step = sampler_->global_step(state_.epoch, state_.step);
  b.micro_index = micro_index_++;
  b.micro_count = micro_count_;
  if (pending_.empty()) {
    state_ = sampler_->advance(state_);
    ++steps_done_;
  }
  return b;
}

}  // namespace umbra
