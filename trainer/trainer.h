// `umbra train`: both stages of DESIGN.md §1 on one process or under mpirun.
//
//   stage 1  autoencoder on the images           -> <run>/autoencoder/checkpoints/step_<n>
//   encode   the training split with the EMA encoder (posterior means), split over ranks and
//            gathered; multiplied by prior.scale_factor (or 1/std of these latents when 0,
//            which the run records as computed on the training latents)
//   stage 2  diffusion prior on the latents      -> <run>/prior/checkpoints/step_<n>
//
// The run directory <run.dir>/<run.name> holds config.yaml (resolved), logs/rank<r>.log,
// metrics.jsonl, samples/<stage>_step_<n>.png and the checkpoints. Every rank calls train().
#pragma once

#include <nlohmann/json.hpp>

#include "comm/communicator.h"
#include "trainer/batch_source.h"
#include "trainer/train_config.h"

namespace umbra {

struct TrainOutcome {
  std::string run_dir;
  nlohmann::json summary;  // per stage: steps, seconds, images/s, evaluation figures
};

TrainOutcome train(const TrainConfig& cfg, Communicator& comm);

// Encodes positions [0, N) of `split` with the autoencoder's posterior mean, each rank a
// contiguous share, gathered on every rank. Collective.
LatentSet encode_split(AutoencoderImpl& autoencoder, const SplitData& split, Communicator& comm);

}  // namespace umbra
