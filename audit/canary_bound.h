// One-run empirical privacy lower bound (Steinke, Nasr, Jagielski 2023, "Privacy Auditing with
// One (1) Training Run", NeurIPS 2023) and the canary guessing game it scores (DESIGN.md §9).
//
// The game: m canaries, each included in the training set independently with probability 1/2
// (the coin of canary j is rng_uniform(seed, rng_stream(kCanary, 0), j) < 0.5, from a seed kept
// sealed until the audit). After training, the auditor scores every canary, guesses the k_in
// highest-scoring ones IN and the k_out lowest-scoring ones OUT and abstains on the rest:
// r = k_in + k_out guesses, v of them correct.
//
// The bound (delta = 0; the paper's main theorem for pure DP: for an eps-DP algorithm the number of
// correct guesses is stochastically dominated by Binomial(r, p), p = e^eps / (1 + e^eps)):
//   p_value(eps) = P[Binomial(r, p(eps)) >= v],
// increasing in eps. At confidence 1 - beta, every eps with p_value(eps) < beta is rejected, so
//   eps_lb = sup { eps >= 0 : p_value(eps) < beta }       (0 when p_value(0) >= beta),
// found by bisection (the returned value stays on the rejected side, i.e. is conservative).
// Closed form when every guess is right (v = r): p^r = beta, eps_lb = logit(beta^(1/r)); at
// beta = 0.05 that is 5.81 for r = 1000 and 3.49 for r = 100: the bound's ceiling for r guesses,
// whatever m is (m only limits r <= m).
//
// delta > 0 (the paper's theorem for (eps, delta)-DP, as evaluated by the p-value routine it
// gives in its appendix):
//   p_value(eps, delta) = min(1, P[Bin(r, p) >= v] + 2 m delta * max_{i=1..v} P[v-i <= Bin(r, p) <
//   v] / i).
// This p-value is not guaranteed monotone in eps; the bisection (as in the paper) assumes it is.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

#include "data/canaries.h"  // canary_inclusion: the coins the trainer flips

namespace umbra {

// P[Binomial(r, p) >= v] for 0 <= p <= 1 (log-space sum, accurate far into the tails).
double binomial_upper_tail(int64_t r, double p, int64_t v);

// p-value of >= v correct guesses out of r (m canaries) under the null "(eps, delta)-DP".
// Requires 0 <= v <= r <= m, eps >= 0, 0 <= delta <= 1.
double one_run_p_value(int64_t m, int64_t r, int64_t v, double eps, double delta = 0);

// eps_lb at confidence 1 - beta (see above). Requires 0 < beta < 1.
double one_run_epsilon_lower_bound(int64_t m, int64_t r, int64_t v, double beta = 0.05,
                                   double delta = 0);

struct CanaryGuesses {
  int64_t m = 0;              // canaries
  int64_t r = 0;              // guesses made (k_in + k_out)
  int64_t v = 0;              // correct guesses
  std::vector<int8_t> guess;  // per canary: +1 guessed IN, -1 guessed OUT, 0 abstained
};

// Guesses the k_in highest `scores` IN and the k_out lowest OUT (higher score = more likely
// included, e.g. minus the loss; ties broken by canary index) and counts the correct ones against
// `included`. Requires k_in + k_out <= m.
CanaryGuesses guess_canaries(const std::vector<double>& scores, const std::vector<bool>& included,
                             int64_t k_in, int64_t k_out);

struct CanaryAudit {
  CanaryGuesses guesses;
  double beta = 0.05;
  double delta = 0;
  double epsilon_lower_bound = 0;
  double epsilon_ceiling = 0;  // the bound with every one of the r guesses right
  // {"canaries", "guesses", "correct", "beta", "delta", "epsilon_lower_bound", "epsilon_ceiling"}
  nlohmann::json to_json() const;
};

// guess_canaries + the bound (and its ceiling for the same r).
CanaryAudit audit_canaries(const std::vector<double>& scores, const std::vector<bool>& included,
                           int64_t k_in, int64_t k_out, double beta = 0.05, double delta = 0);

}  // namespace umbra
