// Diffusion noise schedules and the algebra around them (DDPM, Ho et al. 2020; improved DDPM,
// Nichol & Dhariwal 2021; v-prediction, Salimans & Ho 2022). Timesteps are integers t in
// [0, T); alpha_bar(t) = Π_{s<=t} (1 − β_s), and by convention alpha_bar(−1) = 1.
//
//   q(x_t | x_0):  x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε
//   v target:      v = √ᾱ_t ε − √(1−ᾱ_t) x_0
//   conversions:   x_0 = √ᾱ_t x_t − √(1−ᾱ_t) v,   ε = √(1−ᾱ_t) x_t + √ᾱ_t v,
//                  x_0 = (x_t − √(1−ᾱ_t) ε) / √ᾱ_t
//
// Tables are float64 on the CPU; per-sample coefficients are gathered for t [B] (int64, any
// device) and broadcast over [B, ...] tensors in their dtype/device. Immutable after construction
// and therefore safe to share between threads.
#pragma once

#include <torch/torch.h>

#include <string>

#include "models/prior_options.h"

namespace umbra {

enum class BetaSchedule { kLinear, kCosine };
enum class PredictionType { kEpsilon, kV };

// "linear" | "cosine"; "epsilon" | "v_prediction". Throw umbra::Error naming `key` otherwise.
BetaSchedule parse_beta_schedule(const std::string& name, const std::string& key);
PredictionType parse_prediction_type(const std::string& name, const std::string& key);

class NoiseSchedule {
 public:
  // linear: β_t = beta_start + (beta_end − beta_start)·t/(T−1).
  // cosine: ᾱ(τ) = f(τ)/f(0), f(τ) = cos²((τ/T + 0.008)/1.008 · π/2),
  //         β_t = min(1 − ᾱ(t+1)/ᾱ(t), 0.999) with τ continuous (beta_start/end unused).
  NoiseSchedule(BetaSchedule kind, int64_t num_timesteps, double beta_start = 1e-4,
                double beta_end = 0.02);
  static NoiseSchedule from_options(const PriorOptions& options);

  int64_t num_timesteps() const { return betas_.size(0); }
  const torch::Tensor& betas() const { return betas_; }                    // [T] float64
  const torch::Tensor& alphas_cumprod() const { return alphas_cumprod_; }  // [T] float64
  // ᾱ_t for t in [−1, T).
  double alpha_cumprod(int64_t t) const;
  double beta(int64_t t) const;

  // x_t for x0, noise [B, ...] and t [B].
  torch::Tensor q_sample(const torch::Tensor& x0, const torch::Tensor& noise,
                         const torch::Tensor& t) const;
  // What the network is trained to output for (x0, noise, t).
  torch::Tensor target(PredictionType type, const torch::Tensor& x0, const torch::Tensor& noise,
                       const torch::Tensor& t) const;

  torch::Tensor v_from_eps_x0(const torch::Tensor& eps, const torch::Tensor& x0,
                              const torch::Tensor& t) const;
  torch::Tensor x0_from_eps(const torch::Tensor& x_t, const torch::Tensor& eps,
                            const torch::Tensor& t) const;
  torch::Tensor eps_from_x0(const torch::Tensor& x_t, const torch::Tensor& x0,
                            const torch::Tensor& t) const;
  torch::Tensor x0_from_v(const torch::Tensor& x_t, const torch::Tensor& v,
                          const torch::Tensor& t) const;
  torch::Tensor eps_from_v(const torch::Tensor& x_t, const torch::Tensor& v,
                           const torch::Tensor& t) const;
  torch::Tensor v_from_eps(const torch::Tensor& x_t, const torch::Tensor& eps,
                           const torch::Tensor& t) const;

  // Model output of the given type -> (x0, eps) predictions at (x_t, t).
  std::pair<torch::Tensor, torch::Tensor> predict_x0_eps(PredictionType type,
                                                         const torch::Tensor& x_t,
                                                         const torch::Tensor& output,
                                                         const torch::Tensor& t) const;

 private:
  // table[t] shaped [B, 1, ..., 1] like `like`, in its dtype and on its device.
  torch::Tensor gather(const torch::Tensor& table, const torch::Tensor& t,
                       const torch::Tensor& like) const;

  torch::Tensor betas_;
  torch::Tensor alphas_cumprod_;
  torch::Tensor sqrt_alphas_cumprod_;
  torch::Tensor sqrt_one_minus_alphas_cumprod_;
};

}  // namespace umbra
