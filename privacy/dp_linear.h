// DPLinear: y = x Wᵀ + b, the DP-aware twin of torch::nn::Linear (same parameters, same init).
//
// Shapes: input [B, *, in_features] -> output [B, *, out_features]; weight [out, in], bias [out].
// DP mode (privacy/dp_module.h): activation() = the input [B, *, in] (rows of sample i are
// activation()[i]), grad_output() = dL/dy [B, *, out]; the gradient of sample i is
// W: Σ_rows B_iᵀ A_i, b: Σ_rows B_i.
#pragma once

#include <torch/torch.h>

#include "privacy/dp_module.h"

namespace umbra {

struct DPLinearOptions {
  DPLinearOptions(int64_t in_features, int64_t out_features)
      : in_features_(in_features), out_features_(out_features) {}
  TORCH_ARG(int64_t, in_features);
  TORCH_ARG(int64_t, out_features);
  TORCH_ARG(bool, bias) = true;
};

class DPLinearImpl : public torch::nn::Cloneable<DPLinearImpl>, public DPModule {
 public:
  DPLinearImpl(int64_t in_features, int64_t out_features)
      : DPLinearImpl(DPLinearOptions(in_features, out_features)) {}
  explicit DPLinearImpl(const DPLinearOptions& options);

  void reset() override;
  // torch::nn::Linear's initialisation: kaiming_uniform(a=√5) weight, U(±1/√in) bias.
  void reset_parameters();
  void pretty_print(std::ostream& stream) const override;
  const char* dp_kind() const override { return "Linear"; }

  torch::Tensor forward(const torch::Tensor& input);

  DPLinearOptions options;
  torch::Tensor weight;
  torch::Tensor bias;  // undefined when options.bias() is false
};
TORCH_MODULE(DPLinear);

}  // namespace umbra
