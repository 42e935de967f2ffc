// Small model configurations shared by the models tests (fast on 2 CPU cores).
#pragma once

#include <torch/torch.h>

#include "models/autoencoder.h"
#include "models/unet.h"

namespace umbra::testing {

// sample_size 28 -> 7x7 latents, 32 -> 8x8 (28x28 images padded with -1).
inline AutoencoderOptions tiny_autoencoder_options(int64_t sample_size) {
  AutoencoderOptions o;
  o.in_channels = 1;
  o.image_size = 28;
  o.sample_size = sample_size;
  o.channels = 8;
  o.channel_mult = {1, 2, 2};
  o.num_res_blocks = 1;
  o.z_channels = 4;
  o.norm_num_groups = 4;
  o.num_heads = 2;
  o.dropout = 0.0;
  return o;
}

inline PriorOptions tiny_prior_options(int64_t num_classes) {
  PriorOptions o;
  o.channels = 16;
  o.channel_mult = {1, 2};
  o.num_res_blocks = 1;
  o.attention_resolutions = {2};
  o.num_heads = 2;
  o.norm_num_groups = 4;
  o.dropout = 0.0;
  o.num_classes = num_classes;
  return o;
}

// Adds N(0, scale²) to every parameter so that GroupNorm affines, zero biases, etc. are not at
// their trivial initial values.
inline void perturb_parameters(torch::nn::Module& m, double scale) {
  torch::NoGradGuard no_grad;
  for (auto& p : m.parameters()) p.add_(torch::randn_like(p) * scale);
}

}  // namespace umbra::testing
