#include "models/unet.h"

#include <algorithm>

#include "core/check.h"

namespace umbra {

namespace {

constexpr double kNormEps = 1e-5;  // LDM/diffusers UNet GroupNorm epsilon

bool has_attention(const PriorOptions& o, int64_t level) {
  const int64_t ds = int64_t{1} << level;
  return std::find(o.attention_resolutions.begin(), o.attention_resolutions.end(), ds) !=
         o.attention_resolutions.end();
}

ResBlockOptions resnet_options(const PriorOptions& o, int64_t in, int64_t out) {
  return ResBlockOptions(in, out)
      .temb_channels(4 * o.channels)
      .norm_num_groups(o.norm_num_groups)
      .norm_eps(kNormEps)
      .dropout(o.dropout);
}

AttentionBlockOptions attention_options(const PriorOptions& o, int64_t channels) {
  return AttentionBlockOptions(channels)
      .num_heads(o.num_heads)
      .norm_num_groups(o.norm_num_groups)
      .norm_eps(kNormEps);
}

}  // namespace

void PriorOptions::validate() const {
  UMBRA_CHECK(!channel_mult.empty() && channel_mult.size() <= 6,
              "prior.channel_mult: expected 1 to 6 levels, got ", channel_mult.size());
  UMBRA_CHECK(channels % 2 == 0, "prior.channels must be even (sinusoidal embedding), got ",
              channels);
  UMBRA_CHECK(channels % norm_num_groups == 0, "prior.norm_num_groups (", norm_num_groups,
              ") must divide prior.channels (", channels, ")");
  for (size_t i = 0; i < channel_mult.size(); ++i) {
    const int64_t c = channels * channel_mult[i];
    UMBRA_CHECK(channel_mult[i] > 0, "prior.channel_mult: multipliers must be positive, got ",
                channel_mult[i]);
    UMBRA_CHECK(c % norm_num_groups == 0, "prior.norm_num_groups (", norm_num_groups,
                ") must divide every level's channels, got ", c);
    const bool attends =
        has_attention(*this, static_cast<int64_t>(i)) || i + 1 == channel_mult.size();
    UMBRA_CHECK(!attends || c % num_heads == 0, "prior.num_heads (", num_heads,
                ") must divide the channels of every level with attention, got ", c);
  }
  for (int64_t ds : attention_resolutions) {
    UMBRA_CHECK(ds >= 1 && (ds & (ds - 1)) == 0 && ds < (int64_t{1} << channel_mult.size()),
                "prior.attention_resolutions: expected powers of two below ",
                int64_t{1} << channel_mult.size(), " (one per level), got ", ds);
  }
  UMBRA_CHECK(beta_start <= beta_end, "prior.beta_start (", beta_start,
              ") must not exceed prior.beta_end (", beta_end, ")");
}

TimestepEmbeddingImpl::TimestepEmbeddingImpl(int64_t dim, int64_t out_dim) {
  linear_1 = register_module("linear_1", DPLinear(dim, out_dim));
  linear_2 = register_module("linear_2", DPLinear(out_dim, out_dim));
}

torch::Tensor TimestepEmbeddingImpl::forward(const torch::Tensor& features) {
  return linear_2(torch::silu(linear_1(features)));
}

UNetImpl::UNetImpl(const PriorOptions& options, int64_t in_channels)
    : options_(options), in_channels_(in_channels) {
  options_.validate();
  UMBRA_CHECK(in_channels > 0, "UNet: expected positive in_channels, got ", in_channels);
  const PriorOptions& o = options_;
  const int64_t levels = static_cast<int64_t>(o.channel_mult.size());
  const int64_t temb_dim = 4 * o.channels;

  conv_in =
      register_module("conv_in", DPConv2d(DPConv2dOptions(in_channels, o.channels, 3).padding(1)));
  time_embedding = register_module("time_embedding", TimestepEmbedding(o.channels, temb_dim));
  if (o.num_classes > 0) {
    class_embedding = register_module("class_embedding", DPEmbedding(o.num_classes + 1, temb_dim));
  }

  std::vector<int64_t> skip_channels{o.channels};
  int64_t ch = o.channels;
  down_list_ = register_module("down_blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < levels; ++i) {
    LevelBlock level;
    const int64_t out = o.channels * o.channel_mult[i];
    for (int64_t j = 0; j < o.num_res_blocks; ++j) {
      level->add_resnet(ResBlock(resnet_options(o, ch, out)));
      ch = out;
      if (has_attention(o, i)) level->add_attention(AttentionBlock(attention_options(o, ch)));
      skip_channels.push_back(ch);
    }
    if (i + 1 < levels) {
      level->set_downsample(Downsample(ch, /*asymmetric_padding=*/false));
      skip_channels.push_back(ch);
    }
    down_list_->push_back(level);
    down_blocks.push_back(level);
  }

  mid_block =
      register_module("mid_block", MidBlock(resnet_options(o, ch, ch), attention_options(o, ch)));

  up_list_ = register_module("up_blocks", torch::nn::ModuleList());
  for (int64_t i = levels - 1; i >= 0; --i) {
    LevelBlock level;
    const int64_t out = o.channels * o.channel_mult[i];
    for (int64_t j = 0; j < o.num_res_blocks + 1; ++j) {
      const int64_t skip = skip_channels.back();
      skip_channels.pop_back();
      level->add_resnet(ResBlock(resnet_options(o, ch + skip, out)));
      ch = out;
      if (has_attention(o, i)) level->add_attention(AttentionBlock(attention_options(o, ch)));
    }
    if (i > 0) level->set_upsample(Upsample(ch));
    up_list_->push_back(level);
    up_blocks.push_back(level);
  }
  UMBRA_ASSERT(skip_channels.empty(), "UNet: skip connections left over");

  norm_out = register_module("norm_out",
                             DPGroupNorm(DPGroupNormOptions(o.norm_num_groups, ch).eps(kNormEps)));
  conv_out = register_module("conv_out", DPConv2d(DPConv2dOptions(ch, in_channels, 3).padding(1)));
}

torch::Tensor UNetImpl::forward(const torch::Tensor& x, const torch::Tensor& t,
                                const torch::Tensor& labels) {
  UMBRA_CHECK(x.dim() == 4 && x.size(1) == in_channels_, "UNet: expected latents [B, ",
              in_channels_, ", h, w], got ", x.sizes());
  UMBRA_CHECK(t.dim() == 1 && t.size(0) == x.size(0), "UNet: expected timesteps [", x.size(0),
              "], got ", t.sizes());
  torch::Tensor temb = time_embedding(timestep_embedding(t, options_.channels).to(x.dtype()));
  if (options_.num_classes > 0) {
    torch::Tensor y = labels;
    if (!y.defined()) {
      y = torch::full({x.size(0)}, null_class(), x.options().dtype(torch::kLong));
    }
    UMBRA_CHECK(y.dim() == 1 && y.size(0) == x.size(0), "UNet: expected labels [", x.size(0),
                "], got ", y.sizes());
    temb = temb + class_embedding(y.to(x.device()));
  } else {
    UMBRA_CHECK(!labels.defined(),
                "UNet: labels given to an unconditional model "
                "(prior.num_classes = 0)");
  }

  torch::Tensor h = conv_in(x);
  std::vector<torch::Tensor> skips{h};
  for (auto& level : down_blocks) {
    for (size_t j = 0; j < level->resnets.size(); ++j) {
      h = level->resnets[j](h, temb);
      if (level->has_attention()) h = level->attentions[j](h);
      skips.push_back(h);
    }
    if (level->downsample) {
      h = level->downsample(h);
      skips.push_back(h);
    }
  }
  h = mid_block(h, temb);
  for (auto& level : up_blocks) {
    for (size_t j = 0; j < level->resnets.size(); ++j) {
      h = level->resnets[j](torch::cat({h, skips.back()}, 1), temb);
      skips.pop_back();
      if (level->has_attention()) h = level->attentions[j](h);
    }
    if (level->upsample) {
      h = level->upsample(h, std::vector<int64_t>{skips.back().size(2), skips.back().size(3)});
    }
  }
  return conv_out(torch::silu(norm_out(h)));
}

}  // namespace umbra
