#include "privacy/dp_conv2d.h"

#include <cmath>

#include "core/check.h"

namespace umbra {

DPConv2dImpl::DPConv2dImpl(const DPConv2dOptions& options_) : options(options_) { reset(); }

void DPConv2dImpl::reset() {
  UMBRA_CHECK(options.in_channels() > 0 && options.out_channels() > 0 &&
                  options.kernel_size() > 0 && options.stride() > 0 && options.padding() >= 0,
              "DPConv2d: expected positive channels/kernel/stride and padding >= 0, got in=",
              options.in_channels(), " out=", options.out_channels(), " k=", options.kernel_size(),
              " stride=", options.stride(), " padding=", options.padding());
  const int64_t k = options.kernel_size();
  weight = register_parameter("weight",
                              torch::empty({options.out_channels(), options.in_channels(), k, k}));
  if (options.bias()) {
    bias = register_parameter("bias", torch::empty({options.out_channels()}));
  } else {
    bias = register_parameter("bias", torch::Tensor(), /*requires_grad=*/false);
  }
  reset_parameters();
}

void DPConv2dImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (bias.defined()) {
    const int64_t fan_in = options.in_channels() * options.kernel_size() * options.kernel_size();
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
    torch::nn::init::uniform_(bias, -bound, bound);
  }
}

void DPConv2dImpl::pretty_print(std::ostream& stream) const {
  stream << "umbra::DPConv2d(" << options.in_channels() << ", " << options.out_channels()
         << ", kernel_size=" << options.kernel_size() << ", stride=" << options.stride()
         << ", padding=" << options.padding() << ", bias=" << options.bias() << ")";
}

torch::Tensor DPConv2dImpl::forward(const torch::Tensor& input) {
  UMBRA_CHECK(input.dim() == 4 && input.size(1) == options.in_channels(),
              "DPConv2d: expected input [B, ", options.in_channels(), ", H, W], got ",
              input.sizes());
  torch::Tensor b = bias.defined() ? param_for_forward(bias) : torch::Tensor();
  torch::Tensor out =
      torch::conv2d(input, param_for_forward(weight), b, {options.stride()}, {options.padding()});
  return capture(input, out);
}

}  // namespace umbra
