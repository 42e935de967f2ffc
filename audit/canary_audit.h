// The canary step of `umbra audit` (DESIGN.md §9; step 4 of audit/audit_run.h): the run's
// canaries rebuilt from its configuration, scored, guessed, and the one-run bound
// (audit/canary_bound.h) next to the accountant's ε.
//
// Score: the autoencoder's -ELBO in nats of each canary (fixed latent-draw seeds, as the
// membership scores), calibrated by the canary's own difficulty: minus the mean -ELBO of its
// reference views (canary_reference_views: the same pixels flipped or rotated so that training
// never showed them, with the same latent draws). The raw -ELBO mostly ranks canaries by how
// complex their pattern is (a plain canary has a low loss whether it was trained on or not); a
// view has exactly the same complexity, so the difference keeps what the model learnt about this
// canary in this orientation. The autoencoder sees the canary's pixels directly, where the prior
// only sees latents. Lower = guessed IN: the k_in lowest are guessed IN, the k_out highest OUT.
// The score uses the model and the public canary pixels only, never the inclusion coins, so the
// one-run bound holds for it as for any score.
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

// The reference views of every canary: images the model was never trained on with exactly the
// canary's pixels, so of the same difficulty. Square images: the 6 elements of the square's
// symmetry group other than the identity and the horizontal flip (training may flip images
// horizontally): vertical flip, rotations by 90, 180 and 270 degrees, both diagonal
// reflections. Other shapes: vertical flip and rotation by 180 degrees. Each view is a split
// like `canaries` (same labels and ids), position j = canary j's view.
std::vector<SplitData> canary_reference_views(const SplitData& canaries);

// losses[j] - mean over views v of view_losses[v][j]: the calibrated canary score (lower = IN).
// Throws when the sizes disagree.
std::vector<double> calibrated_canary_losses(const std::vector<double>& losses,
                                             const std::vector<std::vector<double>>& view_losses);

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
