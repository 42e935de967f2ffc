// A tiny autoencoder and a deterministic per-sample loss for the DP-step tests (single process
// and MPI): reconstruction error of decode(mean of encode(x)), one value per sample.
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "models/autoencoder.h"

namespace umbra::dp_test {

inline Autoencoder tiny_autoencoder(uint64_t seed) {
  torch::manual_seed(seed);
  AutoencoderOptions o;
  o.in_channels = 1;
  o.image_size = 28;
  o.sample_size = 28;
  o.channels = 8;
  o.channel_mult = {1, 2};
  o.num_res_blocks = 1;
  o.z_channels = 4;
  o.norm_num_groups = 4;
  o.num_heads = 1;
  o.dropout = 0.0;
  return Autoencoder(o);
}

inline torch::Tensor images(int64_t n, uint64_t seed) {
  torch::manual_seed(seed);
  return torch::rand({n, 1, 28, 28}) * 2 - 1;
}

inline torch::Tensor per_sample_loss(Autoencoder& model, const torch::Tensor& x) {
  const auto recon = model->decode(model->encode(x).mean);
  return (recon - x).pow(2).mean({1, 2, 3});
}

inline std::vector<std::pair<std::string, torch::Tensor>> trainable(torch::nn::Module& m) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& kv : m.named_parameters(true)) {
    if (kv.value().requires_grad()) out.emplace_back(kv.key(), kv.value());
  }
  return out;
}

// max |a - b| / max(max |b|, 1e-12) over all parameters' gradients.
inline double relative_error(const std::vector<torch::Tensor>& a,
                             const std::vector<torch::Tensor>& b) {
  double num = 0, den = 1e-12;
  for (size_t i = 0; i < a.size(); ++i) {
    num = std::max(num, (a[i] - b[i]).abs().max().item<double>());
    den = std::max(den, b[i].abs().max().item<double>());
  }
  return num / den;
}

}  // namespace umbra::dp_test
