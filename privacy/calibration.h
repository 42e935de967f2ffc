// Noise calibration: the smallest noise multiplier σ that keeps ε(δ) within a target for a
// planned run of `steps` Poisson-subsampled Gaussian steps at rate q — optionally on top of an
// already spent history (e.g. stage 2 after stage 1 on the same data), so the composed ε of
// both stages meets the target.
//
// ε is non-increasing in σ, so bisection over [sigma_min, sigma_max] works; the result σ* has
// ε(σ*) <= target and ε(σ* − tolerance) > target (σ* is the smallest within `tolerance`), and
// σ* is a multiple of tolerance/100, so printing it with 10 significant digits loses nothing.
// With the prv accountant, the RDP answer (an upper bound on σ*, since ε_prv <= ε_rdp) brackets
// the search so only ~12 PLD evaluations are needed.
// Errors (umbra::Error): invalid inputs (field named), and a target that no σ in range meets:
//   "target epsilon 0.01 cannot be met with q=0.5, steps=10000, delta=1e-05: even sigma=1000
//    gives eps=..."
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <vector>

#include "privacy/accountant.h"

namespace umbra {

struct CalibrationOptions {
  double sigma_min = 0.1;
  double sigma_max = 1000.0;
  double tolerance = 1e-4;  // absolute, on σ
};

struct CalibrationResult {
  double noise_multiplier = 0.0;  // σ*
  double epsilon = 0.0;           // ε(δ) at σ* (history included)
  int evaluations = 0;            // ε evaluations the search used
  bool at_lower_bound = false;    // sigma_min already meets the target
};

CalibrationResult calibrate_noise_multiplier(AccountantKind kind, double target_epsilon,
                                             double delta, double sample_rate, int64_t steps,
                                             const std::vector<AccountantEntry>& spent = {},
                                             const CalibrationOptions& options = {});

}  // namespace umbra
