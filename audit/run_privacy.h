// The privacy guarantee of a trained run, as the audit and the release state it (DESIGN.md §5, §8).
//
// Source: the "privacy" object of each stage's newest checkpoint state.json (written by the DP
// trainer; trainer/stage_privacy.h):
//   {"enabled": bool, "accountant": {"accountant": "rdp"|"prv", "history": [{"stage",
//    "noise_multiplier", "sample_rate", "steps"}, ...]}, "delta", "target_epsilon", "epsilon",
//    "noise_multiplier", "max_grad_norm", "sample_rate", "expected_batch_size", "num_samples",
//    "noise_multiplicity", "clipping", "secure_mode"}
// A state without "privacy" (or with "enabled": false) is a stage trained without DP.
//
// Rules:
//  - The run has a DP guarantee only when EVERY trained stage was private: the prior trains on
//    latents of the private images, so a non-private stage on either side leaks them.
//  - ε is recomputed from the composed accountant history (privacy/accountant.h) rather than
//    trusted; the number stored by the trainer is reported next to it. The prior's history holds
//    both stages; if it lacks stage-1 steps that the autoencoder's own history records, the
//    autoencoder's entries are composed in (and `composed_by_audit` says so).
//  - Privacy unit: one training image (add/remove-one adjacency), Poisson sampling.
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "privacy/accountant.h"

namespace umbra {

struct StagePrivacyRecord {
  std::string stage;               // "autoencoder" | "prior"
  std::string checkpoint;          // the checkpoint directory the state came from
  int64_t step = 0;                // the checkpoint's step
  bool enabled = false;            // trained with DP-SGD
  nlohmann::json block = nullptr;  // the stored "privacy" object (null when absent)
};

struct RunPrivacy {
  bool dp = false;        // every trained stage was private: the (ε, δ) guarantee holds
  std::string statement;  // one sentence in words (what the guarantee is, or why there is none)
  std::string accountant = "none";
  double epsilon = 0;            // recomputed over the composed history (dp only)
  double epsilon_recorded = -1;  // what the trainer stored (-1: not stored)
  double delta = 0;
  double target_epsilon = -1;  // -1: none configured
  int64_t num_samples = 0;
  bool composed_by_audit = false;
  std::vector<AccountantEntry> history;
  std::vector<StagePrivacyRecord> stages;

  // The "privacy" block of the audit's summary.json (see audit/audit_run.h).
  nlohmann::json to_json() const;
  // privacy_report.json of the release (audit/release.h's check_privacy_report format, plus
  // privacy_unit, sampling, dp, statement, history, per-stage details).
  nlohmann::json report() const;
};

// ae_state / prior_state: state.json of the stages' loaded checkpoints (prior_state may be null
// when the prior was not trained). Throws umbra::Error naming the checkpoint and the field when a
// private stage's block is malformed (no delta, bad accountant history, ...).
RunPrivacy read_run_privacy(const nlohmann::json& ae_state, const nlohmann::json& prior_state);

}  // namespace umbra
