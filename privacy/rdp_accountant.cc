#include "privacy/rdp_accountant.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/check.h"

namespace umbra {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

double log_add(double a, double b) {
  if (a == -kInf) return b;
  if (b == -kInf) return a;
  const double hi = std::max(a, b);
  return hi + std::log1p(std::exp(std::min(a, b) - hi));
}

// log(exp(a) − exp(b)); NaN when b >= a (the alternating series lost all precision).
double log_sub(double a, double b) {
  if (b == -kInf) return a;
  if (b >= a) return std::numeric_limits<double>::quiet_NaN();
  return a + std::log1p(-std::exp(b - a));
}

double log_a_integer(double q, double sigma, int64_t alpha) {
  const double log_q = std::log(q);
  const double log_1mq = std::log1p(-q);
  double log_a = -kInf;
  double log_binom = 0.0;  // log C(alpha, i), updated incrementally
  for (int64_t i = 0; i <= alpha; ++i) {
    const double di = static_cast<double>(i);
    const double s = log_binom + di * log_q + static_cast<double>(alpha - i) * log_1mq +
                     (di * di - di) / (2.0 * sigma * sigma);
    log_a = log_add(log_a, s);
    log_binom += std::log(static_cast<double>(alpha - i)) - std::log(di + 1.0);
  }
  return log_a;
}

double log_a_fractional(double q, double sigma, double alpha, RdpFractionalSeries series) {
  // Beyond i > α the terms decay only polynomially (~ i^−(α+2)), so orders near 1 with a large
  // q need thousands of terms; an order that has not converged is dropped (+inf), which can only
  // make ε larger.
  constexpr int kMaxTerms = 20000;
  const double log_q = std::log(q);
  const double log_1mq = std::log1p(-q);
  const double z0 = sigma * sigma * (std::log(1.0 / q - 1.0)) + 0.5;
  const double log_half = std::log(0.5);
  const double sqrt2_sigma = std::sqrt(2.0) * sigma;
  double log_a0 = -kInf, log_a1 = -kInf;
  double last_s0 = -kInf, last_s1 = -kInf;
  double log_binom = 0.0;  // log |C(alpha, i)|
  bool positive = true;    // sign of C(alpha, i)
  for (int i = 0; i < kMaxTerms; ++i) {
    const double di = i;
    const double j = alpha - di;
    const double log_t0 = log_binom + di * log_q + j * log_1mq;
    const double log_t1 = log_binom + j * log_q + di * log_1mq;
    const double log_e0 = log_half + log_erfc((di - z0) / sqrt2_sigma);
    const double log_e1 = log_half + log_erfc((z0 - j) / sqrt2_sigma);
    const double log_s0 = log_t0 + (di * di - di) / (2.0 * sigma * sigma) + log_e0;
    const double log_s1 = log_t1 + (j * j - j) / (2.0 * sigma * sigma) + log_e1;
    if (positive || series == RdpFractionalSeries::kAbsolute) {
      log_a0 = log_add(log_a0, log_s0);
      log_a1 = log_add(log_a1, log_s1);
    } else {
      log_a0 = log_sub(log_a0, log_s0);
      log_a1 = log_sub(log_a1, log_s1);
      if (std::isnan(log_a0) || std::isnan(log_a1)) return kInf;
    }
    const double total = log_add(log_a0, log_a1);
    if (log_s0 < last_s0 && log_s1 < last_s1 && std::max(log_s0, log_s1) < total - 30.0) {
      return total;
    }
    last_s0 = log_s0;
    last_s1 = log_s1;
    // C(alpha, i+1) = C(alpha, i) (alpha − i) / (i + 1); alpha is not an integer, so alpha − i ≠ 0.
    log_binom += std::log(std::abs(alpha - di)) - std::log(di + 1.0);
    if (alpha - di < 0.0) positive = !positive;
  }
  return kInf;
}

}  // namespace

// Beyond x = 25 the asymptotic (Laurent) series of log erfc(x) + x² + log x + log √π at
// infinity, whose first omitted term is O(x⁻¹⁰) < 1e-14.
double log_erfc(double x) {
  if (x < 25.0) return std::log(std::erfc(x));
  const double x2 = 1.0 / (x * x);
  return -0.5 * std::log(M_PI) - std::log(x) - x * x +
         x2 * (-0.5 + x2 * (0.625 + x2 * (-37.0 / 24.0 + x2 * (353.0 / 64.0))));
}

const std::vector<double>& default_rdp_orders() {
  static const std::vector<double> orders = [] {
    std::vector<double> o;
    for (int x = 1; x < 100; ++x) o.push_back(1.0 + x / 10.0);
    for (int a = 11; a < 64; ++a) o.push_back(a);
    for (double a : {128.0, 256.0, 512.0, 1024.0}) o.push_back(a);
    return o;
  }();
  return orders;
}

double rdp_poisson_gaussian(double sample_rate, double noise_multiplier, double alpha,
                            RdpFractionalSeries series) {
  UMBRA_ASSERT(sample_rate >= 0.0 && sample_rate <= 1.0, "sample_rate ", sample_rate);
  UMBRA_ASSERT(noise_multiplier > 0.0, "noise_multiplier ", noise_multiplier);
  UMBRA_ASSERT(alpha > 1.0, "RDP order ", alpha);
  if (sample_rate == 0.0) return 0.0;
  if (std::isinf(alpha)) return kInf;
  if (sample_rate == 1.0) return alpha / (2.0 * noise_multiplier * noise_multiplier);
  double log_a;
  if (alpha == std::floor(alpha) && alpha < 1e6) {
    log_a = log_a_integer(sample_rate, noise_multiplier, static_cast<int64_t>(alpha));
  } else {
    log_a = log_a_fractional(sample_rate, noise_multiplier, alpha, series);
  }
  return log_a / (alpha - 1.0);
}

RdpEpsilon rdp_to_epsilon(const std::vector<double>& orders, const std::vector<double>& rdp,
                          double delta) {
  UMBRA_ASSERT(orders.size() == rdp.size() && !orders.empty(), "orders/rdp sizes ", orders.size(),
               " vs ", rdp.size());
  UMBRA_ASSERT(delta > 0.0 && delta < 1.0, "delta ", delta);
  RdpEpsilon best{kInf, orders.front()};
  for (size_t k = 0; k < orders.size(); ++k) {
    const double a = orders[k];
    const double r = rdp[k];
    double eps;
    if (r <= 0.0) {
      eps = 0.0;  // no privacy loss at all (q = 0), or round-off around it
    } else if (delta * delta + std::expm1(-r) > 0.0) {
      eps = 0.0;  // KL bound: δ ≤ sqrt(1 − exp(−KL)) ≤ sqrt(1 − exp(−RDP(α))) already holds
    } else if (a > 1.01) {
      // Unstable as α → 1, where it is never the minimiser anyway.
      eps = r + std::log1p(-1.0 / a) - std::log(delta * a) / (a - 1.0);
    } else {
      eps = kInf;
    }
    if (eps < best.epsilon) best = {eps, a};
  }
  best.epsilon = std::max(0.0, best.epsilon);
  return best;
}

RdpAccountant::RdpAccountant(std::vector<double> orders, RdpFractionalSeries series)
    : orders_(std::move(orders)), rdp_(orders_.size(), 0.0), series_(series) {
  UMBRA_CHECK(!orders_.empty(), "RDP accountant: expected at least one order");
  for (double a : orders_) UMBRA_CHECK(a > 1.0, "RDP accountant: orders must be > 1, got ", a);
}

void RdpAccountant::compose(double noise_multiplier, double sample_rate, int64_t steps) {
  UMBRA_ASSERT(steps >= 0, "steps ", steps);
  if (steps == 0) return;
  for (size_t k = 0; k < orders_.size(); ++k) {
    rdp_[k] += static_cast<double>(steps) *
               rdp_poisson_gaussian(sample_rate, noise_multiplier, orders_[k], series_);
  }
}

RdpEpsilon RdpAccountant::epsilon(double delta) const {
  return rdp_to_epsilon(orders_, rdp_, delta);
}

}  // namespace umbra
