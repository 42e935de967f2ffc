#include "privacy/dp_group_norm.h"

#include "core/check.h"

namespace umbra {

DPGroupNormImpl::DPGroupNormImpl(const DPGroupNormOptions& options_) : options(options_) {
  reset();
}

void DPGroupNormImpl::reset() {
  UMBRA_CHECK(options.num_groups() > 0 && options.num_channels() > 0 &&
                  options.num_channels() % options.num_groups() == 0,
              "DPGroupNorm: num_channels (", options.num_channels(),
              ") must be a positive multiple of num_groups (", options.num_groups(), ")");
  weight = register_parameter("weight", torch::empty({options.num_channels()}));
  bias = register_parameter("bias", torch::empty({options.num_channels()}));
  reset_parameters();
}

void DPGroupNormImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  weight.fill_(1.0);
  bias.zero_();
}

void DPGroupNormImpl::pretty_print(std::ostream& stream) const {
  stream << "umbra::DPGroupNorm(" << options.num_groups() << ", " << options.num_channels()
         << ", eps=" << options.eps() << ")";
}

torch::Tensor DPGroupNormImpl::forward(const torch::Tensor& input) {
  UMBRA_CHECK(input.dim() >= 2 && input.size(1) == options.num_channels(),
              "DPGroupNorm: expected input [B, ", options.num_channels(), ", ...], got ",
              input.sizes());
  if (!dp_mode() || !torch::GradMode::is_enabled()) {
    return torch::group_norm(input, options.num_groups(), weight, bias, options.eps());
  }
  // DP mode: the affine map is applied by hand so that x̂ (its activation) is available.
  const torch::Tensor normalized =
      torch::group_norm(input, options.num_groups(), {}, {}, options.eps());
  std::vector<int64_t> shape(input.dim(), 1);
  shape[1] = options.num_channels();
  torch::Tensor out =
      normalized * param_for_forward(weight).view(shape) + param_for_forward(bias).view(shape);
  return capture(capture_input ? input : normalized, out);
}

}  // namespace umbra
