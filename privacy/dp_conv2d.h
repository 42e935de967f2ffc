// DPConv2d: 2-D convolution (square kernel, any stride and zero padding, dilation 1, groups 1),
// the DP-aware twin of torch::nn::Conv2d (same parameters, same init).
//
// Shapes: input [B, C_in, H, W] -> output [B, C_out, H', W'] with
// H' = (H + 2·padding - kernel_size) / stride + 1; weight [C_out, C_in, k, k], bias [C_out].
// DP mode (privacy/dp_module.h): activation() = the input [B, C_in, H, W] (unfold it with this
// layer's kernel_size/stride/padding to get A_i = [C_in·k², L]), grad_output() = dL/dy
// [B, C_out, H', W'] (B_i = [C_out, L]); the gradient of sample i is W: B_i A_iᵀ, b: Σ_L B_i.
#pragma once

#include <torch/torch.h>

#include "privacy/dp_module.h"

namespace umbra {

struct DPConv2dOptions {
  DPConv2dOptions(int64_t in_channels, int64_t out_channels, int64_t kernel_size)
      : in_channels_(in_channels), out_channels_(out_channels), kernel_size_(kernel_size) {}
  TORCH_ARG(int64_t, in_channels);
  TORCH_ARG(int64_t, out_channels);
  TORCH_ARG(int64_t, kernel_size);
  TORCH_ARG(int64_t, stride) = 1;
  TORCH_ARG(int64_t, padding) = 0;
  TORCH_ARG(bool, bias) = true;
};

class DPConv2dImpl : public torch::nn::Cloneable<DPConv2dImpl>, public DPModule {
 public:
  explicit DPConv2dImpl(const DPConv2dOptions& options);

  void reset() override;
  // torch::nn::Conv2d's initialisation: kaiming_uniform(a=√5) weight, U(±1/√fan_in) bias.
  void reset_parameters();
  void pretty_print(std::ostream& stream) const override;
  const char* dp_kind() const override { return "Conv2d"; }

  torch::Tensor forward(const torch::Tensor& input);

  DPConv2dOptions options;
  torch::Tensor weight;
  torch::Tensor bias;  // undefined when options.bias() is false
};
TORCH_MODULE(DPConv2d);

}  // namespace umbra
