// DPGroupNorm: group normalisation with a per-channel affine transform, the DP-aware twin of
// torch::nn::GroupNorm(affine=true) (same parameters: weight = 1, bias = 0 at init). Unlike
// BatchNorm it normalises each sample on its own, so it keeps the privacy unit intact.
//
// Shapes: input [B, C, *] -> output [B, C, *]; weight [C], bias [C]; C % num_groups == 0.
// DP mode (privacy/dp_module.h): activation() = the normalised input x̂ [B, C, *] (before the
// affine map), grad_output() = dL/dy [B, C, *]; the gradient of sample i is
// weight: Σ_* B_i ⊙ x̂_i, bias: Σ_* B_i (per channel). With capture_input set, activation() is
// the input x instead (x̂ = group_norm(x) without affine; see capture_input below).
#pragma once

#include <torch/torch.h>

#include "privacy/dp_module.h"

namespace umbra {

struct DPGroupNormOptions {
  DPGroupNormOptions(int64_t num_groups, int64_t num_channels)
      : num_groups_(num_groups), num_channels_(num_channels) {}
  TORCH_ARG(int64_t, num_groups);
  TORCH_ARG(int64_t, num_channels);
  TORCH_ARG(double, eps) = 1e-5;
};

class DPGroupNormImpl : public torch::nn::Cloneable<DPGroupNormImpl>, public DPModule {
 public:
  DPGroupNormImpl(int64_t num_groups, int64_t num_channels)
      : DPGroupNormImpl(DPGroupNormOptions(num_groups, num_channels)) {}
  explicit DPGroupNormImpl(const DPGroupNormOptions& options);

  void reset() override;
  void reset_parameters();
  void pretty_print(std::ostream& stream) const override;
  const char* dp_kind() const override { return "GroupNorm"; }

  torch::Tensor forward(const torch::Tensor& input);

  DPGroupNormOptions options;
  torch::Tensor weight;
  torch::Tensor bias;
  // DP mode: false (default) captures x̂; true captures the input x, which autograd keeps for
  // group_norm's backward anyway, so the capture costs no memory (x̂ would be one more activation
  // per layer held from the forward pass on). The clipping engine sets it and recomputes x̂.
  bool capture_input = false;
};
TORCH_MODULE(DPGroupNorm);

}  // namespace umbra
