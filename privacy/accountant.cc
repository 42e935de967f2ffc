#include "privacy/accountant.h"

#include <cmath>
#include <limits>
#include <utility>

#include "core/check.h"
#include "privacy/pld_accountant.h"
#include "privacy/rdp_accountant.h"

namespace umbra {
namespace {

// Largest n in [lo, max_steps] with fits(n), given fits(lo) (monotone: fits(n) implies fits(m)
// for m < n). Exponential search for a failing bound, then bisection.
template <class Fits>
int64_t largest_fitting(int64_t lo, int64_t max_steps, Fits fits) {
  int64_t hi = std::max<int64_t>(1, lo);
  while (true) {
    hi = hi > max_steps / 2 ? max_steps : hi * 2;
    if (!fits(hi)) break;
    lo = hi;
    if (hi == max_steps) return max_steps;
  }
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    (fits(mid) ? lo : hi) = mid;
  }
  return lo;
}

RdpAccountant rdp_of(const std::vector<AccountantEntry>& history) {
  RdpAccountant rdp;
  for (const AccountantEntry& e : history) rdp.compose(e.noise_multiplier, e.sample_rate, e.steps);
  return rdp;
}

}  // namespace

AccountantKind parse_accountant_kind(const std::string& name) {
  if (name == "rdp") return AccountantKind::kRdp;
  if (name == "prv" || name == "pld") return AccountantKind::kPrv;
  UMBRA_FAIL("privacy.accountant: expected 'rdp' or 'prv', got '", name, "'");
}

std::string accountant_kind_name(AccountantKind kind) {
  return kind == AccountantKind::kRdp ? "rdp" : "prv";
}

void validate_delta(double delta) {
  UMBRA_CHECK(delta > 0.0 && delta < 1.0, "privacy.delta: expected a value in (0, 1), got ", delta);
}

void validate_noise_multiplier(double noise_multiplier) {
  UMBRA_CHECK(noise_multiplier > 0.0 && std::isfinite(noise_multiplier),
              "privacy.noise_multiplier: expected a finite value > 0, got ", noise_multiplier);
}

void validate_sample_rate(double sample_rate) {
  UMBRA_CHECK(sample_rate > 0.0 && sample_rate <= 1.0,
              "sample_rate: expected a Poisson sampling rate in (0, 1], got ", sample_rate);
}

void validate_steps(int64_t steps) {
  UMBRA_CHECK(steps >= 0, "steps: expected a count >= 0, got ", steps);
}

void validate_target_epsilon(double target_epsilon) {
  UMBRA_CHECK(target_epsilon > 0.0 && std::isfinite(target_epsilon),
              "privacy.target_epsilon: expected a finite value > 0, got ", target_epsilon);
}

void check_delta_for_dataset(double delta, int64_t dataset_size) {
  UMBRA_CHECK(dataset_size > 0, "dataset size N: expected at least one training example, got ",
              dataset_size);
  validate_delta(delta);
  UMBRA_CHECK(delta < 1.0 / static_cast<double>(dataset_size), "privacy.delta = ", delta,
              " must be below 1/N = ", 1.0 / static_cast<double>(dataset_size),
              " for a training set of N = ", dataset_size,
              " examples (a delta that large allows publishing one example outright)");
}

EpsilonReport compute_epsilon(AccountantKind kind, const std::vector<AccountantEntry>& history,
                              double delta, bool estimate_error) {
  validate_delta(delta);
  EpsilonReport r;
  r.kind = kind;
  r.delta = delta;
  if (kind == AccountantKind::kRdp) {
    const RdpEpsilon e = rdp_of(history).epsilon(delta);
    r.epsilon = e.epsilon;
    r.rdp_order = e.order;
  } else {
    PldAccountant pld;
    for (const AccountantEntry& e : history)
      pld.compose(e.noise_multiplier, e.sample_rate, e.steps);
    const PldEpsilon e = pld.epsilon(delta);
    r.epsilon = e.epsilon;
    r.pld_epsilon_remove = e.epsilon_remove;
    r.pld_epsilon_add = e.epsilon_add;
    r.pld_discretization = e.discretization;
    if (estimate_error) r.pld_error = pld.discretization_error(delta);
  }
  return r;
}

Accountant::Accountant(AccountantKind kind, std::vector<AccountantEntry> history) : kind_(kind) {
  for (const AccountantEntry& e : history) {
    add_steps(e.stage, e.noise_multiplier, e.sample_rate, e.steps);
  }
}

int64_t Accountant::total_steps() const {
  int64_t total = 0;
  for (const AccountantEntry& e : history_) total += e.steps;
  return total;
}

int64_t Accountant::stage_steps(const std::string& stage) const {
  int64_t total = 0;
  for (const AccountantEntry& e : history_) total += e.stage == stage ? e.steps : 0;
  return total;
}

void Accountant::add_steps(const std::string& stage, double noise_multiplier, double sample_rate,
                           int64_t steps) {
  UMBRA_CHECK(!stage.empty(), "accountant: stage name must not be empty");
  validate_noise_multiplier(noise_multiplier);
  validate_sample_rate(sample_rate);
  validate_steps(steps);
  if (steps == 0) return;
  if (!history_.empty()) {
    AccountantEntry& last = history_.back();
    if (last.stage == stage && last.noise_multiplier == noise_multiplier &&
        last.sample_rate == sample_rate) {
      last.steps += steps;
      return;
    }
  }
  history_.push_back({stage, noise_multiplier, sample_rate, steps});
}

double Accountant::epsilon(double delta) const {
  return compute_epsilon(kind_, history_, delta).epsilon;
}

EpsilonReport Accountant::report(double delta) const {
  return compute_epsilon(kind_, history_, delta, /*estimate_error=*/true);
}

bool Accountant::would_exceed(double target_epsilon, double delta, double noise_multiplier,
                              double sample_rate, int64_t steps) const {
  validate_target_epsilon(target_epsilon);
  std::vector<AccountantEntry> h = history_;
  validate_noise_multiplier(noise_multiplier);
  validate_sample_rate(sample_rate);
  validate_steps(steps);
  h.push_back({"next", noise_multiplier, sample_rate, steps});
  return compute_epsilon(kind_, h, delta).epsilon > target_epsilon;
}

int64_t Accountant::steps_until(double target_epsilon, double delta, double noise_multiplier,
                                double sample_rate, int64_t max_steps) const {
  validate_target_epsilon(target_epsilon);
  validate_delta(delta);
  validate_noise_multiplier(noise_multiplier);
  validate_sample_rate(sample_rate);
  UMBRA_CHECK(max_steps >= 0, "steps_until: max_steps must be >= 0, got ", max_steps);

  // RDP is linear in the step count: one RDP vector per entry, then cheap evaluations.
  const RdpAccountant base = rdp_of(history_);
  RdpAccountant one;
  one.compose(noise_multiplier, sample_rate, 1);
  auto rdp_fits = [&](int64_t n) {
    std::vector<double> total = base.rdp();
    for (size_t k = 0; k < total.size(); ++k) {
      total[k] += static_cast<double>(n) * one.rdp()[k];
    }
    return rdp_to_epsilon(base.orders(), total, delta).epsilon <= target_epsilon;
  };
  if (kind_ == AccountantKind::kRdp) {
    if (!rdp_fits(0)) return 0;
    return largest_fitting(0, max_steps, rdp_fits);
  }
  auto prv_fits = [&](int64_t n) {
    std::vector<AccountantEntry> h = history_;
    h.push_back({"next", noise_multiplier, sample_rate, n});
    return compute_epsilon(AccountantKind::kPrv, h, delta).epsilon <= target_epsilon;
  };
  if (!prv_fits(0)) return 0;
  // ε_prv <= ε_rdp, so the RDP answer is a lower bound on the PRV one.
  const int64_t lower = rdp_fits(0) ? largest_fitting(0, max_steps, rdp_fits) : 0;
  if (lower == max_steps) return max_steps;
  return largest_fitting(lower, max_steps, prv_fits);
}

nlohmann::json Accountant::to_json() const {
  nlohmann::json entries = nlohmann::json::array();
  for (const AccountantEntry& e : history_) {
    entries.push_back({{"stage", e.stage},
                       {"noise_multiplier", e.noise_multiplier},
                       {"sample_rate", e.sample_rate},
                       {"steps", e.steps}});
  }
  return {{"accountant", accountant_kind_name(kind_)}, {"history", entries}};
}

Accountant Accountant::from_json(const nlohmann::json& j, const std::string& origin) {
  UMBRA_CHECK(j.is_object(), origin, ": expected a JSON object with 'accountant' and 'history'");
  UMBRA_CHECK(j.contains("accountant") && j["accountant"].is_string(), origin,
              ": expected a string field 'accountant' (rdp|prv)");
  UMBRA_CHECK(j.contains("history") && j["history"].is_array(), origin,
              ": expected an array field 'history'");
  AccountantKind kind;
  try {
    kind = parse_accountant_kind(j["accountant"].get<std::string>());
  } catch (const Error& e) {
    UMBRA_FAIL(origin, ": ", e.what());
  }
  std::vector<AccountantEntry> history;
  const nlohmann::json& entries = j["history"];
  for (size_t i = 0; i < entries.size(); ++i) {
    const nlohmann::json& e = entries[i];
    const std::string where = origin + ": history[" + std::to_string(i) + "]";
    UMBRA_CHECK(e.is_object(), where, ": expected an object");
    UMBRA_CHECK(e.contains("stage") && e["stage"].is_string(), where, ".stage: expected a string");
    UMBRA_CHECK(e.contains("noise_multiplier") && e["noise_multiplier"].is_number(), where,
                ".noise_multiplier: expected a number");
    UMBRA_CHECK(e.contains("sample_rate") && e["sample_rate"].is_number(), where,
                ".sample_rate: expected a number");
    UMBRA_CHECK(e.contains("steps") && e["steps"].is_number_integer(), where,
                ".steps: expected an integer");
    AccountantEntry entry{e["stage"].get<std::string>(), e["noise_multiplier"].get<double>(),
                          e["sample_rate"].get<double>(), e["steps"].get<int64_t>()};
    try {
      UMBRA_CHECK(!entry.stage.empty(), "stage must not be empty");
      validate_noise_multiplier(entry.noise_multiplier);
      validate_sample_rate(entry.sample_rate);
      validate_steps(entry.steps);
    } catch (const Error& err) {
      UMBRA_FAIL(where, ": ", err.what());
    }
    history.push_back(std::move(entry));
  }
  Accountant a(kind);
  a.history_ = std::move(history);  // exactly as stored (no re-merging)
  return a;
}

}  // namespace umbra
