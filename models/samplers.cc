#include "models/samplers.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "core/check.h"

namespace umbra {

namespace {

// Puts a module in eval mode for a scope and restores its mode afterwards.
class EvalScope {
 public:
  explicit EvalScope(torch::nn::Module& m) : m_(m), was_training_(m.is_training()) { m_.eval(); }
  ~EvalScope() { m_.train(was_training_); }
  EvalScope(const EvalScope&) = delete;
  EvalScope& operator=(const EvalScope&) = delete;

 private:
  torch::nn::Module& m_;
  bool was_training_;
};

}  // namespace

std::vector<int64_t> sampling_timesteps(int64_t num_train_timesteps, int64_t steps) {
  UMBRA_CHECK(steps >= 1 && steps <= num_train_timesteps,
              "sampler.num_inference_steps: expected 1 to ", num_train_timesteps, ", got ", steps);
  std::vector<int64_t> out;
  for (int64_t i = steps - 1; i >= 0; --i) out.push_back(i * num_train_timesteps / steps);
  return out;
}

torch::Tensor guided_model_output(UNetImpl& model, const torch::Tensor& x_t, const torch::Tensor& t,
                                  const torch::Tensor& labels, double guidance_scale) {
  if (model.num_classes() == 0 || !labels.defined()) return model.forward(x_t, t, labels);
  if (guidance_scale == 1.0) return model.forward(x_t, t, labels);
  const torch::Tensor null = torch::full_like(labels, model.null_class());
  if (guidance_scale == 0.0) return model.forward(x_t, t, null);
  const torch::Tensor out =
      model.forward(torch::cat({x_t, x_t}), torch::cat({t, t}), torch::cat({labels, null}));
  const auto parts = out.chunk(2, 0);
  return parts[1] + guidance_scale * (parts[0] - parts[1]);
}

torch::Tensor sample_latents(UNetImpl& model, const NoiseSchedule& schedule, PredictionType type,
                             const SamplerOptions& options, int64_t num_samples,
                             const std::vector<int64_t>& latent_shape, const torch::Tensor& labels,
                             uint64_t seed, torch::Device device) {
  UMBRA_CHECK(options.sampler == "ddpm" || options.sampler == "ddim",
              "sampler: expected ddpm or ddim, got '", options.sampler, "'");
  UMBRA_CHECK(options.eta >= 0.0 && options.eta <= 1.0, "sampler.eta: expected [0, 1], got ",
              options.eta);
  UMBRA_CHECK(options.guidance_scale >= 0.0, "sampler.guidance_scale: expected >= 0, got ",
              options.guidance_scale);
  UMBRA_CHECK(num_samples >= 0, "sampler: negative number of samples ", num_samples);
  UMBRA_CHECK(latent_shape.size() == 3 && latent_shape[0] == model.in_channels(),
              "sampler: expected a latent shape {", model.in_channels(), ", h, w}, got ",
              torch::IntArrayRef(latent_shape));
  torch::Tensor y;
  if (labels.defined()) {
    UMBRA_CHECK(model.num_classes() > 0, "sampler: class labels given to an unconditional prior");
    UMBRA_CHECK(labels.dim() == 1 && labels.size(0) == num_samples, "sampler: expected labels [",
                num_samples, "], got ", labels.sizes());
    y = labels.to(device, torch::kLong);
  }

  torch::NoGradGuard no_grad;
  EvalScope eval(model);
  at::Generator gen = at::detail::createCPUGenerator(seed);
  std::vector<int64_t> shape{num_samples};
  shape.insert(shape.end(), latent_shape.begin(), latent_shape.end());
  auto draw = [&] { return torch::randn(shape, gen, torch::kFloat32).to(device); };

  const std::vector<int64_t> steps =
      sampling_timesteps(schedule.num_timesteps(), options.num_inference_steps);

  torch::Tensor x = draw();
  for (size_t i = 0; i < steps.size(); ++i) {
    const int64_t t = steps[i];
    const int64_t t_prev = i + 1 < steps.size() ? steps[i + 1] : -1;
    const torch::Tensor tt =
        torch::full({num_samples}, t, torch::TensorOptions(device).dtype(torch::kLong));
    const torch::Tensor out = guided_model_output(model, x, tt, y, options.guidance_scale);
    const auto [x0, eps] = schedule.predict_x0_eps(type, x, out, tt);
    const double ab = schedule.alpha_cumprod(t);
    const double ab_prev = schedule.alpha_cumprod(t_prev);
    if (options.sampler == "ddpm") {
      const double beta = 1.0 - ab / ab_prev;
      const double c0 = std::sqrt(ab_prev) * beta / (1.0 - ab);
      const double ct = std::sqrt(1.0 - beta) * (1.0 - ab_prev) / (1.0 - ab);
      x = c0 * x0 + ct * x;
      if (t_prev >= 0) x = x + std::sqrt((1.0 - ab_prev) / (1.0 - ab) * beta) * draw();
    } else {
      const double sigma =
          options.eta * std::sqrt((1.0 - ab_prev) / (1.0 - ab)) * std::sqrt(1.0 - ab / ab_prev);
      const double dir = std::sqrt(std::max(0.0, 1.0 - ab_prev - sigma * sigma));
      x = std::sqrt(ab_prev) * x0 + dir * eps;
      if (sigma > 0.0) x = x + sigma * draw();
    }
  }
  return x;
}

torch::Tensor decode_latents(AutoencoderImpl& autoencoder, const torch::Tensor& latents,
                             double scale_factor) {
  UMBRA_CHECK(scale_factor > 0.0, "decode_latents: expected a positive latent scale factor, got ",
              scale_factor);
  torch::NoGradGuard no_grad;
  EvalScope eval(autoencoder);
  return autoencoder.decode(latents / scale_factor).clamp(-1.0, 1.0);
}

}  // namespace umbra
