#include "audit/canary_bound.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/check.h"

namespace umbra {
namespace {

double log_binomial_pmf(int64_t r, int64_t j, double log_p, double log_q) {
  const double jr = static_cast<double>(j), rr = static_cast<double>(r);
  double out = std::lgamma(rr + 1) - std::lgamma(jr + 1) - std::lgamma(rr - jr + 1);
  // 0 * log(0) = 0: the terms vanish when their exponent is 0 (p = 0 or 1).
  if (j > 0) out += jr * log_p;
  if (j < r) out += (rr - jr) * log_q;
  return out;
}

// P[Bin(r, p) >= v] from log p and log(1 - p) (either may be -inf).
double upper_tail(int64_t r, double log_p, double log_q, int64_t v) {
  if (v <= 0) return 1.0;
  if (v > r) return 0.0;
  double max_log = -INFINITY;
  for (int64_t j = v; j <= r; ++j)
    max_log = std::max(max_log, log_binomial_pmf(r, j, log_p, log_q));
  if (max_log == -INFINITY) return 0.0;
  double sum = 0;
  for (int64_t j = v; j <= r; ++j) sum += std::exp(log_binomial_pmf(r, j, log_p, log_q) - max_log);
  return std::min(1.0, std::exp(max_log) * sum);
}

// log p and log(1 - p) for p = e^eps / (1 + e^eps), accurate for large eps.
void log_probabilities(double eps, double* log_p, double* log_q) {
  *log_p = -std::log1p(std::exp(-eps));
  *log_q = -std::log1p(std::exp(eps));
}

void check_counts(int64_t m, int64_t r, int64_t v) {
  UMBRA_CHECK(0 <= v && v <= r && r <= m,
              "one-run bound: need 0 <= correct <= guesses <= canaries, got correct = ", v,
              ", guesses = ", r, ", canaries = ", m);
}

}  // namespace

double binomial_upper_tail(int64_t r, double p, int64_t v) {
  UMBRA_CHECK(r >= 0 && p >= 0 && p <= 1,
              "binomial_upper_tail: need r >= 0 and 0 <= p <= 1, got r = ", r, ", p = ", p);
  return upper_tail(r, std::log(p), std::log1p(-p), v);
}

double one_run_p_value(int64_t m, int64_t r, int64_t v, double eps, double delta) {
  check_counts(m, r, v);
  UMBRA_CHECK(eps >= 0, "one-run bound: eps must be >= 0, got ", eps);
  UMBRA_CHECK(delta >= 0 && delta <= 1, "one-run bound: delta must be in [0, 1], got ", delta);
  double log_p, log_q;
  log_probabilities(eps, &log_p, &log_q);
  const double tail = upper_tail(r, log_p, log_q, v);
  if (delta == 0) return tail;
  // max over i = 1..v of P[v - i <= Bin(r, p) < v] / i.
  double alpha = 0, mass = 0;
  for (int64_t i = 1; i <= v; ++i) {
    mass += std::exp(log_binomial_pmf(r, v - i, log_p, log_q));
    alpha = std::max(alpha, mass / static_cast<double>(i));
  }
  return std::min(1.0, tail + alpha * delta * 2.0 * static_cast<double>(m));
}

double one_run_epsilon_lower_bound(int64_t m, int64_t r, int64_t v, double beta, double delta) {
  check_counts(m, r, v);
  UMBRA_CHECK(beta > 0 && beta < 1, "one-run bound: beta must be in (0, 1), got ", beta);
  if (one_run_p_value(m, r, v, 0, delta) >= beta) return 0.0;
  // Invariant: p_value(lo) < beta <= p_value(hi).
  double lo = 0, hi = 1;
  while (one_run_p_value(m, r, v, hi, delta) < beta) {
    lo = hi;
    hi *= 2;
    UMBRA_ASSERT(hi < 1e6, "one-run bound: no eps reaches p-value ", beta);
  }
  for (int iter = 0; iter < 100 && hi - lo > 1e-12 * std::max(1.0, hi); ++iter) {
    const double mid = 0.5 * (lo + hi);
    (one_run_p_value(m, r, v, mid, delta) < beta ? lo : hi) = mid;
  }
  return lo;
}

CanaryGuesses guess_canaries(const std::vector<double>& scores, const std::vector<bool>& included,
                             int64_t k_in, int64_t k_out) {
  const int64_t m = static_cast<int64_t>(scores.size());
  UMBRA_CHECK(static_cast<int64_t>(included.size()) == m, "guess_canaries: ", m, " scores but ",
              included.size(), " inclusion bits");
  UMBRA_CHECK(k_in >= 0 && k_out >= 0 && k_in + k_out <= m,
              "guess_canaries: need k_in, k_out >= 0 and k_in + k_out <= canaries (", m,
              "), got k_in = ", k_in, ", k_out = ", k_out);
  for (int64_t j = 0; j < m; ++j) {
    UMBRA_CHECK(!std::isnan(scores[j]), "guess_canaries: score of canary ", j, " is NaN");
  }
  std::vector<int64_t> order(m);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return scores[a] > scores[b]; });
  CanaryGuesses g;
  g.m = m;
  g.r = k_in + k_out;
  g.guess.assign(m, 0);
  for (int64_t i = 0; i < k_in; ++i) g.guess[order[i]] = 1;
  for (int64_t i = m - k_out; i < m; ++i) g.guess[order[i]] = -1;
  for (int64_t j = 0; j < m; ++j) {
    g.v += (g.guess[j] == 1 && included[j]) || (g.guess[j] == -1 && !included[j]);
  }
  return g;
}

nlohmann::json CanaryAudit::to_json() const {
  return {{"canaries", guesses.m},
          {"guesses", guesses.r},
          {"correct", guesses.v},
          {"beta", beta},
          {"delta", delta},
          {"epsilon_lower_bound", epsilon_lower_bound},
          {"epsilon_ceiling", epsilon_ceiling}};
}

CanaryAudit audit_canaries(const std::vector<double>& scores, const std::vector<bool>& included,
                           int64_t k_in, int64_t k_out, double beta, double delta) {
  CanaryAudit audit;
  audit.guesses = guess_canaries(scores, included, k_in, k_out);
  audit.beta = beta;
  audit.delta = delta;
  const CanaryGuesses& g = audit.guesses;
  audit.epsilon_lower_bound = one_run_epsilon_lower_bound(g.m, g.r, g.v, beta, delta);
  audit.epsilon_ceiling = one_run_epsilon_lower_bound(g.m, g.r, g.r, beta, delta);
  return audit;
}

}  // namespace umbra
