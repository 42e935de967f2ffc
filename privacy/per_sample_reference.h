// The slow exact reference for per-sample clipping: one backward pass per sample. For tests and
// the benchmark only (DESIGN.md §5); its cost grows with B full backward passes.
//
// sample_loss(i) must run a fresh forward pass on sample i alone (its K rows) and return its
// loss (any shape; it is summed). The reference switches every DP primitive of `model` out of DP
// mode while it runs (so autograd forms the parameter gradients) and restores each one's mode
// afterwards; it never reads or writes the parameters' .grad (it uses torch::autograd::grad).
// The model must behave identically per sample and per batch (no dropout, no BatchNorm).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "privacy/clipping.h"

namespace umbra {

struct ReferenceClipResult {
  int64_t num_clipped = 0;
  torch::Tensor norms;        // [B] float64, ‖g_i‖
  torch::Tensor layer_norms;  // [B, L] float64, PerSampleClipper::layer_names() order
  // Σ_i c_i g_i, one tensor per entry of model.parameters() (zeros for frozen parameters).
  std::vector<torch::Tensor> clipped_sum;
};

// Clips as `clipper` would (same mode, thresholds and ε = 1e-6), with per-sample gradients from
// B separate backward passes accumulated in float64.
ReferenceClipResult reference_clipped_sum(torch::nn::Module& model, const PerSampleClipper& clipper,
                                          int64_t num_samples,
                                          const std::function<torch::Tensor(int64_t)>& sample_loss);

}  // namespace umbra
