// `umbra inspect DIR`: print a packed dataset's manifest and verify every shard (file sha256,
// content hash, agreement with the manifest). Exit 1 naming each shard that fails.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "core/check.h"
#include "data/dataset.h"
#include "launch/verb.h"

namespace umbra {
namespace {

// train, test, then any other splits by name.
std::vector<std::string> split_order(const Manifest& m) {
  std::vector<std::string> out;
  for (const char* known : {"train", "test"})
    if (m.splits.count(known)) out.push_back(known);
  for (const auto& [name, sm] : m.splits)
    if (name != "train" && name != "test") out.push_back(name);
  return out;
}

void run_inspect(const std::string& dir) {
  const DatasetReport r = verify_dataset(dir);
  const Manifest& m = r.manifest;
  const std::vector<std::string> splits = split_order(m);
  std::printf("dataset %s (%s)\n", m.name.c_str(), dir.c_str());
  std::printf("source: %s\n", m.meta.source.c_str());
  std::printf("images: uint8 [N, %lld, %lld, %lld] (channels, height, width)\n",
              static_cast<long long>(m.meta.channels), static_cast<long long>(m.meta.height),
              static_cast<long long>(m.meta.width));
  for (const auto& split : splits) {
    const SplitManifest& sm = m.splits.at(split);
    int64_t lo = sm.shards.empty() ? 0 : sm.shards.front().id_first, hi = lo;
    for (const auto& s : sm.shards) {
      lo = std::min(lo, s.id_first);
      hi = std::max(hi, s.id_last);
    }
    std::printf("split %s: %lld images in %zu shard%s, ids %lld..%lld\n", split.c_str(),
                static_cast<long long>(sm.count), sm.shards.size(),
                sm.shards.size() == 1 ? "" : "s", static_cast<long long>(lo),
                static_cast<long long>(hi));
  }
  const bool all_ok = r.ok();
  std::printf("classes: %lld%s\n  %-5s %-20s", static_cast<long long>(m.meta.num_classes()),
              all_ok ? "" : " (images per class counted in the shards that verified)", "label",
              "name");
  for (const auto& split : splits) std::printf(" %10s", split.c_str());
  std::printf("\n");
  for (int64_t k = 0; k < m.meta.num_classes(); ++k) {
    std::printf("  %-5lld %-20s", static_cast<long long>(k), m.meta.class_names[k].c_str());
    for (const auto& split : splits)
      std::printf(" %10lld",
                  static_cast<long long>(r.class_counts.at(split)[static_cast<size_t>(k)]));
    std::printf("\n");
  }
  std::printf("shards:\n");
  std::string failed;
  int n_failed = 0;
  std::vector<const ShardCheck*> ordered;
  for (const auto& split : splits)
    for (const auto& s : r.shards)
      if (s.split == split) ordered.push_back(&s);
  for (const ShardCheck* c : ordered) {
    const ShardCheck& s = *c;
    std::printf("  %-24s %s\n", s.file.c_str(), s.ok ? "ok" : ("FAILED: " + s.error).c_str());
    if (!s.ok) {
      failed += (failed.empty() ? "" : ", ") + s.file;
      ++n_failed;
    }
  }
  for (const auto& e : r.errors) std::printf("  FAILED: %s\n", e.c_str());
  std::fflush(stdout);
  UMBRA_CHECK(r.errors.empty(), r.errors.empty() ? "" : r.errors.front());
  UMBRA_CHECK(n_failed == 0, dir, ": ", n_failed, " of ", r.shards.size(),
              " shards failed verification: ", failed);
  std::printf("verified %zu shards (file sha256 and content hashes match the manifest)\nOK\n",
              r.shards.size());
}

void add_inspect(CLI::App& app) {
  auto* cmd = app.add_subcommand("inspect", "Print a dataset's manifest and verify its shards");
  auto dir = std::make_shared<std::string>();
  cmd->add_option("DIR", *dir, "Dataset directory written by `umbra pack`")->required();
  cmd->callback([dir] { run_inspect(*dir); });
}

UMBRA_REGISTER_VERB(add_inspect, 20);

}  // namespace
}  // namespace umbra
