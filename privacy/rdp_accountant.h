// Rényi-DP accountant for the Poisson-subsampled Gaussian mechanism (DP-SGD), add/remove-one
// adjacency.
//
// RDP of one step at order α (Mironov, Talwar, Zhang 2019, "Rényi Differential Privacy of the
// Sampled Gaussian Mechanism"): RDP(α) = log(A_α) / (α − 1) with
//   A_α = E_{z~N(0,σ²)} [ (1 − q + q·exp((2z − 1)/(2σ²)))^α ],
// integer α by the finite binomial expansion, fractional α by the two convergent series split at
// z0 = σ² ln(1/q − 1) + 1/2 (their section 3.3), all in log space. q = 1 gives α/(2σ²), q = 0
// gives 0. Composition adds RDP; conversion to (ε, δ) is Balle et al. 2020 (Prop. 12 of
// arXiv:2004.00010):  ε = min_α [ RDP(α) + ln(1 − 1/α) − (ln δ + ln α)/(α − 1) ],
// together with the KL bound δ ≤ sqrt(1 − exp(−RDP)) that gives ε = 0 when it already holds.
//
// Units: noise_multiplier σ is the noise standard deviation divided by the clipping norm;
// sample_rate q is the Poisson inclusion probability of each example per step.
// Thread-safety: free functions are pure; an RdpAccountant is a value type (thread-compatible).
#pragma once

#include <cstdint>
#include <vector>

namespace umbra {

// The fractional-order series has alternating binomial coefficients beyond i > α.
//  kAbsolute: sum |terms| — an upper bound on A_α (what Google's dp_accounting does today;
//             DESIGN.md §5's vectors, e.g. q=0.01 σ=0.7 T=120 → 3.2392676, use it).
//  kSigned:   the exact alternating sum (Opacus, and dp_accounting before 2023; e.g. Opacus'
//             q=0.04 σ=1.5 T=2250 → 7.32911117143). Integer orders are identical in both.
enum class RdpFractionalSeries { kAbsolute, kSigned };

// 1.1, 1.2, ..., 10.9, 11, 12, ..., 63, 128, 256, 512, 1024 (DESIGN.md §5).
const std::vector<double>& default_rdp_orders();

// RDP of ONE step at order alpha > 1. Returns +inf when the series does not converge (that order
// then simply never wins the minimum). Requires 0 <= q <= 1, sigma > 0.
double rdp_poisson_gaussian(double sample_rate, double noise_multiplier, double alpha,
                            RdpFractionalSeries series = RdpFractionalSeries::kAbsolute);

struct RdpEpsilon {
  double epsilon = 0.0;
  double order = 0.0;  // the α attaining the minimum
};

// log(erfc(x)), accurate also where erfc(x) underflows (x > 26); shared with the PLD accountant.
double log_erfc(double x);

// ε(δ) from total RDP values at the given orders (same length). delta in (0, 1).
RdpEpsilon rdp_to_epsilon(const std::vector<double>& orders, const std::vector<double>& rdp,
                          double delta);

class RdpAccountant {
 public:
  explicit RdpAccountant(std::vector<double> orders = default_rdp_orders(),
                         RdpFractionalSeries series = RdpFractionalSeries::kAbsolute);

  // Adds `steps` steps of the Poisson-subsampled Gaussian with (noise_multiplier, sample_rate).
  void compose(double noise_multiplier, double sample_rate, int64_t steps);

  RdpEpsilon epsilon(double delta) const;

  const std::vector<double>& orders() const { return orders_; }
  const std::vector<double>& rdp() const { return rdp_; }  // total RDP per order

 private:
  std::vector<double> orders_;
  std::vector<double> rdp_;
  RdpFractionalSeries series_;
};

}  // namespace umbra
