#include "comm/gradient_sync.h"

#include <chrono>
#include <sstream>

#include "core/check.h"
#include "core/sha256.h"

namespace umbra {

GradientSyncOptions GradientSyncOptions::from(const CommOptions& options) {
  GradientSyncOptions out;
  out.bucket_bytes = std::max<int64_t>(1, static_cast<int64_t>(options.bucket_mb * (1 << 20)));
  out.first_bucket_bytes =
      std::max<int64_t>(1, static_cast<int64_t>(options.first_bucket_mb * (1 << 20)));
  return out;
}

std::vector<GradientBucket> plan_gradient_buckets(const std::vector<torch::Tensor>& params,
                                                  int64_t first_bucket_bytes,
                                                  int64_t bucket_bytes) {
  std::vector<GradientBucket> buckets;
  int64_t bytes = 0;
  for (size_t k = params.size(); k-- > 0;) {
    const torch::Tensor& p = params[k];
    const int64_t limit = buckets.size() == 1 ? first_bucket_bytes : bucket_bytes;
    const int64_t p_bytes = p.numel() * p.element_size();
    const bool fits = !buckets.empty() && buckets.back().dtype == p.scalar_type() &&
                      buckets.back().device == p.device() &&
                      (buckets.back().params.empty() || bytes + p_bytes <= limit);
    if (!fits) {
      buckets.push_back(GradientBucket{p.scalar_type(), p.device(), {}, {}, 0});
      bytes = 0;
    }
    GradientBucket& b = buckets.back();
    b.params.push_back(k);
    b.offsets.push_back(b.numel);
    b.numel += p.numel();
    bytes += p_bytes;
  }
  return buckets;
}

GradientSync::GradientSync(Communicator& comm,
                           const torch::OrderedDict<std::string, torch::Tensor>& parameters,
                           const GradientSyncOptions& options)
    : GradientSync(
          comm,
          [&] {
            std::vector<std::pair<std::string, torch::Tensor>> named;
            for (const auto& item : parameters) named.emplace_back(item.key(), item.value());
            return named;
          }(),
          options) {}

GradientSync::GradientSync(
    Communicator& comm, const std::vector<std::pair<std::string, torch::Tensor>>& named_parameters,
    const GradientSyncOptions& options)
    : comm_(comm) {
  UMBRA_CHECK(options.bucket_bytes > 0 && options.first_bucket_bytes > 0,
              "comm.bucket_mb/first_bucket_mb: expected positive sizes, got ", options.bucket_bytes,
              " and ", options.first_bucket_bytes, " bytes");
  for (const auto& [name, p] : named_parameters) {
    UMBRA_CHECK(p.defined(), "gradient sync: parameter '", name, "' is undefined");
    if (!p.requires_grad()) continue;
    names_.push_back(name);
    params_.push_back(p);
  }
  buckets_ = plan_gradient_buckets(params_, options.first_bucket_bytes, options.bucket_bytes);

  // Every rank must cut the same buckets, or the all-reduces would pair unrelated bytes.
  std::ostringstream layout;
  for (const GradientBucket& b : buckets_) {
    layout << b.dtype << ":" << b.numel << "[";
    for (size_t i : b.params) layout << names_[i] << "=" << params_[i].sizes() << ",";
    layout << "]\n";
  }
  const std::string text = layout.str();
  comm_.check_same_on_all_ranks(
      "gradient bucket layout (SHA-256 of parameter names, shapes and dtypes; "
      "broadcast_parameters reports the first differing parameter)",
      sha256_hex(text.data(), text.size()));

  slot_of_.resize(params_.size());
  for (size_t b = 0; b < buckets_.size(); ++b) {
    const GradientBucket& bucket = buckets_[b];
    buffers_.push_back(torch::zeros(
        {bucket.numel}, torch::TensorOptions().dtype(bucket.dtype).device(bucket.device)));
    for (size_t j = 0; j < bucket.params.size(); ++j) slot_of_[bucket.params[j]] = {b, j};
  }
  work_.resize(buckets_.size());
  ready_.assign(params_.size(), false);
  missing_.resize(buckets_.size());
  reset();

  if (options.use_hooks) {
    for (size_t i = 0; i < params_.size(); ++i) {
      hook_handles_.push_back(
          params_[i].register_hook([this, i](torch::Tensor gradient) { on_hook(i, gradient); }));
    }
  }
}

GradientSync::~GradientSync() {
  for (size_t i = 0; i < hook_handles_.size(); ++i) params_[i].remove_hook(hook_handles_[i]);
}

void GradientSync::set_enabled(bool enabled) {
  std::lock_guard<std::mutex> lock(mutex_);
  enabled_ = enabled;
}

size_t GradientSync::index_of(const std::string& name) const {
  for (size_t i = 0; i < names_.size(); ++i) {
    if (names_[i] == name) return i;
  }
  UMBRA_FAIL("gradient sync: no synchronised parameter named '", name, "'");
}

void GradientSync::on_hook(size_t index, const torch::Tensor& gradient) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!enabled_) return;
  // The hook runs before accumulation: .grad is about to become gradient + .grad.
  fill_slot(index, gradient, params_[index].grad());
}

void GradientSync::mark_ready(size_t index, const torch::Tensor& gradient) {
  UMBRA_CHECK(index < params_.size(), "gradient sync: parameter index ", index, " out of range (",
              params_.size(), " synchronised parameters)");
  std::lock_guard<std::mutex> lock(mutex_);
  fill_slot(index, gradient, torch::Tensor());
}

void GradientSync::fill_slot(size_t index, const torch::Tensor& gradient,
                             const torch::Tensor& existing) {
  UMBRA_CHECK(!ready_[index], "gradient sync: parameter '", names_[index],
              "' received a second gradient before finish(); for gradient accumulation disable "
              "the sync (set_enabled(false)) for all micro-batches but the last");
  const torch::Tensor& p = params_[index];
  UMBRA_CHECK(gradient.sizes() == p.sizes(), "gradient sync: gradient of '", names_[index],
              "' has shape ", gradient.sizes(), ", the parameter ", p.sizes());
  const auto [b, j] = slot_of_[index];
  torch::NoGradGuard no_grad;
  torch::Tensor slot = buffers_[b].narrow(0, buckets_[b].offsets[j], p.numel()).view(p.sizes());
  if (existing.defined()) {
    torch::add_out(slot, gradient, existing);
  } else {
    slot.copy_(gradient);
  }
  ready_[index] = true;
  if (--missing_[b] == 0) issue_ready_buckets();
}

void GradientSync::issue_ready_buckets() {
  while (next_issue_ < buckets_.size() && missing_[next_issue_] == 0) issue(next_issue_++);
}

void GradientSync::issue(size_t b) {
  work_[b] = comm_.all_reduce_async(
      buffers_[b], ReduceOp::kSum,
      "grad bucket " + std::to_string(b + 1) + "/" + std::to_string(buckets_.size()));
}

void GradientSync::finish(double normaliser) {
  UMBRA_CHECK(normaliser > 0, "gradient sync: the normaliser must be positive, got ", normaliser);
  std::lock_guard<std::mutex> lock(mutex_);
  for (size_t b = next_issue_; b < buckets_.size(); ++b) {
    if (missing_[b] == 0) continue;
    const GradientBucket& bucket = buckets_[b];
    for (size_t j = 0; j < bucket.params.size(); ++j) {
      const size_t i = bucket.params[j];
      if (ready_[i]) continue;
      buffers_[b].narrow(0, bucket.offsets[j], params_[i].numel()).zero_();
    }
    missing_[b] = 0;
  }
  issue_ready_buckets();

  torch::NoGradGuard no_grad;
  double waited = 0;
  try {
    for (size_t b = 0; b < buckets_.size(); ++b) {
      const auto start = std::chrono::steady_clock::now();
      work_[b]->wait();
      waited += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      // Unpacking bucket b overlaps the all-reduce of bucket b + 1 on the communication thread.
      const GradientBucket& bucket = buckets_[b];
      const torch::Tensor divisor = torch::scalar_tensor(normaliser, torch::kFloat64);
      for (size_t j = 0; j < bucket.params.size(); ++j) {
        torch::Tensor& p = params_[bucket.params[j]];
        const torch::Tensor reduced =
            buffers_[b].narrow(0, bucket.offsets[j], p.numel()).view(p.sizes());
        torch::Tensor& grad = p.mutable_grad();
        if (!grad.defined()) grad = torch::empty_like(p, torch::MemoryFormat::Contiguous);
        torch::div_out(grad, reduced, divisor);
      }
    }
  } catch (...) {
    reset();
    throw;
  }
  last_wait_s_ = waited;
  reset();
}

void GradientSync::reset() {
  std::fill(ready_.begin(), ready_.end(), false);
  for (size_t b = 0; b < buckets_.size(); ++b) {
    missing_[b] = buckets_[b].params.size();
    work_[b].reset();
  }
  next_issue_ = 0;
}

}  // namespace umbra
