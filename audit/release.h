// The release bundle (DESIGN.md §8): what leaves the private environment, with its evidence.
//
// Layout of a bundle directory:
//   weights/<name>.safetensors   model weights (validated as safetensors before copying)
//   config.yaml                  the resolved training config
//   MODEL_CARD.md                the model card (DP guarantee, audit results, intended use)
//   privacy_report.json          see check_privacy_report
//   audit/summary.json           the audit summary, plus any audit/<name> files (ROC SVG, redacted
//                                worst-pairs grid, HTML page)
//   samples.png                  a sample grid
//   SHA256SUMS                   "<sha256 hex>  <relative path>" for every other file, sorted
// The bundle is written under a temporary name next to `out_dir` and renamed into place when
// complete (atomic): `out_dir` either does not exist or holds a complete bundle. An existing
// `out_dir` is never overwritten. Only one process (rank 0) writes a bundle.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace umbra {

struct ReleaseContents {
  // (file name under weights/, ending in .safetensors; source path)
  std::vector<std::pair<std::string, std::string>> weights;
  std::string config_yaml;
  std::string model_card;
  nlohmann::json privacy_report;
  nlohmann::json audit_summary;
  // (file name under audit/, not "summary.json"; source path)
  std::vector<std::pair<std::string, std::string>> audit_files;
  std::string sample_grid;  // source path of a PNG
};

// privacy_report.json must be an object with top-level "epsilon", "delta" (numbers, or null for
// a model trained without DP), "accountant" (string) and "stages": an object with one entry per
// trained stage, each holding "noise_multiplier", "max_grad_norm", "sample_rate", "steps"
// (numbers or null). Other keys are free. Throws umbra::Error naming the missing/bad key.
void check_privacy_report(const nlohmann::json& report);

// Writes the bundle to out_dir (see above) and returns the list of files in SHA256SUMS. Throws
// umbra::Error naming the piece (bad name, unreadable source, invalid safetensors or privacy
// report, existing out_dir); nothing is left at out_dir on failure.
std::vector<std::string> write_release(const std::string& out_dir, const ReleaseContents& contents);

struct ReleaseVerification {
  std::vector<std::string> missing;     // listed in SHA256SUMS, absent
  std::vector<std::string> mismatched;  // listed, present, different hash
  std::vector<std::string> extra;       // present, not listed (SHA256SUMS itself excepted)
  bool ok() const { return missing.empty() && mismatched.empty() && extra.empty(); }
  // "OK" or e.g. "mismatched: weights/prior.safetensors; extra: notes.txt".
  std::string describe() const;
};

// Re-hashes every file of a bundle. Throws umbra::Error when `dir` or its SHA256SUMS is missing or
// SHA256SUMS is malformed; otherwise reports what does not match.
ReleaseVerification verify_release(const std::string& dir);

// verify_release, throwing umbra::Error "<dir>: release verification failed: <describe()>" unless
// everything matches.
void check_release(const std::string& dir);

}  // namespace umbra
