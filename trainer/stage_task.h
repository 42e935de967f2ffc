// What one training stage optimises: its model and its per-sample loss (DESIGN.md §1, §6).
//
// StageRunner (trainer/stage_runner.h) owns the loop; a StageTask only turns a batch into one
// loss per sample, with randomness keyed by (seed, step, sample id) (trainer/sample_random.h).
//   AutoencoderTask: x [B,C,H,W] in [-1,1] -> negative ELBO terms (NLL + beta KL), nats. [B]
//   PriorTask:       scaled latents [B,z,h,w] -> diffusion loss (mean over K noise draws per
//                    sample when noise_multiplicity K > 1, rows of a sample contiguous). [B]
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "data/batch.h"
#include "models/autoencoder.h"
#include "models/noise_schedule.h"
#include "models/unet.h"
#include "trainer/train_config.h"

namespace umbra {

class StageTask {
 public:
  virtual ~StageTask() = default;
  virtual const char* name() const = 0;  // "autoencoder" | "prior"
  virtual torch::nn::Module& module() = 0;
  // Per-sample training loss [B] for `batch` at `global_step`; K draws per sample averaged.
  virtual torch::Tensor per_sample_loss(const Batch& batch, int64_t global_step,
                                        int64_t noise_multiplicity) = 0;
  // Evaluation with the weights currently in module() (the caller swaps EMA in): writes a
  // picture to `png_path` and returns figures for the log (e.g. held-out bits/dim).
  virtual nlohmann::json evaluate(const std::string& png_path, int64_t step) = 0;
};

class AutoencoderTask : public StageTask {
 public:
  // `heldout` (may be null): test split used for held-out ELBO and the reconstruction grid,
  // without the images that cfg.data.canaries (relabel) took.
  AutoencoderTask(const TrainConfig& cfg, std::shared_ptr<const SplitData> heldout);
  const char* name() const override { return "autoencoder"; }
  torch::nn::Module& module() override { return *model_; }
  Autoencoder& model() { return model_; }
  torch::Tensor per_sample_loss(const Batch& batch, int64_t global_step, int64_t k) override;
  nlohmann::json evaluate(const std::string& png_path, int64_t step) override;

 private:
  Autoencoder model_;
  uint64_t seed_;
  std::shared_ptr<const SplitData> heldout_;
  CanaryOptions canaries_;  // relabel canaries' test images are left out of the held-out set
  int64_t eval_images_;
};

class PriorTask : public StageTask {
 public:
  // `autoencoder` decodes the sample grid; latents are already multiplied by scale_factor.
  PriorTask(const TrainConfig& cfg, Autoencoder autoencoder, double scale_factor);
  const char* name() const override { return "prior"; }
  torch::nn::Module& module() override { return *unet_; }
  UNet& unet() { return unet_; }
  torch::Tensor per_sample_loss(const Batch& batch, int64_t global_step, int64_t k) override;
  nlohmann::json evaluate(const std::string& png_path, int64_t step) override;

 private:
  UNet unet_;
  Autoencoder autoencoder_;
  NoiseSchedule schedule_;
  PredictionType prediction_;
  SamplerOptions sampling_;
  double scale_factor_;
  uint64_t seed_;
};

// A class-conditional grid: `per_class` samples of each class in rows (or one row of
// unconditional samples), decoded to images in [-1, 1]. [num_classes * per_class, C, H, W]
torch::Tensor sample_class_grid(UNetImpl& unet, AutoencoderImpl& autoencoder,
                                const NoiseSchedule& schedule, PredictionType type,
                                const SamplerOptions& sampling, double scale_factor,
                                int64_t per_class, uint64_t seed);

}  // namespace umbra
