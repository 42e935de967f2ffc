#include "models/blocks.h"

#include <cmath>

#include "core/check.h"

namespace umbra {

namespace F = torch::nn::functional;

ResBlockImpl::ResBlockImpl(const ResBlockOptions& options_) : options(options_) {
  const int64_t groups = options.norm_num_groups();
  norm1 = register_module(
      "norm1",
      DPGroupNorm(DPGroupNormOptions(groups, options.in_channels()).eps(options.norm_eps())));
  conv1 = register_module(
      "conv1",
      DPConv2d(DPConv2dOptions(options.in_channels(), options.out_channels(), 3).padding(1)));
  if (options.temb_channels() > 0) {
    time_emb_proj =
        register_module("time_emb_proj", DPLinear(options.temb_channels(), options.out_channels()));
  }
  norm2 = register_module(
      "norm2",
      DPGroupNorm(DPGroupNormOptions(groups, options.out_channels()).eps(options.norm_eps())));
  dropout = register_module("dropout", torch::nn::Dropout(options.dropout()));
  conv2 = register_module(
      "conv2",
      DPConv2d(DPConv2dOptions(options.out_channels(), options.out_channels(), 3).padding(1)));
  if (options.in_channels() != options.out_channels()) {
    conv_shortcut = register_module(
        "conv_shortcut",
        DPConv2d(DPConv2dOptions(options.in_channels(), options.out_channels(), 1)));
  }
}

torch::Tensor ResBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& temb) {
  torch::Tensor h = conv1(torch::silu(norm1(x)));
  if (time_emb_proj) {
    UMBRA_CHECK(temb.defined() && temb.dim() == 2 && temb.size(0) == x.size(0),
                "ResBlock: expected a time embedding [", x.size(0), ", ", options.temb_channels(),
                "], got ", temb.defined() ? c10::str(temb.sizes()) : std::string("none"));
    h = h + time_emb_proj(torch::silu(temb)).unsqueeze(-1).unsqueeze(-1);
  }
  h = conv2(dropout(torch::silu(norm2(h))));
  return (conv_shortcut ? conv_shortcut(x) : x) + h;
}

AttentionBlockImpl::AttentionBlockImpl(const AttentionBlockOptions& options_) : options(options_) {
  const int64_t c = options.channels();
  UMBRA_CHECK(options.num_heads() > 0 && c % options.num_heads() == 0, "AttentionBlock: channels (",
              c, ") must be a multiple of num_heads (", options.num_heads(), ")");
  norm = register_module(
      "norm",
      DPGroupNorm(DPGroupNormOptions(options.norm_num_groups(), c).eps(options.norm_eps())));
  to_q = register_module("to_q", DPLinear(c, c));
  to_k = register_module("to_k", DPLinear(c, c));
  to_v = register_module("to_v", DPLinear(c, c));
  to_out = register_module("to_out", DPLinear(c, c));
}

torch::Tensor AttentionBlockImpl::forward(const torch::Tensor& x) {
  const int64_t b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  const int64_t heads = options.num_heads(), d = c / heads, n = h * w;
  // [B, C, H, W] -> tokens [B, N, C]
  const torch::Tensor tokens = norm(x).reshape({b, c, n}).transpose(1, 2);
  auto split_heads = [&](const torch::Tensor& t) {  // [B, N, C] -> [B, heads, N, d]
    return t.reshape({b, n, heads, d}).transpose(1, 2);
  };
  const torch::Tensor q = split_heads(to_q(tokens));
  const torch::Tensor k = split_heads(to_k(tokens));
  const torch::Tensor v = split_heads(to_v(tokens));
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  const torch::Tensor weights = torch::softmax(torch::matmul(q, k.transpose(-1, -2)) * scale, -1);
  const torch::Tensor attended = torch::matmul(weights, v).transpose(1, 2).reshape({b, n, c});
  return x + to_out(attended).transpose(1, 2).reshape({b, c, h, w});
}

DownsampleImpl::DownsampleImpl(int64_t channels, bool asymmetric_padding_)
    : asymmetric_padding(asymmetric_padding_) {
  conv = register_module(
      "conv",
      DPConv2d(
          DPConv2dOptions(channels, channels, 3).stride(2).padding(asymmetric_padding ? 0 : 1)));
}

torch::Tensor DownsampleImpl::forward(const torch::Tensor& x) {
  if (!asymmetric_padding) return conv(x);
  return conv(F::pad(x, F::PadFuncOptions({0, 1, 0, 1})));
}

UpsampleImpl::UpsampleImpl(int64_t channels) {
  conv = register_module("conv", DPConv2d(DPConv2dOptions(channels, channels, 3).padding(1)));
}

torch::Tensor UpsampleImpl::forward(const torch::Tensor& x, std::vector<int64_t> size) {
  if (size.empty()) size = {2 * x.size(2), 2 * x.size(3)};
  UMBRA_ASSERT(size.size() == 2, "Upsample: size must be {H, W}");
  return conv(F::interpolate(x, F::InterpolateFuncOptions().size(size).mode(torch::kNearest)));
}

MidBlockImpl::MidBlockImpl(const ResBlockOptions& resnet, const AttentionBlockOptions& attn) {
  UMBRA_ASSERT(
      resnet.in_channels() == resnet.out_channels() && resnet.out_channels() == attn.channels(),
      "MidBlock: constant channel count expected");
  resnet_1 = register_module("resnet_1", ResBlock(resnet));
  attention = register_module("attention", AttentionBlock(attn));
  resnet_2 = register_module("resnet_2", ResBlock(resnet));
}

torch::Tensor MidBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& temb) {
  return resnet_2(attention(resnet_1(x, temb)), temb);
}

LevelBlockImpl::LevelBlockImpl() {
  resnet_list_ = register_module("resnets", torch::nn::ModuleList());
  attention_list_ = register_module("attentions", torch::nn::ModuleList());
}

void LevelBlockImpl::add_resnet(ResBlock block) {
  resnet_list_->push_back(block);
  resnets.push_back(std::move(block));
}

void LevelBlockImpl::add_attention(AttentionBlock block) {
  attention_list_->push_back(block);
  attentions.push_back(std::move(block));
}

void LevelBlockImpl::set_downsample(Downsample block) {
  downsample = register_module("downsample", std::move(block));
}

void LevelBlockImpl::set_upsample(Upsample block) {
  upsample = register_module("upsample", std::move(block));
}

torch::Tensor timestep_embedding(const torch::Tensor& t, int64_t dim) {
  UMBRA_CHECK(dim > 0 && dim % 2 == 0, "timestep_embedding: dim must be even and positive, got ",
              dim);
  UMBRA_CHECK(t.dim() == 1, "timestep_embedding: expected timesteps [B], got ", t.sizes());
  const int64_t half = dim / 2;
  const torch::Tensor freqs = torch::exp(torch::arange(half, t.options().dtype(torch::kFloat32)) *
                                         (-std::log(10000.0) / static_cast<double>(half)));
  const torch::Tensor args = t.to(torch::kFloat32).unsqueeze(1) * freqs.unsqueeze(0);
  return torch::cat({torch::cos(args), torch::sin(args)}, 1);
}

}  // namespace umbra
