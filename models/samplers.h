// Sampling from the latent diffusion prior (DESIGN.md §6): DDPM ancestral sampling and DDIM,
// with classifier-free guidance, class-conditional or unconditional, seeded.
//
// Both samplers run S = num_inference_steps steps on the "leading" spacing of the DDIM paper and
// iDDPM's "ddimS": τ_i = ⌊i·T/S⌋, taken descending (S = 50 of T = 1000: 980, 960, …, 0; S = T
// gives every step), previous step τ_{i+1} (ᾱ = 1 after the last). The spacing never starts at
// t = T−1 for S < T, and that is on purpose: the cosine schedule clips β_{T−1} at 0.999, so
// ᾱ_{T−1} ≈ 2e-9 and x̂_0 = (x_t − √(1−ᾱ_t) ε̂)/√ᾱ_t multiplies the network's ε error by ~2e4; a
// deterministic DDIM jump from there to ᾱ_prev ≈ 1e-3 carries ~600× that error into x and never
// recovers (blob samples; the "trailing" spacing round(T − i·T/S) − 1 did exactly that).
// DDPM (Ho et al. 2020), respaced as in iDDPM: x_prev = μ̃(x_t, x̂_0) + σ z with β = 1 − ᾱ_t/ᾱ_prev,
// μ̃ = √ᾱ_prev β/(1−ᾱ_t) x̂_0 + √(1−β) (1−ᾱ_prev)/(1−ᾱ_t) x_t and σ² = (1−ᾱ_prev)/(1−ᾱ_t) β
// ("fixed small"); no noise after the last step. With S = T, β is the schedule's β_t.
// DDIM (Song et al. 2021): x_prev = √ᾱ_prev x̂_0 + √(1−ᾱ_prev−σ²) ε̂ + σ z with
// σ = η √((1−ᾱ_prev)/(1−ᾱ_t)) √(1−ᾱ_t/ᾱ_prev). η = 1 is exactly the DDPM update above.
// Guidance: out = out(∅) + w (out(c) − out(∅)) on the model output (ε or v), computed as one
// forward of the 2B batch [x; x]; w = 1 is plain conditional sampling (one forward of B), w = 0
// unconditional. Samples whose label is the null class are unconditional whatever w is.
//
// Randomness: a CPU generator seeded with `seed` draws x_T, then one N(0, I) tensor per step that
// adds noise, in step order; the same (model, options, labels, seed) gives the same latents.
// The model is switched to eval mode for the call and restored; runs under NoGradGuard.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "core/options.h"
#include "models/autoencoder.h"
#include "models/noise_schedule.h"
#include "models/unet.h"

namespace umbra {

struct SamplerOptions {
  std::string sampler = "ddim";
  int64_t num_inference_steps = 50;
  double eta = 0.0;
  double guidance_scale = 1.0;

  template <class V>
  void visit(V& v) {
    v("sampler", sampler, "Sampler: DDPM ancestral or DDIM", OneOf{"ddpm", "ddim"});
    v("num_inference_steps", num_inference_steps,
      "Denoising steps of either sampler (at most the prior's num_train_timesteps)", AtLeast{1});
    v("eta", eta, "DDIM stochasticity: 0 = deterministic DDIM, 1 = DDPM-like", InRange{0.0, 1.0});
    v("guidance_scale", guidance_scale,
      "Classifier-free guidance weight w (1 = conditional, 0 = unconditional)", AtLeast{0.0});
  }
};

// The sampler's timesteps, descending (leading spacing, see above). 1 <= steps <= T.
std::vector<int64_t> sampling_timesteps(int64_t num_train_timesteps, int64_t steps);

// The (guided) model output for x_t [B, ...] at timesteps t [B]; labels [B] or undefined.
torch::Tensor guided_model_output(UNetImpl& model, const torch::Tensor& x_t, const torch::Tensor& t,
                                  const torch::Tensor& labels, double guidance_scale);

// Draws latents [num_samples, *latent_shape] on `device`. labels: [num_samples] int64 (the null
// class allowed) or undefined for unconditional samples. Throws umbra::Error on bad options.
torch::Tensor sample_latents(UNetImpl& model, const NoiseSchedule& schedule, PredictionType type,
                             const SamplerOptions& options, int64_t num_samples,
                             const std::vector<int64_t>& latent_shape, const torch::Tensor& labels,
                             uint64_t seed, torch::Device device = torch::kCPU);

// Prior latents -> images in [−1, 1] [B, C, image_size, image_size]: decode(latents / scale).
// Eval mode and NoGradGuard as above.
torch::Tensor decode_latents(AutoencoderImpl& autoencoder, const torch::Tensor& latents,
                             double scale_factor);

}  // namespace umbra
