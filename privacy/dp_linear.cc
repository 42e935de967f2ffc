#include "privacy/dp_linear.h"

#include <cmath>

#include "core/check.h"

namespace umbra {

DPLinearImpl::DPLinearImpl(const DPLinearOptions& options_) : options(options_) { reset(); }

void DPLinearImpl::reset() {
  UMBRA_CHECK(options.in_features() > 0 && options.out_features() > 0,
              "DPLinear: expected positive in/out features, got ", options.in_features(), " -> ",
              options.out_features());
  weight =
      register_parameter("weight", torch::empty({options.out_features(), options.in_features()}));
  if (options.bias()) {
    bias = register_parameter("bias", torch::empty({options.out_features()}));
  } else {
    bias = register_parameter("bias", torch::Tensor(), /*requires_grad=*/false);
  }
  reset_parameters();
}

void DPLinearImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (bias.defined()) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(options.in_features()));
    torch::nn::init::uniform_(bias, -bound, bound);
  }
}

void DPLinearImpl::pretty_print(std::ostream& stream) const {
  stream << "umbra::DPLinear(in_features=" << options.in_features()
         << ", out_features=" << options.out_features() << ", bias=" << options.bias() << ")";
}

torch::Tensor DPLinearImpl::forward(const torch::Tensor& input) {
  UMBRA_CHECK(input.dim() >= 1 && input.size(-1) == options.in_features(),
              "DPLinear: expected input [..., ", options.in_features(), "], got ", input.sizes());
  torch::Tensor b = bias.defined() ? param_for_forward(bias) : torch::Tensor();
  return capture(input, torch::nn::functional::linear(input, param_for_forward(weight), b));
}

}  // namespace umbra
