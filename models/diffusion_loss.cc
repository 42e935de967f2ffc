#include "models/diffusion_loss.h"

#include "core/check.h"

namespace umbra {

torch::Tensor diffusion_loss(UNetImpl& model, const NoiseSchedule& schedule, PredictionType type,
                             const torch::Tensor& x0, const torch::Tensor& labels,
                             const torch::Tensor& t, const torch::Tensor& noise) {
  UMBRA_CHECK(noise.sizes() == x0.sizes(), "diffusion_loss: noise ", noise.sizes(),
              " must have the shape of x0 ", x0.sizes());
  const torch::Tensor tt = t.to(x0.device(), torch::kLong);
  const torch::Tensor x_t = schedule.q_sample(x0, noise, tt);
  const torch::Tensor target = schedule.target(type, x0, noise, tt);
  const torch::Tensor out = model.forward(x_t, tt, labels);
  return (out - target).pow(2).flatten(1).mean(1);
}

torch::Tensor drop_labels(const torch::Tensor& labels, int64_t null_class, double prob,
                          at::Generator& gen) {
  if (!labels.defined() || prob <= 0.0) return labels;
  const torch::Tensor coins = torch::rand({labels.size(0)}, gen, torch::kFloat64);
  const torch::Tensor drop = (coins < prob).to(labels.device());
  return torch::where(drop, torch::full_like(labels, null_class), labels);
}

DiffusionInputs draw_diffusion_inputs(const NoiseSchedule& schedule, const torch::Tensor& x0,
                                      const torch::Tensor& labels, int64_t null_class,
                                      double class_dropout_prob, at::Generator& gen) {
  DiffusionInputs in;
  const int64_t b = x0.size(0);
  in.t = torch::randint(schedule.num_timesteps(), {b}, gen, torch::kLong).to(x0.device());
  in.noise = torch::randn(x0.sizes(), gen, torch::kFloat32).to(x0.options());
  in.labels = drop_labels(labels, null_class, class_dropout_prob, gen);
  return in;
}

torch::Tensor diffusion_training_loss(UNetImpl& model, const NoiseSchedule& schedule,
                                      PredictionType type, const torch::Tensor& x0,
                                      const torch::Tensor& labels, at::Generator& gen) {
  const double prob = model.num_classes() > 0 ? model.options().class_dropout_prob : 0.0;
  const int64_t null_class = model.num_classes();
  const DiffusionInputs in = draw_diffusion_inputs(schedule, x0, labels, null_class, prob, gen);
  return diffusion_loss(model, schedule, type, x0, in.labels, in.t, in.noise);
}

}  // namespace umbra
