// `umbra release --run DIR --out DIR [--force]` and `umbra release --verify DIR`
// (DESIGN.md §8, §12). The work itself is audit/release_run.h and audit/release.h.
#include <cstdio>

#include "audit/release.h"
#include "audit/release_run.h"
#include "core/check.h"
#include "launch/verb.h"

namespace umbra {
namespace {

struct ReleaseArgs {
  ReleaseRunOptions run;
  std::string verify;
};

void run_release(const ReleaseArgs& a) {
  if (!a.verify.empty()) {
    UMBRA_USAGE_CHECK(a.run.run_dir.empty() && a.run.out_dir.empty() && !a.run.force,
                      "--verify DIR takes no other option");
    const ReleaseVerification v = verify_release(a.verify);
    UMBRA_CHECK(v.ok(), a.verify, ": release verification failed: ", v.describe());
    std::printf("%s: OK (every file matches SHA256SUMS)\n", a.verify.c_str());
    return;
  }
  UMBRA_USAGE_CHECK(!a.run.run_dir.empty() && !a.run.out_dir.empty(),
                    "give --run DIR and --out DIR (or --verify DIR)");
  const ReleaseRunResult r = release_run(a.run);
  std::printf("%s: released %zu file(s)%s\n", a.run.out_dir.c_str(), r.files.size(),
              r.overridden.empty() ? "" : " WITH --force (recorded in MODEL_CARD.md)");
  for (const auto& f : r.files) std::printf("  %s\n", f.c_str());
}

void add_release(CLI::App& app) {
  auto a = std::make_shared<ReleaseArgs>();
  auto* cmd =
      app.add_subcommand("release",
                         "Bundle an audited run for release (weights, model card, privacy report, "
                         "SHA256SUMS), or verify a bundle");
  cmd->add_option("--run", a->run.run_dir, "Run directory (both stages trained, audited)");
  cmd->add_option("--out", a->run.out_dir, "Bundle directory to create (must not exist)");
  cmd->add_option("--audit", a->run.audit_dir, "Audit directory (default <run>/audit)");
  cmd->add_flag("--force", a->run.force,
                "Release even when the audit is missing, failed a gate or is stale (the model "
                "card says so)");
  cmd->add_option("--verify", a->verify, "Re-hash every file of the bundle DIR against SHA256SUMS");
  cmd->footer(
      "Refuses (exit 1, naming the reason) when <run>/audit/summary.json is missing, the audit "
      "failed a gate,\nor it audited other weights than the run's newest checkpoints, unless "
      "--force.\n--verify exits 1 naming each mismatched, missing or extra file.");
  cmd->callback([a] { run_release(*a); });
}
UMBRA_REGISTER_VERB(add_release, 47);

}  // namespace
}  // namespace umbra
