// Membership inference evaluation (DESIGN.md §9): given one score per training member and per
// held-out non-member, where a LOWER score means "more likely a member" (a loss: the diffusion loss
// at fixed t and noise, or the autoencoder's negative ELBO), how well does thresholding the score
// tell them apart?
//
// - ROC: the attack "member iff score <= t" for every threshold t. Points (FPR, TPR) from (0, 0) to
//   (1, 1), one per distinct score value; tied scores move both rates in one step.
// - AUC: exact, = P[member score < non-member score] + 1/2 P[tie] (the Mann-Whitney statistic,
//   computed from average ranks). 0.5 = no information; 1 = perfectly separated.
// - TPR at a low FPR (1%, 0.1%; Carlini et al. 2022, "Membership Inference Attacks From First
//   Principles"): conservative, no interpolation: the highest TPR among the thresholds whose FPR
//   does not exceed the target. With N non-members the achievable FPRs are multiples of 1/N, so
//   with N < 1000 the 0.1% figure is the TPR at FPR = 0 (reported; `nonmembers` says how many).
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace umbra {

struct RocCurve {
  std::vector<double> fpr;  // non-decreasing, from 0 to 1
  std::vector<double> tpr;  // non-decreasing, from 0 to 1
};

struct MembershipResult {
  int64_t members = 0;
  int64_t nonmembers = 0;
  double auc = 0.5;
  double tpr_at_1pct_fpr = 0;
  double tpr_at_0_1pct_fpr = 0;
  RocCurve roc;
  // {"members", "nonmembers", "auc", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr"} (no curve).
  nlohmann::json to_json() const;
};

// Both lists need at least one finite score (non-finite scores are an error naming the list).
RocCurve roc_curve(const std::vector<double>& member_scores,
                   const std::vector<double>& nonmember_scores);
double auc_exact(const std::vector<double>& member_scores,
                 const std::vector<double>& nonmember_scores);
// Highest TPR of the ROC among points with FPR <= max_fpr (see above).
double tpr_at_fpr(const RocCurve& roc, double max_fpr);

MembershipResult evaluate_membership(const std::vector<double>& member_scores,
                                     const std::vector<double>& nonmember_scores);

// The ROC as a self-contained SVG (log-free linear axes, diagonal for reference, AUC in the
// legend), `size` pixels square, for the audit HTML page. Atomic write (temporary + rename).
void write_roc_svg(const std::string& path, const MembershipResult& result,
                   const std::string& title, int size = 360);
std::string roc_svg(const MembershipResult& result, const std::string& title, int size = 360);

}  // namespace umbra
