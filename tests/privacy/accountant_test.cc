// The Accountant interface: history, composition of stages, JSON round-trip (checkpoints),
// the budget rule and input validation.
#include "privacy/accountant.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "core/check.h"

namespace umbra {
namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Accountant, ParsesKinds) {
  EXPECT_EQ(parse_accountant_kind("rdp"), AccountantKind::kRdp);
  EXPECT_EQ(parse_accountant_kind("prv"), AccountantKind::kPrv);
  EXPECT_EQ(parse_accountant_kind("pld"), AccountantKind::kPrv);
  EXPECT_NE(error_of([] { parse_accountant_kind("gdp"); }).find("privacy.accountant"),
            std::string::npos);
}

TEST(Accountant, MergesEqualConsecutiveEntries) {
  Accountant a;
  a.add_steps("autoencoder", 1.0, 0.01, 10);
  a.add_steps("autoencoder", 1.0, 0.01, 5);
  a.add_steps("autoencoder", 1.0, 0.01, 0);
  a.add_steps("prior", 1.0, 0.01, 7);
  a.add_steps("prior", 1.2, 0.01, 3);
  ASSERT_EQ(a.history().size(), 3u);
  EXPECT_EQ(a.history()[0].steps, 15);
  EXPECT_EQ(a.total_steps(), 25);
  EXPECT_EQ(a.stage_steps("prior"), 10);
}

// Two stages on the same data compose: identical (σ, q) in two stages equals one entry with
// the summed steps, and the composition costs more than either stage alone.
TEST(Accountant, StagesCompose) {
  for (AccountantKind kind : {AccountantKind::kRdp, AccountantKind::kPrv}) {
    Accountant both(kind);
    both.add_steps("autoencoder", 1.1, 0.01, 500);
    both.add_steps("prior", 1.1, 0.01, 700);
    Accountant merged(kind);
    merged.add_steps("all", 1.1, 0.01, 1200);
    EXPECT_NEAR(both.epsilon(1e-5), merged.epsilon(1e-5), 1e-9 * merged.epsilon(1e-5));

    Accountant mixed(kind);
    mixed.add_steps("autoencoder", 1.5, 0.02, 800);
    mixed.add_steps("prior", 0.9, 0.005, 2000);
    Accountant first(kind), second(kind);
    first.add_steps("autoencoder", 1.5, 0.02, 800);
    second.add_steps("prior", 0.9, 0.005, 2000);
    const double all = mixed.epsilon(1e-5);
    EXPECT_GT(all, first.epsilon(1e-5));
    EXPECT_GT(all, second.epsilon(1e-5));
    EXPECT_LT(all, first.epsilon(0.5e-5) + second.epsilon(0.5e-5));  // basic composition bound
  }
}

TEST(Accountant, PrvReportIsTighterThanRdp) {
  Accountant rdp(AccountantKind::kRdp), prv(AccountantKind::kPrv);
  for (Accountant* a : {&rdp, &prv}) {
    a->add_steps("autoencoder", 1.0, 0.01, 1000);
    a->add_steps("prior", 1.3, 0.02, 1000);
  }
  const EpsilonReport r = rdp.report(1e-5), p = prv.report(1e-5);
  EXPECT_LT(p.epsilon, r.epsilon);
  EXPECT_GT(r.rdp_order, 1.0);
  EXPECT_EQ(p.pld_discretization, 1e-4);
  EXPECT_EQ(p.epsilon, std::max(p.pld_epsilon_remove, p.pld_epsilon_add));
}

TEST(Accountant, JsonRoundTripIsExact) {
  for (AccountantKind kind : {AccountantKind::kRdp, AccountantKind::kPrv}) {
    Accountant a(kind);
    a.add_steps("autoencoder", 1.0 / 3.0, 256.0 / 60000.0, 1234);
    a.add_steps("prior", 0.7123456789012345, 0.1 / 7.0, 99);
    const std::string text = a.to_json().dump();
    const Accountant b = Accountant::from_json(nlohmann::json::parse(text));
    EXPECT_EQ(b.kind(), kind);
    ASSERT_EQ(b.history().size(), 2u);
    EXPECT_EQ(b.history()[1].noise_multiplier, a.history()[1].noise_multiplier);
    EXPECT_EQ(b.history()[0].sample_rate, a.history()[0].sample_rate);
    EXPECT_EQ(b.epsilon(1e-5), a.epsilon(1e-5));  // bit-identical
  }
}

// Resuming: restore the history and go on — same ε as an uninterrupted run.
TEST(Accountant, ResumeKeepsSpentEpsilon) {
  Accountant run;
  run.add_steps("autoencoder", 1.2, 0.01, 300);
  Accountant resumed = Accountant::from_json(run.to_json());
  resumed.add_steps("autoencoder", 1.2, 0.01, 200);
  Accountant uninterrupted;
  uninterrupted.add_steps("autoencoder", 1.2, 0.01, 500);
  EXPECT_EQ(resumed.epsilon(1e-5), uninterrupted.epsilon(1e-5));
  EXPECT_GT(resumed.epsilon(1e-5), run.epsilon(1e-5));
}

TEST(Accountant, FromJsonRejectsMalformedState) {
  using nlohmann::json;
  EXPECT_NE(error_of([] { Accountant::from_json(json::array(), "state.json"); }).find("state.json"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              Accountant::from_json(json{{"accountant", "xyz"}, {"history", json::array()}});
            }).find("privacy.accountant"),
            std::string::npos);
  const json bad_rate = {
      {"accountant", "rdp"},
      {"history",
       {{{"stage", "prior"}, {"noise_multiplier", 1.0}, {"sample_rate", 1.5}, {"steps", 3}}}}};
  const std::string msg = error_of([&] { Accountant::from_json(bad_rate, "ckpt/state.json"); });
  EXPECT_NE(msg.find("ckpt/state.json: history[0]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("sample_rate"), std::string::npos) << msg;
  const json bad_steps = {
      {"accountant", "rdp"},
      {"history",
       {{{"stage", "prior"}, {"noise_multiplier", 1.0}, {"sample_rate", 0.1}, {"steps", 2.5}}}}};
  EXPECT_NE(error_of([&] { Accountant::from_json(bad_steps); }).find("steps"), std::string::npos);
}

// The budget rule: n = steps_until(...) more steps fit, n + 1 do not.
TEST(Accountant, BudgetCheck) {
  for (AccountantKind kind : {AccountantKind::kRdp, AccountantKind::kPrv}) {
    Accountant a(kind);
    a.add_steps("autoencoder", 1.0, 0.02, 400);
    const double target = 3.0;
    const int64_t n = a.steps_until(target, 1e-5, 1.1, 0.02);
    ASSERT_GT(n, 0);
    EXPECT_FALSE(a.would_exceed(target, 1e-5, 1.1, 0.02, n));
    EXPECT_TRUE(a.would_exceed(target, 1e-5, 1.1, 0.02, n + 1));
    Accountant spent = a;
    spent.add_steps("prior", 1.1, 0.02, n);
    EXPECT_LE(spent.epsilon(1e-5), target);
    EXPECT_EQ(spent.steps_until(target, 1e-5, 1.1, 0.02), 0);
    // Already over budget: nothing more.
    EXPECT_EQ(a.steps_until(0.1, 1e-5, 1.1, 0.02), 0);
    EXPECT_EQ(a.steps_until(target, 1e-5, 1.1, 0.02, 10), 10);  // capped
  }
  // The tighter accountant allows more steps.
  Accountant rdp(AccountantKind::kRdp), prv(AccountantKind::kPrv);
  EXPECT_GT(prv.steps_until(2.0, 1e-5, 1.0, 0.01), rdp.steps_until(2.0, 1e-5, 1.0, 0.01));
}

TEST(Accountant, ValidatesInputs) {
  Accountant a;
  EXPECT_NE(error_of([&] { a.add_steps("prior", 0.0, 0.1, 1); }).find("privacy.noise_multiplier"),
            std::string::npos);
  EXPECT_NE(error_of([&] { a.add_steps("prior", 1.0, 0.0, 1); }).find("sample_rate"),
            std::string::npos);
  EXPECT_NE(error_of([&] { a.add_steps("prior", 1.0, 1.01, 1); }).find("(0, 1]"),
            std::string::npos);
  EXPECT_NE(error_of([&] { a.add_steps("prior", 1.0, 0.1, -1); }).find("steps"), std::string::npos);
  EXPECT_NE(error_of([&] { a.add_steps("", 1.0, 0.1, 1); }).find("stage"), std::string::npos);
  for (double delta : {0.0, 1.0, -1e-5, 2.0}) {
    EXPECT_NE(error_of([&] { a.epsilon(delta); }).find("privacy.delta"), std::string::npos);
  }
  EXPECT_NE(error_of([&] { a.steps_until(-1.0, 1e-5, 1.0, 0.1); }).find("privacy.target_epsilon"),
            std::string::npos);
}

TEST(Accountant, DeltaMustBeBelowOneOverN) {
  check_delta_for_dataset(1e-5, 60000);
  const std::string msg = error_of([] { check_delta_for_dataset(1e-4, 60000); });
  EXPECT_NE(msg.find("privacy.delta"), std::string::npos) << msg;
  EXPECT_NE(msg.find("N = 60000"), std::string::npos) << msg;
  EXPECT_FALSE(error_of([] { check_delta_for_dataset(1.0 / 60000, 60000); }).empty());
  EXPECT_FALSE(error_of([] { check_delta_for_dataset(1e-5, 0); }).empty());
}

}  // namespace
}  // namespace umbra
