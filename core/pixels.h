// The pixel convention, defined once for the whole system (training inputs, evaluation, samples,
// grids and the audit all use it):
//   pixels x ∈ {0, …, 255} (uint8). Dequantised data y = (x + u)/256 ∈ [0, 1), u ~ U[0, 1)^D.
//   Model space v = 2y − 1 = (x + u)/128 − 1 ∈ [−1, 1). Without dequantisation (training inputs,
//   reconstructions, samples) u = ½: v = (x + ½)/128 − 1, the centre of pixel x's bin, so
//   0 -> −0.99609 and 255 -> 0.99609. Back: x = clamp(floor((v + 1)·128), 0, 255), which maps every
//   v of pixel x's bin (and so every dequantised value) back to x.
// Training on bin centres and evaluating the likelihood on uniformly dequantised values of the same
// bins keeps the model's inputs and its bits/dim evaluation on one scale (models/elbo.h).
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace umbra {

// Model-space value of pixel x (the centre of its bin).
constexpr float pixel_to_model_value(uint8_t x) {
  return (static_cast<float>(x) + 0.5f) / 128.0f - 1.0f;
}

// uint8 pixels [B, C, H, W] -> model space with u = ½ (no randomness).
torch::Tensor pixels_to_model(const torch::Tensor& pixels);
// uint8 pixels -> model space with u ~ U[0, 1) per element from `gen`.
torch::Tensor dequantize_pixels(const torch::Tensor& pixels, at::Generator& gen);
// model space (any float tensor; NaN becomes mid grey) -> uint8 pixels on the same device, clamped.
torch::Tensor model_to_pixels(const torch::Tensor& v);

}  // namespace umbra
