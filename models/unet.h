// Stage-2 model: a DDPM/LDM-style UNet on autoencoder latents (DESIGN.md §6), built only from
// DP-aware primitives.
//
// forward(x, t, labels): x [B, in_channels, h, w] (noisy scaled latents; h, w any size, odd sizes
// such as 7 included: each downsampling gives ceil(h/2) and upsampling returns to the skip
// connection's exact size), t [B] timesteps (int64 or float), labels [B] int64 in [0, num_classes]
// where num_classes is the null class (classifier-free guidance); an undefined `labels` means
// unconditional (all null). Returns the prediction (ε or v) [B, in_channels, h, w].
//
// Conditioning: temb = time_embedding(sinusoidal(t, channels)) [B, 4·channels], plus
// class_embedding(label) when num_classes > 0; every ResBlock receives temb.
// Layout (LDM): conv_in; per level i: num_res_blocks ResBlocks (+ attention if 2^i is in
// attention_resolutions), downsample except at the last level; mid block (ResBlock, attention,
// ResBlock); per level from the lowest: num_res_blocks + 1 ResBlocks each fed the concatenation
// with a skip connection (+ attention), upsample except at level 0; GroupNorm + SiLU + conv_out.
//
// Parameter names (identical in bench/reference/umbra_models.py): conv_in,
// time_embedding.linear_1/linear_2, class_embedding.weight,
// down_blocks.<i>.{resnets,attentions}.<j>, down_blocks.<i>.downsample.conv, mid_block.*,
// up_blocks.<k>.{resnets,attentions}.<j> (k = 0 is the lowest resolution),
// up_blocks.<k>.upsample.conv, norm_out, conv_out. Label dropout is not applied here (see
// models/diffusion_loss.h).
#pragma once

#include <torch/torch.h>

#include <vector>

#include "models/blocks.h"
#include "models/prior_options.h"
#include "privacy/dp_embedding.h"

namespace umbra {

// Sinusoidal features [B, dim] -> linear_1 -> SiLU -> linear_2 -> [B, out_dim].
class TimestepEmbeddingImpl : public torch::nn::Module {
 public:
  TimestepEmbeddingImpl(int64_t dim, int64_t out_dim);
  torch::Tensor forward(const torch::Tensor& features);

  DPLinear linear_1{nullptr}, linear_2{nullptr};
};
TORCH_MODULE(TimestepEmbedding);

class UNetImpl : public torch::nn::Module {
 public:
  UNetImpl(const PriorOptions& options, int64_t in_channels);

  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t,
                        const torch::Tensor& labels = {});

  int64_t in_channels() const { return in_channels_; }
  int64_t num_classes() const { return options_.num_classes; }
  // The class index meaning "no class" (== num_classes); only valid when num_classes > 0.
  int64_t null_class() const { return options_.num_classes; }
  const PriorOptions& options() const { return options_; }

  DPConv2d conv_in{nullptr}, conv_out{nullptr};
  TimestepEmbedding time_embedding{nullptr};
  DPEmbedding class_embedding{nullptr};
  std::vector<LevelBlock> down_blocks, up_blocks;
  MidBlock mid_block{nullptr};
  DPGroupNorm norm_out{nullptr};

 private:
  PriorOptions options_;
  int64_t in_channels_;
  torch::nn::ModuleList down_list_, up_list_;
};
TORCH_MODULE(UNet);

}  // namespace umbra
