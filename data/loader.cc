#include "data/loader.h"

#include <chrono>

#include "core/check.h"

namespace umbra {

Loader::Loader(std::shared_ptr<const SplitData> split, std::shared_ptr<const Sampler> sampler,
               const DataOptions& options, const LoaderSpec& spec)
    : split_(std::move(split)), sampler_(std::move(sampler)), options_(options), spec_(spec) {
  UMBRA_ASSERT(split_ && sampler_, "Loader needs a split and a sampler");
  UMBRA_CHECK(sampler_->num_samples() == split_->count(), "loader: the sampler covers ",
              sampler_->num_samples(), " samples but split '", split_->split, "' of ", split_->dir,
              " holds ", split_->count());
  UMBRA_CHECK(spec_.start.seed == sampler_->seed(), "loader: start state seed ", spec_.start.seed,
              " differs from the sampler's seed ", sampler_->seed());
  UMBRA_CHECK(spec_.start.epoch >= 0 && spec_.start.step >= 0 &&
                  spec_.start.step < sampler_->steps_per_epoch(),
              "loader: start step ", spec_.start.step, " of epoch ", spec_.start.epoch,
              " is outside [0, ", sampler_->steps_per_epoch(), ")");
  UMBRA_CHECK(spec_.world >= 1 && spec_.rank >= 0 && spec_.rank < spec_.world, "loader: rank ",
              spec_.rank, " is outside a world of ", spec_.world);
  UMBRA_CHECK(options_.prefetch >= 1, "data.prefetch: must be at least 1, got ", options_.prefetch);
  UMBRA_CHECK(options_.workers >= 1, "data.workers: must be at least 1, got ", options_.workers);
  decode_.pad_to_32 = options_.pad_to_32;
  decode_.hflip = options_.hflip;
  decode_.seed = sampler_->seed();
  decoded_size(split_->meta, decode_);  // fails now rather than in a worker
  for (int64_t i = 0; i < options_.workers; ++i) threads_.emplace_back([this] { worker_loop(); });
}

Loader::~Loader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

std::shared_ptr<const SplitData> Loader::load(const DataOptions& options,
                                              const std::string& split) {
  UMBRA_CHECK(!options.path.empty(), "data.path: required; set it to a dataset directory ",
              "written by `umbra pack` (e.g. data.path=data/fashion-mnist)");
  return std::make_shared<const SplitData>(load_split(options.path, split));
}

Loader::StepItem Loader::make_step(int64_t seq) const {
  StepItem item;
  try {
    const SamplerState s = sampler_->advance(spec_.start, seq);
    const int64_t global_step = sampler_->global_step(s.epoch, s.step);
    const auto parts = physical_batches(
        sampler_->rank_batch(s.epoch, s.step, spec_.rank, spec_.world), spec_.max_physical_batch);
    for (size_t i = 0; i < parts.size(); ++i) {
      Batch b = decode_batch(*split_, parts[i], global_step, decode_);
      b.epoch = s.epoch;
      b.step = s.step;
      b.global_step = global_step;
      b.micro_index = static_cast<int64_t>(i);
      b.micro_count = static_cast<int64_t>(parts.size());
      item.micro.push_back(std::move(b));
    }
  } catch (...) {
    item.micro.clear();
    item.error = std::current_exception();
  }
  return item;
}

void Loader::worker_loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    cv_.wait(lock, [&] {
      return stop_ || (next_claim_ < consumed_ + options_.prefetch &&
                       (spec_.num_steps < 0 || next_claim_ < spec_.num_steps));
    });
    if (stop_) return;
    const int64_t seq = next_claim_++;
    lock.unlock();
    StepItem item = make_step(seq);
    lock.lock();
    ready_.emplace(seq, std::move(item));
    cv_.notify_all();
  }
}

std::optional<Batch> Loader::next() {
  if (current_.empty()) {
    if (spec_.num_steps >= 0 && consumed_ >= spec_.num_steps) return std::nullopt;
    StepItem item;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      auto it = ready_.find(consumed_);
      if (it == ready_.end()) {
        const auto t0 = std::chrono::steady_clock::now();
        cv_.wait(lock, [&] { return ready_.count(consumed_) != 0; });
        last_wait_seconds_ =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        stall_seconds_ += last_wait_seconds_;
        it = ready_.find(consumed_);
      } else {
        last_wait_seconds_ = 0;
      }
      item = std::move(it->second);
      ready_.erase(it);
      // A failed step is not consumed: every later next() rethrows the same error.
      if (item.error) {
        ready_.emplace(consumed_, StepItem{{}, item.error});
      } else {
        ++consumed_;
      }
    }
    cv_.notify_all();
    if (item.error) std::rethrow_exception(item.error);
    for (auto& b : item.micro) current_.push_back(std::move(b));
  }
  Batch b = std::move(current_.front());
  current_.pop_front();
  return b;
}

SamplerState Loader::state() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return sampler_->advance(spec_.start, consumed_ - (current_.empty() ? 0 : 1));
}

}  // namespace umbra
