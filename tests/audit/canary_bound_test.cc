#include "audit/canary_bound.h"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <random>

#include "audit_test_util.h"
#include "core/check.h"
#include "core/rng.h"

namespace umbra {
namespace {

double reference(const std::string& args) {
  int status = 0;
  const std::string out = audit_test::run_python("one_run_bound_reference.py", args, &status);
  EXPECT_EQ(status, 0) << out;
  return std::stod(out);
}

// All r guesses right: P[Bin(r, p) >= r] = p^r = beta, so eps_lb = logit(beta^(1/r)) exactly.
double all_right_closed_form(int64_t r, double beta) {
  const double p = std::pow(beta, 1.0 / static_cast<double>(r));
  return std::log(p / (1 - p));
}

// The hand-computed values, at beta = 0.05 (95 % confidence), delta = 0:
//  - m = 1000 canaries, all 1000 guessed and all right: logit(0.05^(1/1000)) = 5.809 ~ 5.8;
//  - 100 guesses (e.g. the top 50 IN and bottom 50 OUT among m = 1000), all right:
//    logit(0.05^(1/100)) = 3.493 ~ 3.5. The bound depends on r and v only (m just bounds r).
TEST(CanaryBound, HandComputedValues) {
  const double all_1000 = one_run_epsilon_lower_bound(1000, 1000, 1000, 0.05);
  EXPECT_NEAR(all_1000, 5.8, 0.05);
  EXPECT_NEAR(all_1000, all_right_closed_form(1000, 0.05), 1e-9);
  const double all_100 = one_run_epsilon_lower_bound(1000, 100, 100, 0.05);
  EXPECT_NEAR(all_100, 3.5, 0.05);
  EXPECT_NEAR(all_100, all_right_closed_form(100, 0.05), 1e-9);
  EXPECT_EQ(one_run_epsilon_lower_bound(100, 100, 100, 0.05), all_100);
  // Half right is what coin flips give: no evidence of leakage at all.
  EXPECT_EQ(one_run_epsilon_lower_bound(1000, 1000, 500, 0.05), 0.0);
  EXPECT_EQ(one_run_epsilon_lower_bound(1000, 100, 50, 0.05), 0.0);
  EXPECT_EQ(one_run_epsilon_lower_bound(1000, 0, 0, 0.05), 0.0);
}

TEST(CanaryBound, MonotoneInCorrectGuesses) {
  double last = 0;
  for (int64_t v = 450; v <= 1000; v += 10) {
    const double eps = one_run_epsilon_lower_bound(1000, 1000, v, 0.05);
    EXPECT_GE(eps, last) << "v = " << v;
    if (v >= 560) {
      EXPECT_GT(eps, last) << "v = " << v;
    }
    last = eps;
  }
  EXPECT_NEAR(last, all_right_closed_form(1000, 0.05), 1e-9);
  // Higher confidence, smaller bound.
  EXPECT_LT(one_run_epsilon_lower_bound(1000, 1000, 800, 0.01),
            one_run_epsilon_lower_bound(1000, 1000, 800, 0.05));
}

TEST(CanaryBound, MatchesDecimalReference) {
  EXPECT_NEAR(binomial_upper_tail(1000, 0.6, 640), reference("tail 1000 0.6 640"), 1e-12);
  EXPECT_NEAR(binomial_upper_tail(200, 0.99, 199), reference("tail 200 0.99 199"), 1e-12);
  const double tiny = reference("tail 1000 0.5 900");  // ~1e-160: relative accuracy
  EXPECT_NEAR(binomial_upper_tail(1000, 0.5, 900) / tiny, 1.0, 1e-9);
  for (const auto& [m, r, v] : std::vector<std::array<int64_t, 3>>{
           {1000, 1000, 600}, {1000, 200, 180}, {5000, 400, 397}, {1000, 1000, 980}}) {
    const std::string args =
        std::to_string(m) + " " + std::to_string(r) + " " + std::to_string(v) + " 0.05 0";
    EXPECT_NEAR(one_run_epsilon_lower_bound(m, r, v, 0.05), reference("bound " + args), 1e-7)
        << args;
  }
}

// delta > 0 (the paper's (eps, delta) p-value): never above the delta = 0 bound, and equal to the
// same formula evaluated in decimal arithmetic.
TEST(CanaryBound, DeltaVersion) {
  const double pure = one_run_epsilon_lower_bound(1000, 1000, 700, 0.05, 0);
  const double approx = one_run_epsilon_lower_bound(1000, 1000, 700, 0.05, 1e-5);
  EXPECT_LE(approx, pure);
  EXPECT_GT(approx, 0.0);
  EXPECT_NEAR(approx, reference("bound 1000 1000 700 0.05 1e-5"), 1e-7);
  EXPECT_NEAR(one_run_epsilon_lower_bound(1000, 100, 100, 0.05, 1e-6),
              reference("bound 1000 100 100 0.05 1e-6"), 1e-7);
}

TEST(CanaryBound, RejectsBadArguments) {
  EXPECT_THROW(one_run_epsilon_lower_bound(100, 200, 10), Error);
  EXPECT_THROW(one_run_epsilon_lower_bound(100, 50, 60), Error);
  EXPECT_THROW(one_run_epsilon_lower_bound(100, 50, 10, 0.0), Error);
  EXPECT_THROW(one_run_p_value(100, 50, 10, -1.0), Error);
}

TEST(CanaryBound, InclusionComesFromTheSealedSeed) {
  const auto included = canary_inclusion(1234, 4000);
  int64_t in = 0;
  for (int64_t j = 0; j < 4000; ++j) {
    EXPECT_EQ(included[j], rng_uniform(1234, rng_stream(RngStream::kCanary, 0), j) < 0.5);
    in += included[j];
  }
  EXPECT_NEAR(static_cast<double>(in) / 4000, 0.5, 0.03);  // 4 sigma
  EXPECT_NE(canary_inclusion(1235, 64), canary_inclusion(1234, 64));
}

TEST(CanaryBound, GuessesTopAndBottom) {
  // Scores 0..9; canaries 7, 8, 9 IN; guess 2 IN (9, 8: right) and 3 OUT (0, 1, 2: 1 is IN).
  const std::vector<double> scores = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  const std::vector<bool> included = {false, true,  false, false, false,
                                      false, false, true,  true,  true};
  const CanaryGuesses g = guess_canaries(scores, included, 2, 3);
  EXPECT_EQ(g.r, 5);
  EXPECT_EQ(g.v, 4);
  EXPECT_EQ(g.guess, (std::vector<int8_t>{-1, -1, -1, 0, 0, 0, 0, 0, 1, 1}));
  EXPECT_THROW(guess_canaries(scores, included, 6, 5), Error);
}

// End to end on the game itself: a perfectly leaking model (scores reveal the coins) reaches the
// bound's ceiling for its r guesses; a model whose scores are independent of the coins does not.
TEST(CanaryBound, LeakingAndSilentModels) {
  const int64_t m = 1000;
  const auto included = canary_inclusion(99, m);
  std::mt19937_64 rng(5);
  std::normal_distribution<double> noise(0, 1);
  std::vector<double> leaking, silent;
  for (int64_t j = 0; j < m; ++j) {
    leaking.push_back((included[j] ? 10.0 : 0.0) + noise(rng));
    silent.push_back(noise(rng));
  }
  const CanaryAudit a = audit_canaries(leaking, included, 50, 50);
  EXPECT_EQ(a.guesses.v, 100);
  EXPECT_NEAR(a.epsilon_lower_bound, all_right_closed_form(100, 0.05), 1e-9);
  EXPECT_EQ(a.epsilon_lower_bound, a.epsilon_ceiling);
  const CanaryAudit b = audit_canaries(silent, included, 50, 50);
  EXPECT_LT(b.epsilon_lower_bound, 1.0);
  EXPECT_EQ(b.to_json()["guesses"].get<int64_t>(), 100);
}

}  // namespace
}  // namespace umbra
