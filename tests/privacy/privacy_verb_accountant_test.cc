// `umbra privacy epsilon|calibrate` end to end through the real binary: the first line is the
// number alone and equals the library's value; bad values exit 2; impossible targets exit 1.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "privacy/accountant.h"

namespace umbra {
namespace {

struct Result {
  int code;
  std::string out;
  std::string first_line() const { return out.substr(0, out.find('\n')); }
};

Result run(const std::string& args) {
  const std::string cmd = std::string(UMBRA_BINARY) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  EXPECT_NE(p, nullptr);
  Result r{-1, ""};
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

TEST(PrivacyVerb, EpsilonFirstLineIsEpsilon) {
  const Result rdp =
      run("privacy epsilon --sample-rate 0.01 --noise-multiplier 0.7 --steps 120 --delta 1e-5 "
          "--accountant rdp");
  ASSERT_EQ(rdp.code, 0) << rdp.out;
  const std::vector<AccountantEntry> history{{"cli", 0.7, 0.01, 120}};
  EXPECT_NEAR(std::stod(rdp.first_line()),
              compute_epsilon(AccountantKind::kRdp, history, 1e-5).epsilon, 1e-11)
      << rdp.out;
  EXPECT_NEAR(std::stod(rdp.first_line()), 3.2392676, 5e-8) << rdp.out;
  EXPECT_NE(rdp.out.find("optimal order alpha = 4.4"), std::string::npos) << rdp.out;

  const Result prv =
      run("privacy epsilon --sample-rate 0.01 --noise-multiplier 0.7 --steps 120 --delta 1e-5");
  ASSERT_EQ(prv.code, 0) << prv.out;
  EXPECT_NEAR(std::stod(prv.first_line()),
              compute_epsilon(AccountantKind::kPrv, history, 1e-5).epsilon, 1e-11)
      << prv.out;
  EXPECT_NEAR(std::stod(prv.first_line()), 2.4612381, 1e-6) << prv.out;
  EXPECT_NE(prv.out.find("rdp: epsilon = 3.2392676"), std::string::npos) << prv.out;
}

TEST(PrivacyVerb, CalibrateFirstLineIsSigma) {
  const Result r =
      run("privacy calibrate --target-epsilon 8 --delta 1e-5 --sample-rate 0.04 --steps 2000 "
          "--accountant rdp");
  ASSERT_EQ(r.code, 0) << r.out;
  const double sigma = std::stod(r.first_line());
  const std::vector<AccountantEntry> h{{"x", sigma, 0.04, 2000}};
  EXPECT_LE(compute_epsilon(AccountantKind::kRdp, h, 1e-5).epsilon, 8.0);
  const std::vector<AccountantEntry> below{{"x", sigma - 1e-4, 0.04, 2000}};
  EXPECT_GT(compute_epsilon(AccountantKind::kRdp, below, 1e-5).epsilon, 8.0);
}

TEST(PrivacyVerb, BadValuesAreUsageErrors) {
  for (const char* args :
       {"privacy epsilon --sample-rate 1.5 --noise-multiplier 1 --steps 10 --delta 1e-5",
        "privacy epsilon --sample-rate 0.1 --noise-multiplier 0 --steps 10 --delta 1e-5",
        "privacy epsilon --sample-rate 0.1 --noise-multiplier 1 --steps -3 --delta 1e-5",
        "privacy epsilon --sample-rate 0.1 --noise-multiplier 1 --steps 10 --delta 1",
        "privacy epsilon --sample-rate 0.1 --noise-multiplier 1 --steps 10 --delta 1e-5 "
        "--accountant gdp",
        "privacy epsilon --sample-rate abc --noise-multiplier 1 --steps 10 --delta 1e-5",
        "privacy epsilon --noise-multiplier 1 --steps 10 --delta 1e-5",
        "privacy calibrate --target-epsilon -1 --delta 1e-5 --sample-rate 0.1 --steps 10",
        "privacy"}) {
    const Result r = run(args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.out;
  }
  const Result r =
      run("privacy epsilon --sample-rate 1.5 --noise-multiplier 1 --steps 10 --delta 1e-5");
  EXPECT_NE(
      r.out.find("--sample-rate: sample_rate: expected a Poisson sampling rate in (0, 1], got 1.5"),
      std::string::npos)
      << r.out;
}

TEST(PrivacyVerb, ImpossibleTargetFails) {
  const Result r =
      run("privacy calibrate --target-epsilon 0.0001 --delta 1e-5 --sample-rate 1 --steps 100000 "
          "--accountant rdp");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("cannot be met"), std::string::npos) << r.out;
}

TEST(PrivacyVerb, Help) {
  for (const char* args :
       {"privacy --help", "privacy epsilon --help", "privacy calibrate --help"}) {
    const Result r = run(args);
    EXPECT_EQ(r.code, 0) << args;
    EXPECT_NE(r.out.find("--"), std::string::npos) << r.out;
  }
}

}  // namespace
}  // namespace umbra
