#include "audit/membership.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "audit/text_file.h"
#include "audit_test_util.h"
#include "core/check.h"

namespace umbra {
namespace {

// O(M N) definition: P[member < non-member] + 1/2 P[tie].
double auc_by_pairs(const std::vector<double>& members, const std::vector<double>& nonmembers) {
  double wins = 0;
  for (double m : members) {
    for (double n : nonmembers) wins += m < n ? 1.0 : (m == n ? 0.5 : 0.0);
  }
  return wins / (static_cast<double>(members.size()) * static_cast<double>(nonmembers.size()));
}

double trapezoid_area(const RocCurve& roc) {
  double area = 0;
  for (size_t i = 1; i < roc.fpr.size(); ++i) {
    area += (roc.fpr[i] - roc.fpr[i - 1]) * 0.5 * (roc.tpr[i] + roc.tpr[i - 1]);
  }
  return area;
}

std::vector<double> draw(std::mt19937_64& rng, int n, double mean, bool integer) {
  std::normal_distribution<double> normal(mean, 1.0);
  std::vector<double> out;
  for (int i = 0; i < n; ++i) out.push_back(integer ? std::round(2 * normal(rng)) : normal(rng));
  return out;
}

TEST(Membership, AucMatchesPairCountingWithTies) {
  std::mt19937_64 rng(7);
  for (bool integer : {false, true}) {  // integer scores: many ties
    const auto members = draw(rng, 300, -0.4, integer), nonmembers = draw(rng, 250, 0.0, integer);
    const double pairs = auc_by_pairs(members, nonmembers);
    EXPECT_NEAR(auc_exact(members, nonmembers), pairs, 1e-12);
    EXPECT_NEAR(trapezoid_area(roc_curve(members, nonmembers)), pairs, 1e-12);
  }
}

TEST(Membership, SameDistributionGivesHalf) {
  std::mt19937_64 rng(11);
  const auto members = draw(rng, 5000, 0.0, false), nonmembers = draw(rng, 5000, 0.0, false);
  const MembershipResult r = evaluate_membership(members, nonmembers);
  // Null standard deviation of the AUC: sqrt((M + N + 1) / (12 M N)) = 0.0058.
  EXPECT_NEAR(r.auc, 0.5, 0.02);
  // Under the null TPR ~ FPR: a few percent at FPR 1 %.
  EXPECT_LT(r.tpr_at_1pct_fpr, 0.03);
  EXPECT_LT(r.tpr_at_0_1pct_fpr, 0.01);
}

TEST(Membership, SeparatedGivesOne) {
  const MembershipResult r = evaluate_membership({0.1, 0.2, 0.3}, {1.0, 2.0, 3.0, 4.0});
  EXPECT_DOUBLE_EQ(r.auc, 1.0);
  EXPECT_DOUBLE_EQ(r.tpr_at_1pct_fpr, 1.0);
  EXPECT_DOUBLE_EQ(r.tpr_at_0_1pct_fpr, 1.0);
  EXPECT_DOUBLE_EQ(evaluate_membership({5, 6}, {1, 2}).auc, 0.0);
  EXPECT_DOUBLE_EQ(evaluate_membership({1, 1}, {1, 1}).auc, 0.5);
}

// Low-FPR operating points by hand: 100 non-members at 1..100, members at 0.5 (x2), 1.5, 50.5.
// Thresholds: <= 0.5 -> TPR 2/4 at FPR 0; <= 1.5 -> TPR 3/4 at FPR 1/100; the next member needs
// FPR 50/100. TPR at 1 % = 0.75, at 0.1 % = 0.5 (only FPR 0 qualifies: no interpolation).
TEST(Membership, TprAtLowFprByHand) {
  std::vector<double> nonmembers;
  for (int i = 1; i <= 100; ++i) nonmembers.push_back(i);
  const MembershipResult r = evaluate_membership({0.5, 0.5, 1.5, 50.5}, nonmembers);
  EXPECT_DOUBLE_EQ(r.tpr_at_1pct_fpr, 0.75);
  EXPECT_DOUBLE_EQ(r.tpr_at_0_1pct_fpr, 0.5);
  EXPECT_DOUBLE_EQ(tpr_at_fpr(r.roc, 0.49), 0.75);
  EXPECT_DOUBLE_EQ(tpr_at_fpr(r.roc, 0.5), 1.0);
  EXPECT_EQ(r.roc.fpr.front(), 0.0);
  EXPECT_EQ(r.roc.fpr.back(), 1.0);
  EXPECT_EQ(r.roc.tpr.back(), 1.0);
  EXPECT_EQ(r.to_json()["nonmembers"].get<int64_t>(), 100);
}

TEST(Membership, RejectsEmptyOrNonFinite) {
  EXPECT_THROW(evaluate_membership({}, {1.0}), Error);
  EXPECT_THROW(evaluate_membership({1.0, std::nan("")}, {1.0}), Error);
}

TEST(Membership, WritesAnSvg) {
  const auto dir = audit_test::temp_dir("roc");
  std::mt19937_64 rng(3);
  const MembershipResult r =
      evaluate_membership(draw(rng, 2000, -1.0, false), draw(rng, 2000, 0.0, false));
  const std::string path = (dir / "roc.svg").string();
  write_roc_svg(path, r, "diffusion loss <t=100> & ELBO");
  const std::string svg = read_text_file(path);
  EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
  EXPECT_NE(svg.find("<polyline"), std::string::npos);
  EXPECT_NE(svg.find("&lt;t=100&gt; &amp; ELBO"), std::string::npos);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  // Python's XML parser accepts it.
  int status = 0;
  const std::string out =
      audit_test::run_command(std::string(UMBRA_PYTHON) +
                                  " -c \"import sys, xml.etree.ElementTree as E; "
                                  "print(E.parse(sys.argv[1]).getroot().tag)\" " +
                                  path + " 2>&1",
                              &status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("svg"), std::string::npos) << out;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace umbra
