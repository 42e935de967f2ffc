#include "trainer/dp_step.h"

#include "core/check.h"

namespace umbra {
namespace {

ClippingOptions clipping_options(const PrivacyOptions& options, int64_t noise_multiplicity) {
  ClippingOptions c;
  c.max_grad_norm = options.max_grad_norm;
  c.noise_multiplicity = noise_multiplicity;
  c.per_layer = options.per_layer_clipping();
  return c;
}

// The clipper needs the model in DP mode before it is constructed (it hooks the primitives).
torch::nn::Module& in_dp_mode(torch::nn::Module& model) {
  check_dp_compatible(model);
  set_dp_mode(model, true);
  return model;
}

}  // namespace

DpGradient::DpGradient(torch::nn::Module& model,
                       std::vector<std::pair<std::string, torch::Tensor>> params,
                       const PrivacyOptions& options, int64_t noise_multiplicity,
                       double noise_multiplier, double expected_batch_size, uint64_t noise_seed,
                       int rank)
    : model_(model),
      params_(std::move(params)),
      clipper_(in_dp_mode(model), clipping_options(options, noise_multiplicity)),
      noise_(noise_multiplier, clipper_.sensitivity(), options.secure_mode, noise_seed),
      expected_batch_size_(expected_batch_size),
      rank_(rank) {
  UMBRA_CHECK(expected_batch_size > 0, "privacy.expected_batch_size: expected > 0, got ",
              expected_batch_size);
}

DpGradient::~DpGradient() { set_dp_mode(model_, false); }

void DpGradient::begin_step() {
  torch::NoGradGuard no_grad;
  for (auto& p : params_) {
    if (p.second.grad().defined()) {
      p.second.mutable_grad().zero_();
    } else {
      p.second.mutable_grad() = torch::zeros_like(p.second);
    }
  }
  stats_ = {};
}

void DpGradient::accumulate(const torch::Tensor& losses, int64_t num_samples) {
  if (num_samples == 0) return;
  UMBRA_ASSERT(losses.dim() == 1 && losses.size(0) == num_samples,
               "expected one loss per sample, got ", losses.sizes(), " for ", num_samples);
  losses.sum().backward();
  const ClipStats s = clipper_.clip_and_accumulate(num_samples);
  stats_.samples += s.num_samples;
  stats_.clipped += s.num_clipped;
}

DpStepStats DpGradient::finish(GradientSync& sync, int64_t step) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> grads;
  grads.reserve(params_.size());
  for (auto& p : params_) grads.push_back(p.second.grad());
  noise_.add(grads, step, rank_);  // rank 0 only: one draw for the whole world
  // Last layers first: buckets are laid out in reverse registration order.
  for (size_t i = params_.size(); i-- > 0;) {
    sync.mark_ready(sync.index_of(params_[i].first), grads[i]);
  }
  sync.finish(expected_batch_size_);
  return stats_;
}

}  // namespace umbra
