#include "trainer/trained_run.h"

#include <filesystem>

#include "core/check.h"
#include "trainer/stage_runner.h"

namespace fs = std::filesystem;

namespace umbra {

TrainedRun load_trained_run(const std::string& run_dir, bool require_prior) {
  UMBRA_CHECK(fs::is_directory(run_dir), run_dir, ": no such run directory");
  const std::string config = run_dir + "/config.yaml";
  UMBRA_CHECK(fs::is_regular_file(config), config,
              ": missing (is this a run directory written by `umbra train`?)");
  TrainedRun run;
  run.dir = run_dir;
  run.cfg = load_train_config(config, {});
  run.autoencoder = Autoencoder(run.cfg.autoencoder.model);
  run.autoencoder_state =
      StageRunner::load_final_weights(run_dir + "/autoencoder", *run.autoencoder);
  run.autoencoder->eval();
  const bool prior_trained = fs::is_directory(run_dir + "/prior/checkpoints");
  UMBRA_CHECK(prior_trained || !require_prior, run_dir,
              "/prior: the diffusion prior has not been trained (run `umbra train` with "
              "stage=prior or stage=both)");
  if (prior_trained) {
    run.unet = UNet(run.cfg.prior.model, run.cfg.autoencoder.model.z_channels);
    run.prior_state = StageRunner::load_final_weights(run_dir + "/prior", *run.unet);
    run.unet->eval();
    UMBRA_CHECK(run.prior_state.contains("scale_factor"), run.prior_state["checkpoint"],
                "/state.json: missing scale_factor");
    run.scale_factor = run.prior_state["scale_factor"].get<double>();
  }
  return run;
}

torch::Tensor generate_images(TrainedRun& run, int64_t n, const torch::Tensor& labels,
                              const SamplerOptions& options, uint64_t seed) {
  UMBRA_CHECK(run.has_prior(), run.dir, ": no trained prior to sample from");
  const NoiseSchedule schedule = NoiseSchedule::from_options(run.cfg.prior.model);
  const PredictionType type =
      parse_prediction_type(run.cfg.prior.model.prediction_type, "prior.prediction_type");
  torch::Tensor images;
  std::vector<torch::Tensor> parts;
  constexpr int64_t kChunk = 256;
  for (int64_t begin = 0; begin < n; begin += kChunk) {
    const int64_t count = std::min(kChunk, n - begin);
    const torch::Tensor l = labels.defined() ? labels.slice(0, begin, begin + count) : labels;
    const auto latents =
        sample_latents(*run.unet, schedule, type, options, count, run.autoencoder->latent_shape(),
                       l, seed + static_cast<uint64_t>(begin));
    parts.push_back(decode_latents(*run.autoencoder, latents, run.scale_factor).clamp(-1, 1));
  }
  return torch::cat(parts);
}

}  // namespace umbra
