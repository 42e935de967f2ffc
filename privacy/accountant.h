// The privacy accountant the trainer, checkpoints and the `umbra privacy` verbs share.
//
// State = the history of DP-SGD entries (stage, noise_multiplier σ, sample_rate q, steps): every
// step of either stage (autoencoder, prior) on the same private data is one Poisson-subsampled
// Gaussian mechanism, and ε(δ) is always computed over the WHOLE history, so both stages compose
// into the single (ε, δ) of the release (RDP: orders add; PRV/PLD: distributions convolve).
// Kinds (`privacy.accountant`):
//   rdp — Rényi DP with the Balle et al. 2020 conversion (privacy/rdp_accountant.h): fast, looser.
//   prv — privacy loss distribution, connect-the-dots + FFT (privacy/pld_accountant.h): tight
//         upper bound; ~0.05–1 s per ε evaluation.
// The history round-trips through JSON (checkpoints' state.json) with doubles written at full
// precision, so a resumed run reports exactly the ε it had. Resuming never resets the history.
//
// Budget rule ("training refuses to step past the budget"): before a run (or after resuming)
// call steps_until(target, δ, σ, q) once and stop after that many steps; would_exceed() answers
// the same question for a given number of steps (one ε evaluation per call).
//
// Validation: every user-facing value is checked and a bad one throws umbra::Error naming the
// field (privacy.delta, privacy.noise_multiplier, sample_rate, steps).
// Thread-safety: a value type; const methods may run concurrently.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace umbra {

enum class AccountantKind { kRdp, kPrv };

// "rdp" | "prv" ("pld" accepted as a synonym of "prv"); anything else throws an Error naming
// privacy.accountant.
AccountantKind parse_accountant_kind(const std::string& name);
std::string accountant_kind_name(AccountantKind kind);

struct AccountantEntry {
  std::string stage;        // "autoencoder", "prior", ... (non-empty)
  double noise_multiplier;  // σ > 0
  double sample_rate;       // q in (0, 1]
  int64_t steps;            // >= 0
};

// ε(δ) of a history under one accountant, with the details each accountant knows.
struct EpsilonReport {
  AccountantKind kind = AccountantKind::kRdp;
  double epsilon = 0.0;
  double delta = 0.0;
  double rdp_order = 0.0;           // rdp: the optimal order α
  double pld_epsilon_remove = 0.0;  // prv: ε of the remove direction alone
  double pld_epsilon_add = 0.0;     // prv: ε of the add direction alone
  double pld_discretization = 0.0;  // prv: loss grid interval h used
  double pld_error = 0.0;           // prv: estimated excess of ε over the exact value (>= 0)
};

// Checks (throwing umbra::Error that names the field and the value):
void validate_delta(double delta);                        // 0 < δ < 1
void validate_noise_multiplier(double noise_multiplier);  // σ > 0, finite
void validate_sample_rate(double sample_rate);            // 0 < q <= 1
void validate_steps(int64_t steps);                       // steps >= 0
void validate_target_epsilon(double target_epsilon);      // ε > 0, finite
// δ must be below 1/N for a training set of N examples (δ >= 1/N allows releasing one
// example outright). Names privacy.delta and N.
void check_delta_for_dataset(double delta, int64_t dataset_size);

// ε(δ) of a history. estimate_error (prv only) also fills pld_error, at ~1.5x the cost.
EpsilonReport compute_epsilon(AccountantKind kind, const std::vector<AccountantEntry>& history,
                              double delta, bool estimate_error = false);

class Accountant {
 public:
  explicit Accountant(AccountantKind kind = AccountantKind::kRdp,
                      std::vector<AccountantEntry> history = {});

  AccountantKind kind() const { return kind_; }
  const std::vector<AccountantEntry>& history() const { return history_; }
  int64_t total_steps() const;
  int64_t stage_steps(const std::string& stage) const;

  // Appends `steps` steps (0: no-op); merges into the last entry when stage, σ and q are equal.
  void add_steps(const std::string& stage, double noise_multiplier, double sample_rate,
                 int64_t steps);

  double epsilon(double delta) const;
  EpsilonReport report(double delta) const;  // with the prv error estimate

  // ε(δ) after `steps` more steps of (σ, q) exceeds target_epsilon?
  bool would_exceed(double target_epsilon, double delta, double noise_multiplier,
                    double sample_rate, int64_t steps = 1) const;
  // The largest n in [0, max_steps] with ε(δ) of history + n steps of (σ, q) <= target_epsilon
  // (0 when the history alone already exceeds it).
  int64_t steps_until(double target_epsilon, double delta, double noise_multiplier,
                      double sample_rate, int64_t max_steps = int64_t{1} << 40) const;

  // {"accountant": "rdp", "history": [{"stage": ..., "noise_multiplier": ..., "sample_rate": ...,
  //  "steps": ...}, ...]}
  nlohmann::json to_json() const;
  // Throws umbra::Error naming `origin` and the offending field on malformed input.
  static Accountant from_json(const nlohmann::json& j, const std::string& origin = "accountant");

 private:
  AccountantKind kind_;
  std::vector<AccountantEntry> history_;
};

}  // namespace umbra
