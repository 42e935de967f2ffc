// Stage-1 model: a KL-regularised convolutional VAE with the shape of Stable Diffusion's
// AutoencoderKL (DESIGN.md §6), built only from DP-aware primitives.
//
// Data convention: images enter as float [B, in_channels, image_size, image_size] in [-1, 1]
// (core/pixels.h has the exact pixel mapping). They are padded with -1 to sample_size, encoded
// to a diagonal Gaussian posterior q(z|x) = N(mean, exp(logvar)) on latents
// [B, z_channels, latent_size, latent_size] (latent_size = sample_size / f, f = 4 by default), and
// decoded to the mean of a Gaussian likelihood p(x|z) = N(decode(z), exp(s)·I) over the
// image_size x image_size pixels, where s is one learned scalar (decoder_logvar).
//
// Parameter names (identical in bench/reference/umbra_models.py): encoder.conv_in,
// encoder.down_blocks.<i>.resnets.<j>.*, encoder.down_blocks.<i>.downsample.conv,
// encoder.mid_block.{resnet_1,attention,resnet_2}.*, encoder.norm_out, encoder.conv_out,
// quant_conv, post_quant_conv, decoder.conv_in, decoder.mid_block.*,
// decoder.up_blocks.<i>.resnets.<j>.* (i = 0 is the lowest resolution),
// decoder.up_blocks.<i>.upsample.conv, decoder.norm_out, decoder.conv_out, decoder_logvar.value.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "models/autoencoder_options.h"
#include "models/blocks.h"
#include "privacy/dp_parameter.h"

namespace umbra {

// Encoder trunk: image [B, C, S, S] -> [B, 2·z_channels, S/f, S/f] (mean and log-variance).
class EncoderImpl : public torch::nn::Module {
 public:
  explicit EncoderImpl(const AutoencoderOptions& options);
  torch::Tensor forward(const torch::Tensor& x);

  DPConv2d conv_in{nullptr}, conv_out{nullptr};
  std::vector<LevelBlock> down_blocks;
  MidBlock mid_block{nullptr};
  DPGroupNorm norm_out{nullptr};

 private:
  torch::nn::ModuleList down_list_;
};
TORCH_MODULE(Encoder);

// Decoder trunk: latents [B, z_channels, S/f, S/f] -> image mean [B, C, S, S].
class DecoderImpl : public torch::nn::Module {
 public:
  explicit DecoderImpl(const AutoencoderOptions& options);
  torch::Tensor forward(const torch::Tensor& z);

  DPConv2d conv_in{nullptr}, conv_out{nullptr};
  MidBlock mid_block{nullptr};
  std::vector<LevelBlock> up_blocks;
  DPGroupNorm norm_out{nullptr};

 private:
  torch::nn::ModuleList up_list_;
};
TORCH_MODULE(Decoder);

// q(z|x): mean and log-variance [B, z_channels, h, w]; logvar is clamped to [-30, 20].
struct Posterior {
  torch::Tensor mean;
  torch::Tensor logvar;
  // z = mean + exp(logvar / 2) ⊙ noise (reparameterisation; gradients flow into mean/logvar).
  torch::Tensor sample(const torch::Tensor& noise) const;
  // KL(q(z|x) || N(0, I)) per sample in nats: ½ Σ (mean² + exp(logvar) − logvar − 1). [B]
  torch::Tensor kl() const;
  // log q(z|x) per sample in nats for z [B, z_channels, h, w]. [B]
  torch::Tensor log_prob(const torch::Tensor& z) const;
};

class AutoencoderImpl : public torch::nn::Module {
 public:
  explicit AutoencoderImpl(const AutoencoderOptions& options);

  // x [B, C, image_size, image_size] in [-1, 1] -> q(z|x).
  Posterior encode(const torch::Tensor& x);
  // z [B, z_channels, h, w] -> likelihood mean [B, C, image_size, image_size] (unclamped).
  torch::Tensor decode(const torch::Tensor& z);

  // The scalar decoder log-variance s broadcast to [B] (through the DP primitive, so that its
  // per-sample gradient is captured in DP mode).
  torch::Tensor decoder_logvar_per_sample(int64_t batch_size);
  // -log p(x | reconstruction) per sample in nats, Gaussian with variance exp(s) per pixel. [B]
  torch::Tensor nll(const torch::Tensor& x, const torch::Tensor& reconstruction);

  struct Output {
    Posterior posterior;
    torch::Tensor z;               // [B, z_channels, h, w]
    torch::Tensor reconstruction;  // decode(z), [B, C, image_size, image_size]
    torch::Tensor nll;             // [B] nats
    torch::Tensor kl;              // [B] nats
    torch::Tensor loss;            // [B] nll + beta·kl (the training loss per sample)
  };
  // One pass: encode, z = mean + std ⊙ noise (noise [B, z_channels, h, w] ~ N(0, I); an undefined
  // noise means z = mean), decode, and the per-sample loss terms.
  Output forward(const torch::Tensor& x, const torch::Tensor& noise);

  // {z_channels, latent_size, latent_size}
  std::vector<int64_t> latent_shape() const;
  const AutoencoderOptions& options() const { return options_; }

  Encoder encoder{nullptr};
  Decoder decoder{nullptr};
  DPConv2d quant_conv{nullptr}, post_quant_conv{nullptr};
  DPParameter decoder_logvar{nullptr};

 private:
  AutoencoderOptions options_;
};
TORCH_MODULE(Autoencoder);

}  // namespace umbra
