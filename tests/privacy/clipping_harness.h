// Test harness shared by per_sample_test.cc and clipping_test.cc: runs the fast engine
// (DP-mode backward + PerSampleClipper) and the slow reference (one backward per sample) on the
// same model and rows, and compares norms, clip counts and clipped sums.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "privacy/clipping.h"
#include "privacy/dp_module.h"
#include "privacy/per_sample_reference.h"

namespace umbra::testing {

// Losses of rows [begin, end) of the fixed test batch (a fresh forward pass), one per row.
using RowLosses = std::function<torch::Tensor(int64_t begin, int64_t end)>;

inline void clear_grads(torch::nn::Module& model) {
  for (auto& p : model.parameters()) p.mutable_grad() = torch::Tensor();
}

// ‖a − b‖ / max(‖b‖, tiny).
inline double relative_error(const torch::Tensor& a, const torch::Tensor& b) {
  const torch::Tensor ad = a.to(torch::kDouble), bd = b.to(torch::kDouble);
  return (ad - bd).norm().item<double>() / std::max(bd.norm().item<double>(), 1e-30);
}

// Every trainable parameter's sum within `tolerance` of the reference, relative to its own norm
// or, for sums that are exactly zero in exact arithmetic (e.g. an attention key bias: softmax
// ignores a shift shared by all keys), to 1e-3 of the whole model's sum, whichever is larger.
inline void expect_same_sums(torch::nn::Module& model, const std::vector<torch::Tensor>& sums,
                             const std::vector<torch::Tensor>& reference, double tolerance) {
  double total = 0.0;
  for (const auto& r : reference) total += r.pow(2).sum().item<double>();
  const double floor = 1e-3 * std::sqrt(total);
  const auto params = model.named_parameters();
  for (size_t j = 0; j < params.size(); ++j) {
    if (!params[j].value().requires_grad()) continue;
    const torch::Tensor b = reference[j].to(torch::kDouble);
    const double err = (sums[j].to(torch::kDouble) - b).norm().item<double>() /
                       std::max(b.norm().item<double>(), floor);
    EXPECT_LE(err, tolerance) << "clipped sum of " << params[j].key();
  }
}

struct EngineRun {
  ClipStats stats;
  std::vector<torch::Tensor> grads;  // .grad of model.parameters() after the step (zeros if none)
  std::vector<LayerPlan> plan;
};

// One DP micro-batch of `samples` samples × k rows through the engine.
inline EngineRun run_engine(torch::nn::Module& model, const RowLosses& losses, int64_t samples,
                            int64_t k, ClippingOptions options) {
  options.noise_multiplicity = k;
  clear_grads(model);
  set_dp_mode(model, true);
  PerSampleClipper clipper(model, options);
  losses(0, samples * k).sum().backward();
  EngineRun run;
  run.stats = clipper.clip_and_accumulate(samples);
  run.plan = clipper.last_plan();
  set_dp_mode(model, false);
  for (auto& p : model.parameters()) {
    run.grads.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
  }
  clear_grads(model);
  return run;
}

inline ReferenceClipResult run_reference(torch::nn::Module& model, const RowLosses& losses,
                                         int64_t samples, int64_t k, ClippingOptions options) {
  options.noise_multiplicity = k;
  PerSampleClipper clipper(model, options);
  return reference_clipped_sum(model, clipper, samples,
                               [&](int64_t i) { return losses(i * k, (i + 1) * k); });
}

// Picks C = the median reference norm (so that about half the samples are clipped), runs both
// and checks norms, per-layer norms, the clip count and every parameter's clipped sum to
// `tolerance` relative error. Returns the engine's plan for further checks.
inline std::vector<LayerPlan> expect_matches_reference(torch::nn::Module& model,
                                                       const RowLosses& losses, int64_t samples,
                                                       int64_t k, ClippingOptions options,
                                                       double tolerance = 1e-4) {
  ClippingOptions probe = options;
  probe.max_grad_norm = std::numeric_limits<double>::infinity();
  probe.per_layer = false;
  probe.layer_max_grad_norms.clear();
  const ReferenceClipResult unclipped = run_reference(model, losses, samples, k, probe);
  // C halfway between the two middle norms: about half the samples clip, none sits at the edge.
  const torch::Tensor sorted = std::get<0>(unclipped.norms.sort());
  const int64_t mid = (samples - 1) / 2;
  options.max_grad_norm =
      0.5 * (sorted[mid].item<double>() + sorted[std::min(mid + 1, samples - 1)].item<double>());

  const ReferenceClipResult ref = run_reference(model, losses, samples, k, options);
  const EngineRun run = run_engine(model, losses, samples, k, options);

  EXPECT_LE(relative_error(run.stats.norms, ref.norms), tolerance)
      << "norms " << run.stats.norms << " vs reference " << ref.norms;
  const torch::Tensor per_sample_err =
      ((run.stats.norms - ref.norms).abs() / ref.norms.clamp_min(1e-30)).max();
  EXPECT_LE(per_sample_err.item<double>(), tolerance);
  EXPECT_LE(relative_error(run.stats.layer_norms, ref.layer_norms), tolerance);
  EXPECT_EQ(run.stats.num_clipped, ref.num_clipped)
      << "C = " << options.max_grad_norm << ", norms " << ref.norms;
  EXPECT_GT(ref.num_clipped, 0);
  if (!options.per_layer) {
    EXPECT_LT(ref.num_clipped, samples);
  }
  expect_same_sums(model, run.grads, ref.clipped_sum, tolerance);
  return run.plan;
}

}  // namespace umbra::testing
