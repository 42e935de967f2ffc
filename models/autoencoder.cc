#include "models/autoencoder.h"

#include <cmath>

#include "core/check.h"

namespace umbra {

namespace F = torch::nn::functional;

namespace {

constexpr double kNormEps = 1e-6;  // SD AutoencoderKL's GroupNorm epsilon
constexpr double kLogvarMin = -30.0;
constexpr double kLogvarMax = 20.0;
const double kLog2Pi = std::log(2.0 * M_PI);

ResBlockOptions resnet_options(const AutoencoderOptions& o, int64_t in, int64_t out) {
  return ResBlockOptions(in, out)
      .norm_num_groups(o.norm_num_groups)
      .norm_eps(kNormEps)
      .dropout(o.dropout);
}

AttentionBlockOptions attention_options(const AutoencoderOptions& o, int64_t channels) {
  return AttentionBlockOptions(channels)
      .num_heads(o.num_heads)
      .norm_num_groups(o.norm_num_groups)
      .norm_eps(kNormEps);
}

DPGroupNorm group_norm(const AutoencoderOptions& o, int64_t channels) {
  return DPGroupNorm(DPGroupNormOptions(o.norm_num_groups, channels).eps(kNormEps));
}

DPConv2d conv3x3(int64_t in, int64_t out) {
  return DPConv2d(DPConv2dOptions(in, out, 3).padding(1));
}

}  // namespace

void AutoencoderOptions::validate() const {
  UMBRA_CHECK(!channel_mult.empty() && channel_mult.size() <= 6,
              "autoencoder.channel_mult: expected 1 to 6 levels, got ", channel_mult.size());
  for (int64_t m : channel_mult) {
    UMBRA_CHECK(m > 0, "autoencoder.channel_mult: multipliers must be positive, got ", m);
    UMBRA_CHECK((channels * m) % norm_num_groups == 0, "autoencoder.norm_num_groups (",
                norm_num_groups, ") must divide every level's channels, got channels ", channels,
                " x ", m);
  }
  UMBRA_CHECK(channels % norm_num_groups == 0, "autoencoder.norm_num_groups (", norm_num_groups,
              ") must divide autoencoder.channels (", channels, ")");
  UMBRA_CHECK(sample_size >= image_size, "autoencoder.sample_size (", sample_size,
              ") must be at least autoencoder.image_size (", image_size, ")");
  UMBRA_CHECK(sample_size % downsample_factor() == 0, "autoencoder.sample_size (", sample_size,
              ") must be a multiple of the downsampling factor ", downsample_factor(), " (",
              channel_mult.size(), " levels in autoencoder.channel_mult)");
  const int64_t top = channels * channel_mult.back();
  UMBRA_CHECK(top % num_heads == 0, "autoencoder.num_heads (", num_heads,
              ") must divide the mid-block channels (", top, ")");
}

EncoderImpl::EncoderImpl(const AutoencoderOptions& o) {
  const int64_t levels = static_cast<int64_t>(o.channel_mult.size());
  conv_in = register_module("conv_in", conv3x3(o.in_channels, o.channels));
  down_list_ = register_module("down_blocks", torch::nn::ModuleList());
  int64_t ch = o.channels;
  for (int64_t i = 0; i < levels; ++i) {
    LevelBlock level;
    const int64_t out = o.channels * o.channel_mult[i];
    for (int64_t j = 0; j < o.num_res_blocks; ++j) {
      level->add_resnet(ResBlock(resnet_options(o, ch, out)));
      ch = out;
    }
    if (i + 1 < levels) level->set_downsample(Downsample(ch, /*asymmetric_padding=*/true));
    down_list_->push_back(level);
    down_blocks.push_back(level);
  }
  mid_block =
      register_module("mid_block", MidBlock(resnet_options(o, ch, ch), attention_options(o, ch)));
  norm_out = register_module("norm_out", group_norm(o, ch));
  conv_out = register_module("conv_out", conv3x3(ch, 2 * o.z_channels));
}

torch::Tensor EncoderImpl::forward(const torch::Tensor& x) {
  torch::Tensor h = conv_in(x);
  for (auto& level : down_blocks) {
    for (auto& resnet : level->resnets) h = resnet(h);
    if (level->downsample) h = level->downsample(h);
  }
  h = mid_block(h);
  return conv_out(torch::silu(norm_out(h)));
}

DecoderImpl::DecoderImpl(const AutoencoderOptions& o) {
  const int64_t levels = static_cast<int64_t>(o.channel_mult.size());
  int64_t ch = o.channels * o.channel_mult.back();
  conv_in = register_module("conv_in", conv3x3(o.z_channels, ch));
  mid_block =
      register_module("mid_block", MidBlock(resnet_options(o, ch, ch), attention_options(o, ch)));
  up_list_ = register_module("up_blocks", torch::nn::ModuleList());
  for (int64_t i = levels - 1; i >= 0; --i) {
    LevelBlock level;
    const int64_t out = o.channels * o.channel_mult[i];
    for (int64_t j = 0; j < o.num_res_blocks + 1; ++j) {
      level->add_resnet(ResBlock(resnet_options(o, ch, out)));
      ch = out;
    }
    if (i > 0) level->set_upsample(Upsample(ch));
    up_list_->push_back(level);
    up_blocks.push_back(level);
  }
  norm_out = register_module("norm_out", group_norm(o, ch));
  conv_out = register_module("conv_out", conv3x3(ch, o.in_channels));
}

torch::Tensor DecoderImpl::forward(const torch::Tensor& z) {
  torch::Tensor h = mid_block(conv_in(z));
  for (auto& level : up_blocks) {
    for (auto& resnet : level->resnets) h = resnet(h);
    if (level->upsample) h = level->upsample(h);
  }
  return conv_out(torch::silu(norm_out(h)));
}

torch::Tensor Posterior::sample(const torch::Tensor& noise) const {
  return mean + torch::exp(0.5 * logvar) * noise;
}

torch::Tensor Posterior::kl() const {
  return 0.5 * (mean.pow(2) + torch::exp(logvar) - logvar - 1.0).flatten(1).sum(1);
}

torch::Tensor Posterior::log_prob(const torch::Tensor& z) const {
  const torch::Tensor e = (z - mean).pow(2) * torch::exp(-logvar);
  return -0.5 * (e + logvar + kLog2Pi).flatten(1).sum(1);
}

AutoencoderImpl::AutoencoderImpl(const AutoencoderOptions& options) : options_(options) {
  options_.validate();
  const int64_t z = options_.z_channels;
  encoder = register_module("encoder", Encoder(options_));
  quant_conv = register_module("quant_conv", DPConv2d(DPConv2dOptions(2 * z, 2 * z, 1)));
  post_quant_conv = register_module("post_quant_conv", DPConv2d(DPConv2dOptions(z, z, 1)));
  decoder = register_module("decoder", Decoder(options_));
  decoder_logvar = register_module("decoder_logvar",
                                   DPParameter(DPParameterOptions({1}).init(options_.logvar_init)));
}

Posterior AutoencoderImpl::encode(const torch::Tensor& x) {
  const int64_t s = options_.image_size;
  UMBRA_CHECK(x.dim() == 4 && x.size(1) == options_.in_channels && x.size(2) == s && x.size(3) == s,
              "Autoencoder: expected images [B, ", options_.in_channels, ", ", s, ", ", s,
              "], got ", x.sizes());
  const int64_t before = (options_.sample_size - s) / 2;
  const int64_t after = options_.sample_size - s - before;
  torch::Tensor padded = x;
  if (before + after > 0) {
    padded = F::pad(x, F::PadFuncOptions({before, after, before, after}).value(-1.0));
  }
  const auto moments = quant_conv(encoder(padded)).chunk(2, 1);
  return {moments[0], torch::clamp(moments[1], kLogvarMin, kLogvarMax)};
}

torch::Tensor AutoencoderImpl::decode(const torch::Tensor& z) {
  const auto shape = latent_shape();
  UMBRA_CHECK(
      z.dim() == 4 && z.size(1) == shape[0] && z.size(2) == shape[1] && z.size(3) == shape[2],
      "Autoencoder: expected latents [B, ", shape[0], ", ", shape[1], ", ", shape[2], "], got ",
      z.sizes());
  const torch::Tensor out = decoder(post_quant_conv(z));
  const int64_t s = options_.image_size;
  const int64_t before = (options_.sample_size - s) / 2;
  if (options_.sample_size == s) return out;
  return out.slice(2, before, before + s).slice(3, before, before + s);
}

torch::Tensor AutoencoderImpl::decoder_logvar_per_sample(int64_t batch_size) {
  return decoder_logvar(batch_size).view({batch_size});
}

torch::Tensor AutoencoderImpl::nll(const torch::Tensor& x, const torch::Tensor& reconstruction) {
  const int64_t b = x.size(0);
  const double d = static_cast<double>(x.size(1) * x.size(2) * x.size(3));
  const torch::Tensor s = decoder_logvar_per_sample(b);
  const torch::Tensor sq = (x - reconstruction).pow(2).flatten(1).sum(1);
  return 0.5 * (sq * torch::exp(-s) + d * (s + kLog2Pi));
}

AutoencoderImpl::Output AutoencoderImpl::forward(const torch::Tensor& x,
                                                 const torch::Tensor& noise) {
  Output out;
  out.posterior = encode(x);
  if (noise.defined()) {
    UMBRA_CHECK(noise.sizes() == out.posterior.mean.sizes(), "Autoencoder: noise must have the ",
                "latent shape ", out.posterior.mean.sizes(), ", got ", noise.sizes());
    out.z = out.posterior.sample(noise);
  } else {
    out.z = out.posterior.mean;
  }
  out.reconstruction = decode(out.z);
  out.nll = nll(x, out.reconstruction);
  out.kl = out.posterior.kl();
  out.loss = out.nll + options_.beta * out.kl;
  return out;
}

std::vector<int64_t> AutoencoderImpl::latent_shape() const {
  return {options_.z_channels, options_.latent_size(), options_.latent_size()};
}

}  // namespace umbra
