// `umbra release`: a trained, audited run -> a release bundle (audit/release.h, DESIGN.md §8).
//
// What goes in: the EMA weights of each stage's newest checkpoint (weights/autoencoder.safetensors,
// weights/prior.safetensors), <run>/config.yaml, MODEL_CARD.md (model_card below),
// privacy_report.json (RunPrivacy::report, audit/run_privacy.h), the audit's summary.json and
// pictures (index.html, ROC SVGs, the worst-pairs grid only when its training images are
// redacted), the audit's sample grid as samples.png, SHA256SUMS.
//
// Refusals (umbra::Error naming the reason; `force` overrides each, and the card says so):
//  - no <audit_dir>/summary.json (run `umbra audit` first);
//  - the audit failed a gate (the gates are named);
//  - the audit is stale: it audited other checkpoints than the run's newest (EMA hashes differ).
// With force and no audit, a 40-image sample grid is generated from the run (seed 0).
// Only one process writes; call it on rank 0 only.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "audit/run_privacy.h"

namespace umbra {

struct ReleaseRunOptions {
  std::string run_dir;
  std::string out_dir;
  std::string audit_dir;  // empty: <run_dir>/audit
  bool force = false;
};

struct ReleaseRunResult {
  std::vector<std::string> files;       // as listed in SHA256SUMS
  std::vector<std::string> overridden;  // refusals that --force overrode (empty without force)
};

ReleaseRunResult release_run(ReleaseRunOptions options);

// MODEL_CARD.md: what the model is, training data, the DP guarantee in words, audit results,
// intended use and limitations, and whether (and why) --force was used.
std::string model_card(const std::string& config_yaml, const nlohmann::json& run_summary,
                       const RunPrivacy& privacy, const nlohmann::json& audit_summary,
                       const std::vector<std::string>& overridden);

}  // namespace umbra
