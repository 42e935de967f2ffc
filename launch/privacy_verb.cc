// `umbra privacy epsilon|calibrate`: the accountants of privacy/ on the command line.
//
//   umbra privacy epsilon --sample-rate Q --noise-multiplier S --steps T --delta D [--accountant
//   rdp|prv] umbra privacy calibrate --target-epsilon E --delta D --sample-rate Q --steps T
//   [--accountant ...]
//
// The first line of output is the number alone (ε, resp. σ) for scripts; details follow.
// Out-of-range values are usage errors (exit 2); a target no σ can meet is a failure (exit 1).
#include <cstdio>
#include <memory>
#include <string>

#include "core/check.h"
#include "launch/verb.h"
#include "privacy/accountant.h"
#include "privacy/calibration.h"

namespace umbra {
namespace {

struct PrivacyArgs {
  double sample_rate = 0.0;
  double noise_multiplier = 0.0;
  double target_epsilon = 0.0;
  double delta = 0.0;
  int64_t steps = 0;
  std::string accountant = "prv";
};

// A range check of the library, reported as a usage error naming the flag.
template <class F>
void usage_check(const char* flag, F&& check) {
  try {
    check();
  } catch (const Error& e) {
    throw UsageError(std::string(flag) + ": " + e.what());
  }
}

std::string mechanism_line(const PrivacyArgs& a) {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "mechanism: Poisson-subsampled Gaussian, add/remove-one adjacency: q = %.12g, "
                "steps = %lld, delta = %.12g",
                a.sample_rate, static_cast<long long>(a.steps), a.delta);
  return buf;
}

void print_reports(const EpsilonReport& rdp, const EpsilonReport& prv) {
  std::printf("  rdp: epsilon = %.12g at optimal order alpha = %g\n", rdp.epsilon, rdp.rdp_order);
  std::printf(
      "  prv: epsilon = %.12g (remove %.12g, add %.12g); privacy loss distribution, "
      "connect-the-dots, interval %g: an upper bound, above the exact value by about %.2g\n",
      prv.epsilon, prv.pld_epsilon_remove, prv.pld_epsilon_add, prv.pld_discretization,
      prv.pld_error);
}

void run_epsilon(const PrivacyArgs& a) {
  AccountantKind kind{};
  usage_check("--sample-rate", [&] { validate_sample_rate(a.sample_rate); });
  usage_check("--noise-multiplier", [&] { validate_noise_multiplier(a.noise_multiplier); });
  usage_check("--steps", [&] { validate_steps(a.steps); });
  usage_check("--delta", [&] { validate_delta(a.delta); });
  usage_check("--accountant", [&] { kind = parse_accountant_kind(a.accountant); });
  const std::vector<AccountantEntry> history{{"cli", a.noise_multiplier, a.sample_rate, a.steps}};
  const EpsilonReport rdp = compute_epsilon(AccountantKind::kRdp, history, a.delta);
  const EpsilonReport prv = compute_epsilon(AccountantKind::kPrv, history, a.delta, true);
  const EpsilonReport& chosen = kind == AccountantKind::kRdp ? rdp : prv;
  std::printf("%.12g\n", chosen.epsilon);
  std::printf("accountant: %s\n", accountant_kind_name(kind).c_str());
  print_reports(rdp, prv);
  std::printf("%s, sigma = %.12g\n", mechanism_line(a).c_str(), a.noise_multiplier);
}

void run_calibrate(const PrivacyArgs& a) {
  AccountantKind kind{};
  usage_check("--target-epsilon", [&] { validate_target_epsilon(a.target_epsilon); });
  usage_check("--sample-rate", [&] { validate_sample_rate(a.sample_rate); });
  usage_check("--steps", [&] { validate_steps(a.steps); });
  usage_check("--delta", [&] { validate_delta(a.delta); });
  usage_check("--accountant", [&] { kind = parse_accountant_kind(a.accountant); });
  const CalibrationOptions options;
  const CalibrationResult r = calibrate_noise_multiplier(kind, a.target_epsilon, a.delta,
                                                         a.sample_rate, a.steps, {}, options);
  std::printf("%.12g\n", r.noise_multiplier);
  std::printf("accountant: %s; target epsilon %.12g met with epsilon = %.12g\n",
              accountant_kind_name(kind).c_str(), a.target_epsilon, r.epsilon);
  if (r.at_lower_bound) {
    std::printf("  the smallest noise multiplier searched (%g) already meets the target\n",
                options.sigma_min);
  } else {
    std::printf("  smallest sigma within %g (searched [%g, %g], %d epsilon evaluations)\n",
                options.tolerance, options.sigma_min, options.sigma_max, r.evaluations);
  }
  const std::vector<AccountantEntry> history{{"cli", r.noise_multiplier, a.sample_rate, a.steps}};
  print_reports(compute_epsilon(AccountantKind::kRdp, history, a.delta),
                compute_epsilon(AccountantKind::kPrv, history, a.delta, true));
  std::printf("%s\n", mechanism_line(a).c_str());
}

void add_privacy(CLI::App& app) {
  auto* privacy = app.add_subcommand(
      "privacy", "Privacy accounting for DP-SGD: epsilon of a run, or the noise for a target");
  privacy->require_subcommand(1);
  auto args = std::make_shared<PrivacyArgs>();
  const std::string accountant_help =
      "Accountant for the first line: rdp (Renyi DP) or prv (privacy loss distribution, tighter)";

  auto* eps = privacy->add_subcommand(
      "epsilon",
      "Print epsilon of T Poisson-subsampled Gaussian steps (first line: epsilon alone)");
  eps->add_option("--sample-rate", args->sample_rate, "Poisson sampling rate q in (0, 1]")
      ->required();
  eps->add_option("--noise-multiplier", args->noise_multiplier,
                  "Noise standard deviation / clipping norm (sigma > 0)")
      ->required();
  eps->add_option("--steps", args->steps, "Number of steps T >= 0")->required();
  eps->add_option("--delta", args->delta, "Target delta in (0, 1)")->required();
  eps->add_option("--accountant", args->accountant, accountant_help)->capture_default_str();
  eps->callback([args] { run_epsilon(*args); });

  auto* cal = privacy->add_subcommand(
      "calibrate",
      "Print the smallest noise multiplier meeting a target epsilon (first line: sigma alone)");
  cal->add_option("--target-epsilon", args->target_epsilon, "Target epsilon > 0")->required();
  cal->add_option("--delta", args->delta, "Target delta in (0, 1)")->required();
  cal->add_option("--sample-rate", args->sample_rate, "Poisson sampling rate q in (0, 1]")
      ->required();
  cal->add_option("--steps", args->steps, "Number of steps T >= 0")->required();
  cal->add_option("--accountant", args->accountant, accountant_help)->capture_default_str();
  cal->callback([args] { run_calibrate(*args); });
}

UMBRA_REGISTER_VERB(add_privacy, 60);

}  // namespace
}  // namespace umbra
