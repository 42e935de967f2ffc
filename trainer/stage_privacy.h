// The privacy settings a DP stage resolves before its first step (DESIGN.md §5 "Accountants").
//
// Budget split between the stages: both stages train on the same private images with the same
// sample rate q = privacy.expected_batch_size / N and the same noise multiplier σ, and their
// steps compose in one accountant history; the target ε is therefore shared in proportion to
// the steps each stage takes. σ is, in this order of precedence:
//   1. the σ stored in the checkpoint being resumed (a resumed run continues exactly),
//   2. the σ of the stage-1 autoencoder the prior builds on (one σ for the whole run),
//   3. privacy.noise_multiplier when > 0,
//   4. calibrated: the smallest σ for which the history so far plus `planned_steps` more steps
//      (this stage's and, for stage=both, the prior's) stay within privacy.target_epsilon.
// Whatever σ is, StageRunner asks the accountant how many steps the budget still allows and
// stops the stage there (saying so) rather than exceed privacy.target_epsilon.
//
// A prior trained with DP on an autoencoder trained without it would not be private (the
// autoencoder saw the data): refused. Encoding the training set into latents is post-processing
// of the DP autoencoder and costs nothing more.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "privacy/accountant.h"
#include "privacy/privacy_options.h"

namespace umbra {

struct StagePrivacy {
  bool enabled = false;
  PrivacyOptions options;
  std::string stage;  // "autoencoder" | "prior"
  int64_t num_samples = 0;
  int64_t noise_multiplicity = 1;  // K of this stage (1 for the autoencoder)
  double sample_rate = 0.0;
  double noise_multiplier = 0.0;
  std::string noise_multiplier_source;
  Accountant accountant;  // the history before the stage's next step

  // The "privacy" object of a checkpoint's state.json ({"enabled": false} when not private):
  // enabled, accountant (Accountant::to_json), delta, target_epsilon, epsilon (the whole
  // history), noise_multiplier, max_grad_norm, sample_rate, expected_batch_size, num_samples,
  // noise_multiplicity, clipping, secure_mode, noise_multiplier_source.
  nlohmann::json to_json() const;
  // Restores σ and the history from a resumed checkpoint's "privacy" object; throws
  // umbra::Error naming `origin` when it was not private or disagrees with this plan (q, C).
  void resume_from(const nlohmann::json& saved, const std::string& origin);
};

// `earlier`: the "privacy" object of the stage-1 checkpoint the prior builds on (null for the
// autoencoder stage). Throws umbra::Error for an unmeetable target or bad options (key named).
StagePrivacy plan_stage_privacy(const PrivacyOptions& options, const std::string& stage,
                                int64_t num_samples, int64_t noise_multiplicity,
                                const nlohmann::json& earlier, int64_t planned_steps);

}  // namespace umbra
