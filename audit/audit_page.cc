#include "audit/audit_page.h"

#include <cstdio>
#include <sstream>

#include "core/html_escape.h"

namespace umbra {
namespace {

const nlohmann::json& at(const nlohmann::json& j, std::initializer_list<const char*> path) {
  static const nlohmann::json kNull = nullptr;
  const nlohmann::json* p = &j;
  for (const char* key : path) {
    if (!p->is_object() || !p->contains(key)) return kNull;
    p = &(*p)[key];
  }
  return *p;
}

std::string num(const nlohmann::json& v, const char* format = "%.4g") {
  if (!v.is_number()) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v.get<double>());
  return buf;
}

std::string pct(const nlohmann::json& v) {
  if (!v.is_number()) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f%%", 100 * v.get<double>());
  return buf;
}

std::string str(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "-";
  return v.dump();
}

std::string flag_line(const nlohmann::json& side) {
  return pct(side["flag_rate"]) + " (" + str(side["flagged"]) + "/" + str(side["count"]) + ")";
}

std::string mia_line(const nlohmann::json& m) {
  return "AUC " + num(m["auc"], "%.3f") + ", TPR@1%FPR " + num(m["tpr_at_1pct_fpr"], "%.3f") +
         ", TPR@0.1%FPR " + num(m["tpr_at_0.1pct_fpr"], "%.3f");
}

std::string gate_word(const nlohmann::json& g) {
  if (!g["applicable"].get<bool>()) return "n/a";
  return g["passed"].get<bool>() ? "PASS" : "FAIL";
}

}  // namespace

std::string audit_gates_help() {
  return "Gates (all applicable gates must pass for `umbra release` without --force):\n"
         "  memorization  the fraction of generated samples flagged as copies (Carlini score\n"
         "                r < 1, k = 50, alpha = 0.5) must not exceed the held-out null rate\n"
         "                (real test images, never trained on) by more than --flag-rate-margin\n"
         "                (default 0.01, i.e. 1 percentage point).\n"
         "  canaries      DP runs with canaries: the one-run empirical epsilon lower bound (95%\n"
         "                confidence) must be <= the accountant's epsilon (otherwise the DP\n"
         "                implementation or accounting has a bug). Not applicable without "
         "canaries.\n"
         "  accounting    DP runs with privacy.target_epsilon: epsilon recomputed from the\n"
         "                checkpoint's accountant history must be <= the target.\n";
}

std::string audit_table(const nlohmann::json& s) {
  std::ostringstream out;
  const auto& mem = s["memorization"];
  out << "umbra audit: " << str(s["run"]) << "\n";
  out << "  privacy       " << str(at(s, {"privacy", "statement"})) << "\n";
  if (at(s, {"privacy", "dp"}).is_boolean() && s["privacy"]["dp"].get<bool>()) {
    out << "                epsilon recomputed " << num(s["privacy"]["epsilon"], "%.4f")
        << ", recorded " << num(s["privacy"]["epsilon_recorded"], "%.4f") << ", delta "
        << num(s["privacy"]["delta"], "%.3g") << "\n";
  }
  out << "  memorisation  generated " << flag_line(mem["generated"]) << ", held-out null "
      << flag_line(mem["heldout"]) << "\n";
  out << "  membership    diffusion " << mia_line(at(s, {"membership", "diffusion"})) << "\n"
      << "                ELBO      " << mia_line(at(s, {"membership", "elbo"})) << "\n";
  out << "  canaries      "
      << (at(s, {"canaries", "present"}) == true
              ? "eps_lb " + num(s["canaries"]["epsilon_lower_bound"], "%.3f") + " (" +
                    str(s["canaries"]["correct"]) + "/" + str(s["canaries"]["guesses"]) +
                    " guesses right, ceiling " + num(s["canaries"]["epsilon_ceiling"], "%.3f") +
                    "; " + str(s["canaries"]["m"]) + " " + str(s["canaries"]["kind"]) + " canaries)"
              : "none in this run")
      << "\n";
  const auto& q = s["quality"];
  if (q.is_object() && !q.contains("skipped")) {
    out << "  quality       FID-proxy " << num(q["fid_proxy"], "%.3f") << ", precision "
        << num(q["precision"], "%.3f") << ", recall " << num(q["recall"], "%.3f")
        << ", downstream accuracy " << pct(at(q, {"downstream", "test_accuracy"})) << "\n";
  } else {
    out << "  quality       skipped\n";
  }
  if (s["gates"].is_array()) {
    out << "  gates        ";
    for (const auto& g : s["gates"]) out << " " << str(g["name"]) << " " << gate_word(g) << ";";
    out << "\n";
  }
  out << "  verdict       " << str(s["verdict"]) << "\n";
  return out.str();
}

std::string audit_html(const nlohmann::json& s) {
  std::ostringstream h;
  const auto& mem = s["memorization"];
  h << "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Umbra audit</title>\n"
    << "<style>body{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}"
       "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:4px "
       "8px;text-align:left}.PASS{color:#070;font-weight:bold}.FAIL{color:#b00;font-weight:"
       "bold}img{image-rendering:pixelated;max-width:100%}img.px{zoom:2}</style></head><body>\n";
  h << "<h1>Audit of " << html_escape(str(s["run"])) << "</h1>\n";
  h << "<p>Created " << html_escape(str(s["created"])) << " by " << html_escape(str(s["tool"]))
    << " on " << str(s["world_size"]) << " rank(s). Verdict: <span class=\""
    << (s["passed"] == true ? "PASS" : "FAIL") << "\">" << html_escape(str(s["verdict"]))
    << "</span></p>\n";

  h << "<h2>Gates</h2>\n<table><tr><th>gate</th><th>result</th><th>rule</th><th>why</th></tr>\n";
  if (s["gates"].is_array()) {
    for (const auto& g : s["gates"]) {
      const std::string w = gate_word(g);
      h << "<tr><td>" << html_escape(str(g["name"])) << "</td><td class=\"" << w << "\">" << w
        << "</td><td>" << html_escape(str(g["rule"])) << "</td><td>" << html_escape(str(g["why"]))
        << "</td></tr>\n";
    }
  }
  h << "</table>\n";

  h << "<h2>Privacy</h2>\n<p>" << html_escape(str(at(s, {"privacy", "statement"}))) << "</p>\n";
  if (at(s, {"privacy", "dp"}) == true) {
    h << "<table><tr><th>epsilon (recomputed)</th><td>" << num(s["privacy"]["epsilon"], "%.4f")
      << "</td></tr><tr><th>epsilon (recorded by the trainer)</th><td>"
      << num(s["privacy"]["epsilon_recorded"], "%.4f") << "</td></tr><tr><th>delta</th><td>"
      << num(s["privacy"]["delta"], "%.3g") << "</td></tr><tr><th>accountant</th><td>"
      << html_escape(str(s["privacy"]["accountant"])) << "</td></tr></table>\n";
  }

  h << "<h2>Samples</h2>\n<p>" << str(at(s, {"samples", "count"}))
    << " class-balanced samples; up to 10 per class shown.</p>\n"
    << "<img class=\"px\" src=\"samples.png\" alt=\"sample grid\">\n";

  h << "<h2>Memorisation</h2>\n<table><tr><th></th><th>flag rate</th></tr><tr><td>generated</td>"
    << "<td>" << flag_line(mem["generated"]) << "</td></tr><tr><td>held-out null</td><td>"
    << flag_line(mem["heldout"]) << "</td></tr></table>\n"
    << "<p>Carlini score r = d(g, NN<sub>1</sub>) / (" << num(mem["alpha"])
    << " &middot; mean d to " << str(mem["k"]) << " nearest), flagged when r &lt; 1, over "
    << str(mem["training_images"])
    << " training images. Worst pairs (generated | nearest training image"
    << (mem["training_images_redacted"] == false ? "" : ", redacted: grey tile with its id")
    << "):</p>\n<img class=\"px\" src=\"worst_pairs.png\" alt=\"worst pairs\">\n";

  h << "<h2>Membership inference</h2>\n<table><tr><th>score</th><th>AUC</th><th>TPR@1%FPR</th>"
       "<th>TPR@0.1%FPR</th><th>members / non-members</th></tr>\n";
  for (const char* key : {"diffusion", "elbo"}) {
    const auto& m = at(s, {"membership", key});
    h << "<tr><td>" << html_escape(str(m["score"])) << "</td><td>" << num(m["auc"], "%.3f")
      << "</td><td>" << num(m["tpr_at_1pct_fpr"], "%.3f") << "</td><td>"
      << num(m["tpr_at_0.1pct_fpr"], "%.3f") << "</td><td>" << str(m["members"]) << " / "
      << str(m["nonmembers"]) << "</td></tr>\n";
  }
  h << "</table>\n<img src=\"roc_diffusion.svg\" alt=\"ROC diffusion loss\"> "
       "<img src=\"roc_elbo.svg\" alt=\"ROC ELBO\">\n";

  h << "<h2>Canaries</h2>\n<p>" << html_escape(str(at(s, {"canaries", "why"}))) << "</p>\n";

  h << "<h2>Quality</h2>\n";
  const auto& q = s["quality"];
  if (q.is_object() && !q.contains("skipped")) {
    h << "<table><tr><th>FID-proxy</th><td>" << num(q["fid_proxy"], "%.3f")
      << "</td></tr><tr><th>precision (k=3)</th><td>" << num(q["precision"], "%.3f")
      << "</td></tr><tr><th>recall (k=3)</th><td>" << num(q["recall"], "%.3f")
      << "</td></tr><tr><th>downstream accuracy</th><td>"
      << pct(at(q, {"downstream", "test_accuracy"})) << "</td></tr></table>\n<p>"
      << html_escape(str(at(q, {"feature_classifier", "what"}))) << ". "
      << html_escape(str(at(q, {"downstream", "protocol"}))) << ".</p>\n";
  } else {
    h << "<p>Skipped.</p>\n";
  }
  h << "<h2>Gates, documented</h2>\n<pre>" << html_escape(audit_gates_help()) << "</pre>\n";
  h << "</body></html>\n";
  return h.str();
}

}  // namespace umbra
