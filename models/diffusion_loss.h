// The diffusion training objective (DDPM's "simple" loss; DESIGN.md §6) on scaled latents.
//
// loss_i = mean over the elements of sample i of (model(x_t, t, label) − target)², where
// x_t = q_sample(x0, noise, t) and target = noise (epsilon) or v (v_prediction).
// Everything random is drawn from a caller-owned CPU at::Generator, so a seeded generator gives a
// reproducible loss; tensors then move to x0's device.
#pragma once

#include <torch/torch.h>

#include "models/noise_schedule.h"
#include "models/unet.h"

namespace umbra {

// Per-sample loss [B] for explicit timesteps t [B] (int64) and noise (x0's shape). This is the
// entry point of the membership-inference audit (fixed t and fixed noise seeds). labels [B] or
// undefined (unconditional). The model's train/eval mode is the caller's.
torch::Tensor diffusion_loss(UNetImpl& model, const NoiseSchedule& schedule, PredictionType type,
                             const torch::Tensor& x0, const torch::Tensor& labels,
                             const torch::Tensor& t, const torch::Tensor& noise);

// Labels with each entry replaced by `null_class` with probability `prob` (label dropout for
// classifier-free guidance). An undefined `labels` stays undefined.
torch::Tensor drop_labels(const torch::Tensor& labels, int64_t null_class, double prob,
                          at::Generator& gen);

struct DiffusionInputs {
  torch::Tensor t;       // [B] int64, uniform on [0, T)
  torch::Tensor noise;   // x0's shape, N(0, I)
  torch::Tensor labels;  // after label dropout (undefined for an unconditional model)
};
// Draws, in this order: t, noise, label-dropout coins.
DiffusionInputs draw_diffusion_inputs(const NoiseSchedule& schedule, const torch::Tensor& x0,
                                      const torch::Tensor& labels, int64_t null_class,
                                      double class_dropout_prob, at::Generator& gen);

// The training loss per sample [B]: draw_diffusion_inputs with the model's class_dropout_prob,
// then diffusion_loss.
torch::Tensor diffusion_training_loss(UNetImpl& model, const NoiseSchedule& schedule,
                                      PredictionType type, const torch::Tensor& x0,
                                      const torch::Tensor& labels, at::Generator& gen);

}  // namespace umbra
