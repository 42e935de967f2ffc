// Options of the stage-2 latent diffusion prior (config section `prior.`; DESIGN.md §6). Model
// names follow LDM's UNet config (model_channels -> channels, channel_mult, num_res_blocks,
// attention_resolutions, num_heads, num_classes); schedule names follow diffusers
// (num_train_timesteps, beta_schedule, beta_start, beta_end, prediction_type); label dropout is
// DiT's class_dropout_prob. prior.batch_size and prior.max_steps belong to the trainer's options.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/options.h"

namespace umbra {

struct PriorOptions {
  int64_t channels = 64;
  std::vector<int64_t> channel_mult = {1, 2, 2};
  int64_t num_res_blocks = 2;
  std::vector<int64_t> attention_resolutions = {4};
  int64_t num_heads = 4;
  int64_t norm_num_groups = 32;
  double dropout = 0.1;
  int64_t num_classes = 10;
  double class_dropout_prob = 0.1;
  std::string prediction_type = "epsilon";
  std::string beta_schedule = "linear";
  int64_t num_train_timesteps = 1000;
  double beta_start = 1e-4;
  double beta_end = 0.02;
  double scale_factor = 0.0;

  template <class V>
  void visit(V& v) {
    v("channels", channels, "Base channel count of the UNet (LDM: model_channels)", AtLeast{1});
    v("channel_mult", channel_mult,
      "Channel multiplier per resolution level (one x2 downsampling between levels)");
    v("num_res_blocks", num_res_blocks, "ResBlocks per level on the way down (up: one more)",
      AtLeast{1});
    v("attention_resolutions", attention_resolutions,
      "Downsampling factors (1 = latent resolution, 2, 4, ...) whose ResBlocks are followed by "
      "self-attention; the mid block always has attention");
    v("num_heads", num_heads, "Attention heads", AtLeast{1});
    v("norm_num_groups", norm_num_groups, "GroupNorm groups (must divide every channel count)",
      AtLeast{1});
    v("dropout", dropout, "Dropout inside ResBlocks", InRange{0.0, 1.0});
    v("num_classes", num_classes,
      "Number of classes for class conditioning (0 = unconditional); the class index "
      "num_classes is the null class used for classifier-free guidance",
      AtLeast{0});
    v("class_dropout_prob", class_dropout_prob,
      "Probability that a training label is replaced by the null class (classifier-free "
      "guidance)",
      InRange{0.0, 1.0});
    v("prediction_type", prediction_type, "What the UNet predicts: the noise or v",
      OneOf{"epsilon", "v_prediction"});
    v("beta_schedule", beta_schedule,
      "Noise schedule: linear betas (DDPM) or cosine alpha_bar (Nichol & Dhariwal 2021)",
      OneOf{"linear", "cosine"});
    v("num_train_timesteps", num_train_timesteps, "Diffusion steps T", AtLeast{2});
    v("beta_start", beta_start, "First beta of the linear schedule", InRange{0.0, 1.0});
    v("beta_end", beta_end, "Last beta of the linear schedule", InRange{0.0, 1.0});
    v("scale_factor", scale_factor,
      "Latents are multiplied by this before the prior sees them; 0 = computed as 1/std of the "
      "training latents (the run records which data it was computed on)",
      AtLeast{0.0});
  }

  // Checks the cross-field constraints; throws umbra::Error naming the prior.* key.
  void validate() const;
};

}  // namespace umbra
