// A finished run, loaded for sampling, auditing and release: the resolved configuration from
// <run>/config.yaml and the EMA weights of each stage's newest complete checkpoint.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "models/autoencoder.h"
#include "models/noise_schedule.h"
#include "models/samplers.h"
#include "models/unet.h"
#include "trainer/train_config.h"

namespace umbra {

struct TrainedRun {
  std::string dir;
  TrainConfig cfg;
  Autoencoder autoencoder{nullptr};
  UNet unet{nullptr};  // null when the prior stage has not been trained
  double scale_factor = 1.0;
  nlohmann::json autoencoder_state, prior_state;  // state.json of the loaded checkpoints

  bool has_prior() const { return !unet.is_empty(); }
};

// Throws umbra::Error naming what is missing: the directory, config.yaml, a stage's checkpoint
// (require_prior), or a checkpoint that does not match the configuration.
TrainedRun load_trained_run(const std::string& run_dir, bool require_prior = true);

// Images in [-1, 1] [n, C, H, W] from the prior (EMA weights), decoded by the autoencoder.
// labels [n] int64 or undefined (unconditional). Deterministic in `seed`.
torch::Tensor generate_images(TrainedRun& run, int64_t n, const torch::Tensor& labels,
                              const SamplerOptions& options, uint64_t seed);

}  // namespace umbra
