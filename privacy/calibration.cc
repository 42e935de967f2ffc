#include "privacy/calibration.h"

#include <cmath>

#include "core/check.h"

namespace umbra {
namespace {

struct Search {
  AccountantKind kind;
  double delta;
  double sample_rate;
  int64_t steps;
  const std::vector<AccountantEntry>& spent;
  int evaluations = 0;

  double epsilon(AccountantKind k, double sigma) {
    ++evaluations;
    std::vector<AccountantEntry> history = spent;
    history.push_back({"calibrated", sigma, sample_rate, steps});
    return compute_epsilon(k, history, delta).epsilon;
  }

  // Bisection keeping ε(lo) > target >= ε(hi) until hi − lo <= tolerance.
  void bisect(AccountantKind k, double& lo, double& hi, double target, double tolerance) {
    while (hi - lo > tolerance) {
      const double mid = 0.5 * (lo + hi);
      (epsilon(k, mid) <= target ? hi : lo) = mid;
    }
  }
};

}  // namespace

CalibrationResult calibrate_noise_multiplier(AccountantKind kind, double target_epsilon,
                                             double delta, double sample_rate, int64_t steps,
                                             const std::vector<AccountantEntry>& spent,
                                             const CalibrationOptions& options) {
  validate_target_epsilon(target_epsilon);
  validate_delta(delta);
  validate_sample_rate(sample_rate);
  validate_steps(steps);
  UMBRA_CHECK(options.sigma_min > 0.0 && options.sigma_min < options.sigma_max,
              "calibration: expected 0 < sigma_min < sigma_max, got [", options.sigma_min, ", ",
              options.sigma_max, "]");
  UMBRA_CHECK(options.tolerance > 0.0, "calibration: tolerance must be > 0, got ",
              options.tolerance);

  Search s{kind, delta, sample_rate, steps, spent};
  CalibrationResult result;
  const double eps_max = s.epsilon(kind, options.sigma_max);
  UMBRA_CHECK(eps_max <= target_epsilon, "target epsilon ", target_epsilon,
              " cannot be met with q=", sample_rate, ", steps=", steps, ", delta=", delta,
              ": even sigma=", options.sigma_max, " gives eps=", eps_max,
              spent.empty() ? "" : " (including the privacy already spent)");
  const double eps_min = s.epsilon(kind, options.sigma_min);
  if (eps_min <= target_epsilon) {
    result.noise_multiplier = options.sigma_min;
    result.epsilon = eps_min;
    result.at_lower_bound = true;
    result.evaluations = s.evaluations;
    return result;
  }

  double lo = options.sigma_min;
  double hi = options.sigma_max;
  if (kind == AccountantKind::kPrv) {
    // σ_rdp meets the target under PRV too (ε_prv <= ε_rdp); walk down to a failing σ.
    double rdp_lo = lo;
    s.bisect(AccountantKind::kRdp, rdp_lo, hi, target_epsilon, options.tolerance);
    double step = 0.05 * hi;
    double below = hi;
    while (true) {
      const double candidate = std::max(options.sigma_min, below - step);
      if (candidate == below) break;
      if (s.epsilon(kind, candidate) > target_epsilon) {
        lo = candidate;
        break;
      }
      hi = below = candidate;
      step *= 2.0;
    }
  }
  s.bisect(kind, lo, hi, target_epsilon, 0.5 * options.tolerance);
  // Round up onto a decimal grid 100x finer than the tolerance, so that the σ a user copies
  // from the printed value is never below the one that met the target.
  const double grid = options.tolerance / 100.0;
  double sigma = std::ceil(hi / grid) * grid;
  double eps = s.epsilon(kind, sigma);
  while (eps > target_epsilon) {  // only if the rounding landed an ulp below hi
    sigma += grid;
    eps = s.epsilon(kind, sigma);
  }
  UMBRA_ASSERT(sigma - options.tolerance <= lo + 1e-12, "calibration overshot: sigma ", sigma,
               " lo ", lo);
  result.noise_multiplier = sigma;
  result.epsilon = eps;
  result.evaluations = s.evaluations;
  return result;
}

}  // namespace umbra
