#include "privacy/dp_parameter.h"

#include "core/check.h"

namespace umbra {

DPParameterImpl::DPParameterImpl(const DPParameterOptions& options_) : options(options_) {
  reset();
}

void DPParameterImpl::reset() {
  for (int64_t d : options.shape()) {
    UMBRA_CHECK(d > 0, "DPParameter: expected a shape of positive sizes, got ",
                torch::IntArrayRef(options.shape()));
  }
  value = register_parameter("value", torch::empty(options.shape()));
  reset_parameters();
}

void DPParameterImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  value.fill_(options.init());
}

void DPParameterImpl::pretty_print(std::ostream& stream) const {
  stream << "umbra::DPParameter(shape=" << torch::IntArrayRef(options.shape()) << ")";
}

torch::Tensor DPParameterImpl::forward(int64_t batch_size) {
  UMBRA_CHECK(batch_size >= 0, "DPParameter: negative batch size ", batch_size);
  std::vector<int64_t> shape{batch_size};
  shape.insert(shape.end(), options.shape().begin(), options.shape().end());
  torch::Tensor v = param_for_forward(value);
  return capture({}, v.unsqueeze(0).expand(shape).clone());
}

}  // namespace umbra
