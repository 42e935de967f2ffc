#include "models/noise_schedule.h"

#include <cmath>

#include "core/check.h"

namespace umbra {

BetaSchedule parse_beta_schedule(const std::string& name, const std::string& key) {
  if (name == "linear") return BetaSchedule::kLinear;
  if (name == "cosine") return BetaSchedule::kCosine;
  UMBRA_FAIL(key, ": expected linear or cosine, got '", name, "'");
}

PredictionType parse_prediction_type(const std::string& name, const std::string& key) {
  if (name == "epsilon") return PredictionType::kEpsilon;
  if (name == "v_prediction") return PredictionType::kV;
  UMBRA_FAIL(key, ": expected epsilon or v_prediction, got '", name, "'");
}

NoiseSchedule::NoiseSchedule(BetaSchedule kind, int64_t num_timesteps, double beta_start,
                             double beta_end) {
  UMBRA_CHECK(num_timesteps >= 2, "noise schedule: expected at least 2 timesteps, got ",
              num_timesteps);
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  if (kind == BetaSchedule::kLinear) {
    UMBRA_CHECK(beta_start > 0 && beta_start <= beta_end && beta_end < 1,
                "noise schedule: expected 0 < beta_start <= beta_end < 1, got ", beta_start, ", ",
                beta_end);
    betas_ = torch::linspace(beta_start, beta_end, num_timesteps, f64);
  } else {
    constexpr double kOffset = 0.008;
    constexpr double kMaxBeta = 0.999;
    auto f = [](double tau) {
      const double c = std::cos((tau + kOffset) / (1.0 + kOffset) * M_PI / 2.0);
      return c * c;
    };
    betas_ = torch::empty({num_timesteps}, f64);
    auto b = betas_.accessor<double, 1>();
    const double n = static_cast<double>(num_timesteps);
    for (int64_t t = 0; t < num_timesteps; ++t) {
      b[t] = std::min(1.0 - f((t + 1) / n) / f(t / n), kMaxBeta);
    }
  }
  alphas_cumprod_ = torch::cumprod(1.0 - betas_, 0);
  sqrt_alphas_cumprod_ = torch::sqrt(alphas_cumprod_);
  sqrt_one_minus_alphas_cumprod_ = torch::sqrt(1.0 - alphas_cumprod_);
}

NoiseSchedule NoiseSchedule::from_options(const PriorOptions& options) {
  return NoiseSchedule(parse_beta_schedule(options.beta_schedule, "prior.beta_schedule"),
                       options.num_train_timesteps, options.beta_start, options.beta_end);
}

double NoiseSchedule::alpha_cumprod(int64_t t) const {
  UMBRA_ASSERT(t >= -1 && t < num_timesteps(), "timestep out of range: ", t);
  return t < 0 ? 1.0 : alphas_cumprod_[t].item<double>();
}

double NoiseSchedule::beta(int64_t t) const {
  UMBRA_ASSERT(t >= 0 && t < num_timesteps(), "timestep out of range: ", t);
  return betas_[t].item<double>();
}

torch::Tensor NoiseSchedule::gather(const torch::Tensor& table, const torch::Tensor& t,
                                    const torch::Tensor& like) const {
  UMBRA_CHECK(t.dim() == 1 && t.size(0) == like.size(0), "noise schedule: expected timesteps [",
              like.size(0), "], got ", t.sizes());
  const torch::Tensor idx = t.to(torch::kCPU, torch::kLong);
  if (idx.numel() > 0) {
    UMBRA_CHECK(idx.min().item<int64_t>() >= 0 && idx.max().item<int64_t>() < num_timesteps(),
                "noise schedule: timesteps must lie in [0, ", num_timesteps(), ")");
  }
  std::vector<int64_t> shape(like.dim(), 1);
  shape[0] = like.size(0);
  return table.index_select(0, idx).to(like.options()).view(shape);
}

torch::Tensor NoiseSchedule::q_sample(const torch::Tensor& x0, const torch::Tensor& noise,
                                      const torch::Tensor& t) const {
  return gather(sqrt_alphas_cumprod_, t, x0) * x0 +
         gather(sqrt_one_minus_alphas_cumprod_, t, x0) * noise;
}

torch::Tensor NoiseSchedule::target(PredictionType type, const torch::Tensor& x0,
                                    const torch::Tensor& noise, const torch::Tensor& t) const {
  return type == PredictionType::kEpsilon ? noise : v_from_eps_x0(noise, x0, t);
}

torch::Tensor NoiseSchedule::v_from_eps_x0(const torch::Tensor& eps, const torch::Tensor& x0,
                                           const torch::Tensor& t) const {
  return gather(sqrt_alphas_cumprod_, t, x0) * eps -
         gather(sqrt_one_minus_alphas_cumprod_, t, x0) * x0;
}

torch::Tensor NoiseSchedule::x0_from_eps(const torch::Tensor& x_t, const torch::Tensor& eps,
                                         const torch::Tensor& t) const {
  return (x_t - gather(sqrt_one_minus_alphas_cumprod_, t, x_t) * eps) /
         gather(sqrt_alphas_cumprod_, t, x_t);
}

torch::Tensor NoiseSchedule::eps_from_x0(const torch::Tensor& x_t, const torch::Tensor& x0,
                                         const torch::Tensor& t) const {
  return (x_t - gather(sqrt_alphas_cumprod_, t, x_t) * x0) /
         gather(sqrt_one_minus_alphas_cumprod_, t, x_t);
}

torch::Tensor NoiseSchedule::x0_from_v(const torch::Tensor& x_t, const torch::Tensor& v,
                                       const torch::Tensor& t) const {
  return gather(sqrt_alphas_cumprod_, t, x_t) * x_t -
         gather(sqrt_one_minus_alphas_cumprod_, t, x_t) * v;
}

torch::Tensor NoiseSchedule::eps_from_v(const torch::Tensor& x_t, const torch::Tensor& v,
                                        const torch::Tensor& t) const {
  return gather(sqrt_one_minus_alphas_cumprod_, t, x_t) * x_t +
         gather(sqrt_alphas_cumprod_, t, x_t) * v;
}

torch::Tensor NoiseSchedule::v_from_eps(const torch::Tensor& x_t, const torch::Tensor& eps,
                                        const torch::Tensor& t) const {
  return v_from_eps_x0(eps, x0_from_eps(x_t, eps, t), t);
}

std::pair<torch::Tensor, torch::Tensor> NoiseSchedule::predict_x0_eps(
    PredictionType type, const torch::Tensor& x_t, const torch::Tensor& output,
    const torch::Tensor& t) const {
  if (type == PredictionType::kEpsilon) return {x0_from_eps(x_t, output, t), output};
  return {x0_from_v(x_t, output, t), eps_from_v(x_t, output, t)};
}

}  // namespace umbra
