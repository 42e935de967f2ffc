// DPParameter: a free learned tensor that every sample uses (e.g. the autoencoder's scalar decoder
// log-variance), wrapped so that its per-sample gradient is known and check_dp_compatible accepts
// the model that owns it.
//
// Shapes: value `shape`; forward(B) -> value broadcast to [B, *shape] (a fresh tensor).
// DP mode (privacy/dp_module.h): activation() is undefined, grad_output() = dL/d(output)
// [B, *shape]: row i is exactly the gradient of sample i.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "privacy/dp_module.h"

namespace umbra {

struct DPParameterOptions {
  explicit DPParameterOptions(std::vector<int64_t> shape) : shape_(std::move(shape)) {}
  TORCH_ARG(std::vector<int64_t>, shape);
  TORCH_ARG(double, init) = 0.0;  // every element starts at this value
};

class DPParameterImpl : public torch::nn::Cloneable<DPParameterImpl>, public DPModule {
 public:
  explicit DPParameterImpl(const DPParameterOptions& options);

  void reset() override;
  void reset_parameters();
  void pretty_print(std::ostream& stream) const override;
  const char* dp_kind() const override { return "Parameter"; }

  torch::Tensor forward(int64_t batch_size);

  DPParameterOptions options;
  torch::Tensor value;
};
TORCH_MODULE(DPParameter);

}  // namespace umbra
