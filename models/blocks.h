// Building blocks shared by the autoencoder and the diffusion UNet (DESIGN.md §6), made only of
// DP-aware primitives (privacy/dp_*.h). Parameter names follow diffusers (norm1, conv1,
// time_emb_proj, norm2, conv2, conv_shortcut; to_q, to_k, to_v, to_out) and are the same in the
// Python reference (bench/reference/umbra_models.py). All shapes are [B, C, H, W] unless stated.
#pragma once

#include <torch/torch.h>

#include "privacy/dp_conv2d.h"
#include "privacy/dp_group_norm.h"
#include "privacy/dp_linear.h"

namespace umbra {

struct ResBlockOptions {
  ResBlockOptions(int64_t in_channels, int64_t out_channels)
      : in_channels_(in_channels), out_channels_(out_channels) {}
  TORCH_ARG(int64_t, in_channels);
  TORCH_ARG(int64_t, out_channels);
  TORCH_ARG(int64_t, temb_channels) = 0;  // 0: no time-embedding injection
  TORCH_ARG(int64_t, norm_num_groups) = 32;
  TORCH_ARG(double, norm_eps) = 1e-6;
  TORCH_ARG(double, dropout) = 0.0;
};

// h = conv1(SiLU(norm1(x))) [+ time_emb_proj(SiLU(temb))[:, :, None, None]]
// h = conv2(dropout(SiLU(norm2(h))));  out = shortcut(x) + h, shortcut = 1x1 conv when the
// channel count changes. temb: [B, temb_channels] (required iff temb_channels > 0).
class ResBlockImpl : public torch::nn::Module {
 public:
  explicit ResBlockImpl(const ResBlockOptions& options);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& temb = {});

  ResBlockOptions options;
  DPGroupNorm norm1{nullptr}, norm2{nullptr};
  DPConv2d conv1{nullptr}, conv2{nullptr}, conv_shortcut{nullptr};
  DPLinear time_emb_proj{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(ResBlock);

struct AttentionBlockOptions {
  explicit AttentionBlockOptions(int64_t channels) : channels_(channels) {}
  TORCH_ARG(int64_t, channels);
  TORCH_ARG(int64_t, num_heads) = 1;  // channels % num_heads == 0
  TORCH_ARG(int64_t, norm_num_groups) = 32;
  TORCH_ARG(double, norm_eps) = 1e-6;
};

// Spatial self-attention with a residual connection: tokens = the H·W positions,
// out = x + to_out(softmax(q kᵀ / √d_head) v), q/k/v = to_q/to_k/to_v(norm(x)) per head.
// to_q/to_k/to_v/to_out are DPLinear over the channel dimension (= 1x1 convolutions).
class AttentionBlockImpl : public torch::nn::Module {
 public:
  explicit AttentionBlockImpl(const AttentionBlockOptions& options);
  torch::Tensor forward(const torch::Tensor& x);

  AttentionBlockOptions options;
  DPGroupNorm norm{nullptr};
  DPLinear to_q{nullptr}, to_k{nullptr}, to_v{nullptr}, to_out{nullptr};
};
TORCH_MODULE(AttentionBlock);

// x2 downsampling by a 3x3 stride-2 convolution. asymmetric_padding = SD's autoencoder
// convention (pad right/bottom by one, no conv padding: H -> floor(H/2)); otherwise conv
// padding 1 (H -> ceil(H/2)), which keeps odd sizes such as 7x7 latents usable.
class DownsampleImpl : public torch::nn::Module {
 public:
  DownsampleImpl(int64_t channels, bool asymmetric_padding);
  torch::Tensor forward(const torch::Tensor& x);

  bool asymmetric_padding;
  DPConv2d conv{nullptr};
};
TORCH_MODULE(Downsample);

// Nearest-neighbour upsampling to `size` ({H, W}; empty = 2x) followed by a 3x3 convolution.
class UpsampleImpl : public torch::nn::Module {
 public:
  explicit UpsampleImpl(int64_t channels);
  torch::Tensor forward(const torch::Tensor& x, std::vector<int64_t> size = {});

  DPConv2d conv{nullptr};
};
TORCH_MODULE(Upsample);

// The mid block of both models: resnet_1 -> attention -> resnet_2 at constant channels.
class MidBlockImpl : public torch::nn::Module {
 public:
  MidBlockImpl(const ResBlockOptions& resnet, const AttentionBlockOptions& attention);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& temb = {});

  ResBlock resnet_1{nullptr}, resnet_2{nullptr};
  AttentionBlock attention{nullptr};
};
TORCH_MODULE(MidBlock);

// One resolution level: resnets[j], each followed by attentions[j] when the level has attention,
// then an optional resampler (downsample or upsample). The owning model drives the loop (the
// UNet's up path concatenates skip connections between resnets). Submodule names:
// resnets.<j>, attentions.<j>, downsample, upsample.
class LevelBlockImpl : public torch::nn::Module {
 public:
  LevelBlockImpl();
  void add_resnet(ResBlock block);
  void add_attention(AttentionBlock block);
  void set_downsample(Downsample block);
  void set_upsample(Upsample block);
  bool has_attention() const { return !attentions.empty(); }

  std::vector<ResBlock> resnets;
  std::vector<AttentionBlock> attentions;
  Downsample downsample{nullptr};
  Upsample upsample{nullptr};

 private:
  torch::nn::ModuleList resnet_list_, attention_list_;
};
TORCH_MODULE(LevelBlock);

// Sinusoidal embedding of (possibly fractional) timesteps, as in DDPM/LDM:
// freq_k = exp(-ln(10000)·k/half), k < half = dim/2; emb = [cos(t·freq), sin(t·freq)].
// t: [B] (any numeric dtype) -> [B, dim] float32; dim must be even.
torch::Tensor timestep_embedding(const torch::Tensor& t, int64_t dim);

}  // namespace umbra
