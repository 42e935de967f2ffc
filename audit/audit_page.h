// How an audit is shown: the HTML page next to summary.json, the short table `umbra audit`
// prints, and the gates' documentation (shared by --help and summary.json). All take the
// summary.json object written by run_audit (audit/audit_run.h); missing sections print as "-".
// Thread-safety: pure functions.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace umbra {

// A self-contained page; pictures are linked by their names in the same directory.
std::string audit_html(const nlohmann::json& summary);

// A few lines: privacy, memorisation, membership, canaries, quality, verdict.
std::string audit_table(const nlohmann::json& summary);

std::string audit_gates_help();

}  // namespace umbra
