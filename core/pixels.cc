#include "core/pixels.h"

#include "core/check.h"

namespace umbra {
namespace {

void check_pixels(const torch::Tensor& pixels) {
  UMBRA_CHECK(pixels.defined() && pixels.scalar_type() == torch::kUInt8 && pixels.dim() == 4,
              "pixels: expected uint8 [B, C, H, W], got ",
              pixels.defined() ? c10::toString(pixels.scalar_type()) : "an undefined tensor", " ",
              pixels.defined() ? pixels.sizes() : c10::IntArrayRef{});
}

}  // namespace

torch::Tensor pixels_to_model(const torch::Tensor& pixels) {
  check_pixels(pixels);
  return (pixels.to(torch::kFloat32) + 0.5) / 128.0 - 1.0;
}

torch::Tensor dequantize_pixels(const torch::Tensor& pixels, at::Generator& gen) {
  check_pixels(pixels);
  const torch::Tensor u = torch::rand(pixels.sizes(), gen, torch::kFloat32).to(pixels.device());
  return (pixels.to(torch::kFloat32) + u) / 128.0 - 1.0;
}

torch::Tensor model_to_pixels(const torch::Tensor& v) {
  torch::NoGradGuard no_grad;
  const torch::Tensor finite = torch::nan_to_num(v.detach().to(torch::kFloat64), 0.0);
  return torch::floor((finite + 1.0) * 128.0).clamp(0, 255).to(torch::kUInt8);
}

}  // namespace umbra
