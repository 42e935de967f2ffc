// PLD (connect-the-dots + FFT) accountant against the analytic Gaussian mechanism (q = 1, where
// the exact ε is known in closed form), Google dp_accounting's published PLD values, and
// Opacus' published PRV bound; plus its stated error and upper-bound properties.
#include "privacy/pld_accountant.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>

#include "privacy/rdp_accountant.h"

namespace umbra {
namespace {

double norm_cdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

// Exact δ(ε) of a Gaussian mechanism with sensitivity/σ ratio μ (Balle & Wang 2018, Thm 8):
// δ = Φ(−ε/μ + μ/2) − e^ε Φ(−ε/μ − μ/2). T steps of σ_i compose to μ² = Σ T_i/σ_i².
double gaussian_delta(double eps, double mu) {
  return norm_cdf(-eps / mu + mu / 2) - std::exp(eps) * norm_cdf(-eps / mu - mu / 2);
}

double gaussian_epsilon(double delta, double mu) {
  double lo = 0.0, hi = 700.0;  // e^ε must stay finite
  for (int i = 0; i < 200; ++i) {
    const double mid = 0.5 * (lo + hi);
    (gaussian_delta(mid, mu) > delta ? lo : hi) = mid;
  }
  return hi;
}

PldEpsilon pld_epsilon(double q, double sigma, int64_t steps, double delta, PldOptions o = {}) {
  PldAccountant acc(o);
  acc.compose(sigma, q, steps);
  return acc.epsilon(delta);
}

double rdp_epsilon(double q, double sigma, int64_t steps, double delta) {
  RdpAccountant acc;
  acc.compose(sigma, q, steps);
  return acc.epsilon(delta).epsilon;
}

// FFT round-off in δ is ~1e-14 absolute; in ε it stays below this for δ >= 1e-8.
constexpr double kRoundOff = 1e-7;

TEST(PldAccountant, NoSubsamplingMatchesAnalyticGaussian) {
  // TF Privacy / dp_accounting: σ = 0.7, 2 steps, δ = 1e-5 → exact ε = 10.1224946.
  const double exact = gaussian_epsilon(1e-5, std::sqrt(2.0) / 0.7);
  EXPECT_NEAR(exact, 10.1224946, 5e-8);
  PldAccountant acc;
  acc.compose(0.7, 1.0, 2);
  const PldEpsilon e = acc.epsilon(1e-5);
  EXPECT_NEAR(e.epsilon, 10.1224946, 1e-6);
  EXPECT_GE(e.epsilon, exact - kRoundOff);
  EXPECT_LE(e.epsilon - exact, 1.5 * acc.discretization_error(1e-5) + kRoundOff);
  // q = 1 is symmetric: both directions are the same Gaussian.
  EXPECT_NEAR(e.epsilon_remove, e.epsilon_add, 1e-9);
}

TEST(PldAccountant, HeterogeneousCompositionMatchesAnalyticGaussian) {
  PldAccountant acc;
  acc.compose(2.0, 1.0, 30);
  acc.compose(5.0, 1.0, 200);
  const double mu = std::sqrt(30 / 4.0 + 200 / 25.0);
  for (double delta : {1e-3, 1e-5, 1e-8}) {
    const double exact = gaussian_epsilon(delta, mu);
    const double eps = acc.epsilon(delta).epsilon;
    EXPECT_GE(eps, exact - kRoundOff) << delta;
    EXPECT_LE(eps - exact, 1.5 * acc.discretization_error(delta) + 10 * kRoundOff) << delta;
    EXPECT_LT(eps - exact, 1e-6) << delta;
  }
  for (double eps : {0.5, 2.0, 5.0, 20.0}) {
    const double exact = gaussian_delta(eps, mu);
    const double d = acc.delta(eps);
    EXPECT_GE(d, exact * (1 - 1e-9)) << eps;
    EXPECT_LE(d, exact * (1 + 1e-5)) << eps;
  }
}

// dp_accounting PLDAccountant (connect-the-dots, interval 1e-4) through TF Privacy's
// compute_dp_sgd_privacy_test: q = 0.01, σ = 0.7, 120 steps, δ = 1e-5 → 2.4612381.
TEST(PldAccountant, DpAccountingSubsampledVector) {
  const PldEpsilon e = pld_epsilon(0.01, 0.7, 120, 1e-5);
  EXPECT_NEAR(e.epsilon, 2.4612381, 1e-6);  // same method and interval: round-off only
  EXPECT_DOUBLE_EQ(e.discretization, 1e-4);
  EXPECT_GT(e.epsilon_remove, e.epsilon_add);  // remove dominates for small q
}

// Opacus PRVAccountant (accountants_test): σ = 1.5, q = 0.04, 2249 steps, δ = 1e-5 → 6.7773957,
// which is its eps_upper = ε̂(δ − δ/1000) + eps_error with eps_error = 0.01. The exact ε lies in
// [eps_upper − 2·eps_error, eps_upper]; our (tighter, still upper) bound must too, and our ε at
// δ − δ/1000 plus 0.01 must reproduce Opacus' number to well within its eps_error.
TEST(PldAccountant, OpacusPrvVector) {
  const double opacus_upper = 6.777395712150674;
  PldAccountant acc;
  acc.compose(1.5, 0.04, 2249);
  const double eps = acc.epsilon(1e-5).epsilon;
  EXPECT_LE(eps, opacus_upper);
  EXPECT_GE(eps, opacus_upper - 0.02);
  EXPECT_NEAR(acc.epsilon(1e-5 - 1e-8).epsilon + 0.01, opacus_upper, 1e-3);
}

TEST(PldAccountant, NeverAboveRdp) {
  struct Case {
    double q, sigma;
    int64_t steps;
    double delta;
  };
  for (const Case& c : {Case{0.0025, 1.3, 6000, 1e-5}, Case{0.001, 1.0, 30000, 1e-7},
                        Case{256.0 / 60000, 1.1, 14063, 1e-5}, Case{0.01, 4.0, 10000, 1e-5},
                        Case{0.01, 0.7, 120, 1e-5}, Case{1.0, 0.7, 2, 1e-5},
                        Case{0.1, 0.8, 100, 1e-6}, Case{0.5, 3.0, 10, 1e-5}}) {
    const double pld = pld_epsilon(c.q, c.sigma, c.steps, c.delta).epsilon;
    const double rdp = rdp_epsilon(c.q, c.sigma, c.steps, c.delta);
    EXPECT_LE(pld, rdp) << "q=" << c.q << " sigma=" << c.sigma << " T=" << c.steps;
    EXPECT_GT(pld, 0.5 * rdp) << "q=" << c.q << " sigma=" << c.sigma << " T=" << c.steps;
  }
}

// The discretisation excess is second order in h: halving h lowers ε (each finer grid is a
// tighter upper bound) by 3/4 of the Richardson estimate (ε(2h) − ε(h))/3 of the excess at h.
TEST(PldAccountant, DiscretisationErrorIsSecondOrderAndEstimated) {
  struct Case {
    double q, sigma;
    int64_t steps;
  };
  for (const Case& c : {Case{0.0025, 1.3, 6000}, Case{0.04, 1.5, 2249}}) {
    PldAccountant coarse;
    coarse.compose(c.sigma, c.q, c.steps);
    PldOptions half;
    half.discretization = 5e-5;
    PldAccountant fine(half);
    fine.compose(c.sigma, c.q, c.steps);
    const double estimate = coarse.discretization_error(1e-5);
    const double drop = coarse.epsilon(1e-5).epsilon - fine.epsilon(1e-5).epsilon;
    EXPECT_GT(drop, 0.0) << c.q;
    EXPECT_NEAR(drop / estimate, 0.75, 0.1) << c.q;
  }
}

TEST(PldAccountant, DeltaAndEpsilonAreInverse) {
  PldAccountant acc;
  acc.compose(1.1, 256.0 / 60000, 14063);
  for (double delta : {1e-4, 1e-5, 1e-7}) {
    const double eps = acc.epsilon(delta).epsilon;
    EXPECT_NEAR(acc.delta(eps), delta, 1e-6 * delta);
  }
}

TEST(PldAccountant, EdgeCases) {
  PldAccountant none;
  EXPECT_EQ(none.epsilon(1e-5).epsilon, 0.0);
  PldAccountant zero_rate;
  zero_rate.compose(1.0, 0.0, 100);
  EXPECT_EQ(zero_rate.epsilon(1e-5).epsilon, 0.0);
  // Small σ: the composed window needs more than max_bins bins at 1e-4, so the grid coarsens;
  // the result stays an upper bound of the exact Gaussian ε (≈ 513 here).
  const double exact = gaussian_epsilon(1e-5, std::sqrt(200.0) / 0.5);
  const PldEpsilon small = pld_epsilon(1.0, 0.5, 200, 1e-5);
  EXPECT_GT(small.discretization, 1e-4);
  EXPECT_GE(small.epsilon, exact - kRoundOff);
  EXPECT_LE(small.epsilon, exact + 1e-3);
}

// Not an assertion on speed beyond a generous bound: prints the timings quoted in the report.
TEST(PldAccountant, Timing) {
  struct Case {
    double q, sigma;
    int64_t steps;
  };
  for (const Case& c : {Case{0.01, 0.7, 120}, Case{0.04, 1.5, 2249}, Case{0.001, 1.0, 30000}}) {
    const auto start = std::chrono::steady_clock::now();
    const PldEpsilon e = pld_epsilon(c.q, c.sigma, c.steps, 1e-5);
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("PLD q=%g sigma=%g T=%lld: eps=%.9f bins=%lld h=%g %.3f s\n", c.q, c.sigma,
                static_cast<long long>(c.steps), e.epsilon, static_cast<long long>(e.bins),
                e.discretization, s);
    EXPECT_LT(s, 10.0);
  }
}

}  // namespace
}  // namespace umbra
