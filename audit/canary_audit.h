// The canary step of `umbra audit` (DESIGN.md §9; step 4 of audit/audit_run.h): the run's
// canaries rebuilt from its configuration, scored, guessed, and the one-run bound
// (audit/canary_bound.h) next to the accountant's ε.
//
// Score: the autoencoder's -ELBO in nats of each canary (fixed latent-draw seeds, as the
// membership scores); it sees the canary's pixels directly, where the prior only sees latents.
// Lower loss = guessed IN: the k_in lowest-loss canaries are guessed IN, the k_out highest OUT.
//
// Guesses: r = --canary-guesses (default default_canary_guesses(m)), k_in = floor(r/2),
// k_out = r - k_in. Abstaining on the middle keeps the guesses where the score is most
// confident (Steinke, Nasr, Jagielski 2023 §5); but fewer than 5 guesses can never reject ε = 0
// at 95% (0.5^4 > 0.05), and the bound's ceiling grows with r (10 -> 1.05, 100 -> 3.49,
// 200 -> 4.19, 1000 -> 5.81), so the default is max(10, m/5), at most m.
//
// Thread-safety: pure functions (plus reading <run>/canaries.json).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "audit/run_privacy.h"
#include "data/canaries.h"

namespace umbra {

struct RunCanaries {
  CanaryOptions options;
  SplitData canaries;          // all m canaries; position j = canary j
  std::vector<bool> included;  // the sealed coins
};

// The canaries of the run in `run_dir` (options from its config.yaml), rebuilt for a dataset of
// `meta` (relabel canaries from `test`) and checked against the trainer's <run>/canaries.json
// (count, kind, seed and the number included must agree). nullopt when the run has none.
// Throws umbra::Error naming the file when the record is missing or disagrees.
std::optional<RunCanaries> load_run_canaries(const std::string& run_dir, const CanaryOptions& o,
                                             const DatasetMeta& meta, const SplitData& test);

// min(m, max(10, m / 5)); see above.
int64_t default_canary_guesses(int64_t m);

// summary.json's "canaries" object: present, kind, m, included, guesses, k_in, k_out, correct,
// beta, delta, epsilon_lower_bound, epsilon_ceiling, accountant_epsilon (DP runs, else null),
// score, why (one sentence for the page). `losses` [m]: lower = more likely included.
// guesses <= 0 takes the default; guesses > m is a UsageError. delta = the run's δ (DP) or 0.
nlohmann::json canary_summary(const RunCanaries& c, const std::vector<double>& losses,
                              int64_t guesses, const RunPrivacy& privacy, const std::string& score);

// The "canaries" section of a run without canaries.
nlohmann::json no_canaries_summary();

}  // namespace umbra
