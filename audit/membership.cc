#include "audit/membership.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <utility>

#include "audit/text_file.h"
#include "core/check.h"
#include "core/html_escape.h"

namespace umbra {
namespace {

void check_scores(const std::vector<double>& scores, const char* which) {
  UMBRA_CHECK(!scores.empty(), "membership inference: no ", which, " scores");
  for (size_t i = 0; i < scores.size(); ++i) {
    UMBRA_CHECK(std::isfinite(scores[i]), "membership inference: ", which, " score ", i,
                " is not finite (", scores[i], ")");
  }
}

// (score, is_member) sorted by score.
std::vector<std::pair<double, bool>> pooled(const std::vector<double>& members,
                                            const std::vector<double>& nonmembers) {
  check_scores(members, "member");
  check_scores(nonmembers, "non-member");
  std::vector<std::pair<double, bool>> all;
  all.reserve(members.size() + nonmembers.size());
  for (double s : members) all.emplace_back(s, true);
  for (double s : nonmembers) all.emplace_back(s, false);
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return all;
}

std::string fmt(double v, const char* format = "%.1f") {
  char buf[64];
  std::snprintf(buf, sizeof(buf), format, v);
  return buf;
}

}  // namespace

nlohmann::json MembershipResult::to_json() const {
  return {{"members", members},
          {"nonmembers", nonmembers},
          {"auc", auc},
          {"tpr_at_1pct_fpr", tpr_at_1pct_fpr},
          {"tpr_at_0.1pct_fpr", tpr_at_0_1pct_fpr}};
}

RocCurve roc_curve(const std::vector<double>& member_scores,
                   const std::vector<double>& nonmember_scores) {
  const auto all = pooled(member_scores, nonmember_scores);
  const double m = static_cast<double>(member_scores.size());
  const double n = static_cast<double>(nonmember_scores.size());
  RocCurve roc;
  roc.fpr.push_back(0);
  roc.tpr.push_back(0);
  int64_t tp = 0, fp = 0;
  for (size_t i = 0; i < all.size();) {
    size_t j = i;
    for (; j < all.size() && all[j].first == all[i].first; ++j) (all[j].second ? tp : fp)++;
    roc.fpr.push_back(static_cast<double>(fp) / n);
    roc.tpr.push_back(static_cast<double>(tp) / m);
    i = j;
  }
  return roc;
}

double auc_exact(const std::vector<double>& member_scores,
                 const std::vector<double>& nonmember_scores) {
  const auto all = pooled(member_scores, nonmember_scores);
  // Sum of the (1-based, tie-averaged) ranks of the non-members: U = R - n(n+1)/2 counts the
  // (member, non-member) pairs with member < non-member, ties counted 1/2.
  double rank_sum = 0;
  for (size_t i = 0; i < all.size();) {
    size_t j = i;
    int64_t nonmembers_in_group = 0;
    for (; j < all.size() && all[j].first == all[i].first; ++j)
      nonmembers_in_group += !all[j].second;
    const double average_rank = 0.5 * static_cast<double>(i + 1 + j);
    rank_sum += average_rank * static_cast<double>(nonmembers_in_group);
    i = j;
  }
  const double m = static_cast<double>(member_scores.size());
  const double n = static_cast<double>(nonmember_scores.size());
  return (rank_sum - n * (n + 1) / 2) / (m * n);
}

double tpr_at_fpr(const RocCurve& roc, double max_fpr) {
  UMBRA_CHECK(roc.fpr.size() == roc.tpr.size() && !roc.fpr.empty(), "tpr_at_fpr: empty ROC");
  double best = 0;
  // Achievable FPRs are k / N; the slack keeps k / N == max_fpr from failing on rounding.
  for (size_t i = 0; i < roc.fpr.size(); ++i) {
    if (roc.fpr[i] <= max_fpr * (1 + 1e-12)) best = std::max(best, roc.tpr[i]);
  }
  return best;
}

MembershipResult evaluate_membership(const std::vector<double>& member_scores,
                                     const std::vector<double>& nonmember_scores) {
  MembershipResult r;
  r.members = static_cast<int64_t>(member_scores.size());
  r.nonmembers = static_cast<int64_t>(nonmember_scores.size());
  r.roc = roc_curve(member_scores, nonmember_scores);
  r.auc = auc_exact(member_scores, nonmember_scores);
  r.tpr_at_1pct_fpr = tpr_at_fpr(r.roc, 0.01);
  r.tpr_at_0_1pct_fpr = tpr_at_fpr(r.roc, 0.001);
  return r;
}

std::string roc_svg(const MembershipResult& result, const std::string& title, int size) {
  UMBRA_CHECK(size >= 120, "roc_svg: size must be >= 120 pixels, got ", size);
  const double margin = 44, plot = size - 2 * margin + 12;
  const double x0 = margin, y0 = margin - 12 + plot;  // plot origin (FPR 0, TPR 0)
  auto px = [&](double fpr) { return x0 + fpr * plot; };
  auto py = [&](double tpr) { return y0 - tpr * plot; };
  std::ostringstream svg;
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << size << "\" height=\"" << size
      << "\" viewBox=\"0 0 " << size << " " << size << "\" font-family=\"sans-serif\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << "<text x=\"" << size / 2 << "\" y=\"18\" text-anchor=\"middle\" font-size=\"13\">"
      << html_escape(title) << "</text>\n"
      << "<rect x=\"" << fmt(x0) << "\" y=\"" << fmt(py(1)) << "\" width=\"" << fmt(plot)
      << "\" height=\"" << fmt(plot) << "\" fill=\"none\" stroke=\"black\"/>\n"
      << "<line x1=\"" << fmt(px(0)) << "\" y1=\"" << fmt(py(0)) << "\" x2=\"" << fmt(px(1))
      << "\" y2=\"" << fmt(py(1)) << "\" stroke=\"#999\" stroke-dasharray=\"4 4\"/>\n";
  for (double t : {0.0, 0.25, 0.5, 0.75, 1.0}) {
    svg << "<text x=\"" << fmt(px(t)) << "\" y=\"" << fmt(y0 + 14)
        << "\" text-anchor=\"middle\" font-size=\"10\">" << fmt(t, "%.2g") << "</text>\n"
        << "<text x=\"" << fmt(x0 - 4) << "\" y=\"" << fmt(py(t) + 3)
        << "\" text-anchor=\"end\" font-size=\"10\">" << fmt(t, "%.2g") << "</text>\n";
  }
  svg << "<text x=\"" << fmt(px(0.5)) << "\" y=\"" << fmt(y0 + 30)
      << "\" text-anchor=\"middle\" font-size=\"11\">false positive rate</text>\n"
      << "<text x=\"12\" y=\"" << fmt(py(0.5)) << "\" text-anchor=\"middle\" font-size=\"11\" "
      << "transform=\"rotate(-90 12 " << fmt(py(0.5)) << ")\">true positive rate</text>\n";
  // The curve, with points closer than 0.1 px merged (large score sets give thousands of points).
  svg << "<polyline fill=\"none\" stroke=\"#1f6fb4\" stroke-width=\"2\" points=\"";
  std::string last;
  for (size_t i = 0; i < result.roc.fpr.size(); ++i) {
    const std::string point = fmt(px(result.roc.fpr[i])) + "," + fmt(py(result.roc.tpr[i]));
    if (point != last) svg << point << " ";
    last = point;
  }
  svg << "\"/>\n"
      << "<text x=\"" << fmt(px(0.97)) << "\" y=\"" << fmt(py(0.06))
      << "\" text-anchor=\"end\" font-size=\"11\">AUC " << fmt(result.auc, "%.3f") << ", TPR@1%FPR "
      << fmt(result.tpr_at_1pct_fpr, "%.3f") << "</text>\n"
      << "</svg>\n";
  return svg.str();
}

void write_roc_svg(const std::string& path, const MembershipResult& result,
                   const std::string& title, int size) {
  write_text_atomic(path, roc_svg(result, title, size));
}

}  // namespace umbra
