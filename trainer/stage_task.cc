#include "trainer/stage_task.h"

#include "core/check.h"
#include "core/png.h"
#include "models/diffusion_loss.h"
#include "models/elbo.h"
#include "models/samplers.h"
#include "trainer/sample_random.h"

namespace umbra {
namespace {

// Held-out images evaluated per call (a fixed prefix of the test split: same images each time).
constexpr int64_t kEvalImages = 1000;
constexpr int64_t kGridImages = 16;

// The first `count` test images that no relabel canary took (an included one is a trained image).
torch::Tensor heldout_pixels(const SplitData& split, const CanaryOptions& canaries, int64_t count) {
  const auto& m = split.meta;
  std::vector<int64_t> positions = heldout_test_positions(canaries, split.count());
  positions.resize(std::min<size_t>(positions.size(), static_cast<size_t>(count)));
  const torch::Tensor all =
      torch::from_blob(const_cast<uint8_t*>(split.images.data()),
                       {split.count(), m.channels, m.height, m.width}, torch::kUInt8);
  return all.index_select(0, torch::tensor(positions, torch::kInt64));
}

}  // namespace

AutoencoderTask::AutoencoderTask(const TrainConfig& cfg, std::shared_ptr<const SplitData> heldout)
    : model_(cfg.autoencoder.model),
      seed_(static_cast<uint64_t>(cfg.run.seed)),
      heldout_(std::move(heldout)),
      canaries_(cfg.data.canaries),
      eval_images_(kEvalImages) {}

torch::Tensor AutoencoderTask::per_sample_loss(const Batch& batch, int64_t global_step, int64_t k) {
  UMBRA_ASSERT(k == 1, "noise multiplicity applies to the prior only");
  const int64_t b = batch.size();
  const auto shape = model_->latent_shape();
  std::vector<int64_t> noise_shape{b};
  noise_shape.insert(noise_shape.end(), shape.begin(), shape.end());
  torch::Tensor noise = torch::empty(noise_shape);
  const auto ids = batch.ids.accessor<int64_t, 1>();
  for (int64_t i = 0; i < b; ++i) {
    auto gen = sample_generator(seed_, RngStream::kTraining, global_step, ids[i]);
    noise[i].normal_(0.0, 1.0, gen);
  }
  return model_->forward(batch.images, noise).loss;
}

nlohmann::json AutoencoderTask::evaluate(const std::string& png_path, int64_t step) {
  nlohmann::json figures;
  if (!heldout_ || heldout_->count() == 0) return figures;
  torch::NoGradGuard no_grad;
  const bool was_training = model_->is_training();
  model_->eval();
  const torch::Tensor pixels = heldout_pixels(*heldout_, canaries_, eval_images_);
  auto gen = sample_generator(seed_, RngStream::kEvaluation, 0, 0);
  double nats = 0, bpd = 0;
  const int64_t n = pixels.size(0);
  for (int64_t begin = 0; begin < n; begin += 250) {
    const auto chunk = pixels.slice(0, begin, std::min(n, begin + 250));
    const auto r = negative_elbo_dequantized(*model_, chunk, 1, gen);
    nats += r.nats_per_image.sum().item<double>();
    bpd += r.bits_per_dim.sum().item<double>();
  }
  figures["heldout_nelbo_nats"] = nats / static_cast<double>(n);
  figures["heldout_bits_per_dim"] = bpd / static_cast<double>(n);
  figures["heldout_images"] = n;

  const auto originals = pixels_to_model(pixels.slice(0, 0, kGridImages));
  const auto recon = model_->forward(originals, torch::Tensor()).reconstruction.clamp(-1, 1);
  save_image_grid(png_path, torch::cat({originals, recon}), kGridImages);
  if (was_training) model_->train();
  (void)step;
  return figures;
}

PriorTask::PriorTask(const TrainConfig& cfg, Autoencoder autoencoder, double scale_factor)
    : unet_(cfg.prior.model, cfg.autoencoder.model.z_channels),
      autoencoder_(std::move(autoencoder)),
      schedule_(NoiseSchedule::from_options(cfg.prior.model)),
      prediction_(parse_prediction_type(cfg.prior.model.prediction_type, "prior.prediction_type")),
      sampling_(cfg.prior.sampling),
      scale_factor_(scale_factor),
      seed_(static_cast<uint64_t>(cfg.run.seed)) {}

torch::Tensor PriorTask::per_sample_loss(const Batch& batch, int64_t global_step, int64_t k) {
  const int64_t b = batch.size();
  const int64_t rows = b * k;
  const int64_t timesteps = schedule_.num_timesteps();
  const bool conditional = unet_->num_classes() > 0;
  const double drop = unet_->options().class_dropout_prob;
  torch::Tensor x0 = batch.images.repeat_interleave(k, 0);
  torch::Tensor noise = torch::empty_like(x0);
  torch::Tensor t = torch::empty({rows}, torch::kInt64);
  torch::Tensor labels = conditional ? torch::empty({rows}, torch::kInt64) : torch::Tensor();
  const auto ids = batch.ids.accessor<int64_t, 1>();
  const auto given = batch.labels.accessor<int64_t, 1>();
  auto t_acc = t.accessor<int64_t, 1>();
  for (int64_t i = 0; i < b; ++i) {
    // The K draws of a sample come from its own generator, in row order.
    auto gen = sample_generator(seed_, RngStream::kTraining, global_step, ids[i]);
    for (int64_t j = 0; j < k; ++j) {
      const int64_t row = i * k + j;
      t_acc[row] = torch::randint(timesteps, {1}, gen, torch::kInt64).item<int64_t>();
      noise[row].normal_(0.0, 1.0, gen);
      if (conditional) {
        const bool dropped = torch::rand({1}, gen).item<double>() < drop;
        labels[row] = dropped ? unet_->null_class() : given[i];
      }
    }
  }
  const torch::Tensor per_row =
      diffusion_loss(*unet_, schedule_, prediction_, x0, labels, t, noise);
  return k == 1 ? per_row : per_row.view({b, k}).mean(1);
}

nlohmann::json PriorTask::evaluate(const std::string& png_path, int64_t step) {
  const int64_t per_class = unet_->num_classes() > 0 ? 8 : 64;
  const auto images = sample_class_grid(*unet_, *autoencoder_, schedule_, prediction_, sampling_,
                                        scale_factor_, per_class, seed_ + 1);
  save_image_grid(png_path, images, per_class);
  (void)step;
  return nlohmann::json::object();
}

torch::Tensor sample_class_grid(UNetImpl& unet, AutoencoderImpl& autoencoder,
                                const NoiseSchedule& schedule, PredictionType type,
                                const SamplerOptions& sampling, double scale_factor,
                                int64_t per_class, uint64_t seed) {
  const int64_t classes = unet.num_classes();
  torch::Tensor labels;
  int64_t n = per_class;
  if (classes > 0) {
    labels = torch::arange(classes, torch::kInt64).repeat_interleave(per_class);
    n = classes * per_class;
  }
  const auto shape = autoencoder.latent_shape();
  const auto latents = sample_latents(unet, schedule, type, sampling, n, shape, labels, seed);
  return decode_latents(autoencoder, latents, scale_factor).clamp(-1, 1);
}

}  // namespace umbra
