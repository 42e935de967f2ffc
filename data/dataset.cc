#include "data/dataset.h"

#include <algorithm>
#include <filesystem>
#include <string_view>
#include <unordered_map>

#include "core/check.h"
#include "core/sha256.h"

namespace umbra {
namespace fs = std::filesystem;

namespace {

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
  return out;
}

void check_meta(const DatasetMeta& shard, const DatasetMeta& manifest, const std::string& path) {
  UMBRA_CHECK(shard.class_names == manifest.class_names, path, ": class_names [",
              join(shard.class_names), "] differ from the manifest's [", join(manifest.class_names),
              "]");
  UMBRA_CHECK(shard.channels == manifest.channels && shard.height == manifest.height &&
                  shard.width == manifest.width,
              path, ": image shape ", shard.channels, "x", shard.height, "x", shard.width,
              " differs from the manifest's ", manifest.channels, "x", manifest.height, "x",
              manifest.width);
  UMBRA_CHECK(shard.source == manifest.source, path, ": source '", shard.source,
              "' differs from the manifest's '", manifest.source, "'");
}

void check_unique(std::vector<int64_t> ids, const std::string& where) {
  std::sort(ids.begin(), ids.end());
  const auto dup = std::adjacent_find(ids.begin(), ids.end());
  UMBRA_CHECK(dup == ids.end(), where, ": duplicate id ", dup == ids.end() ? 0 : *dup,
              " (ids must be unique across shards and splits)");
}

}  // namespace

ShardData read_listed_shard(const std::string& dir, const Manifest& manifest,
                            const ShardSummary& entry, bool check_file_hash) {
  const std::string path = (fs::path(dir) / entry.file).string();
  std::error_code ec;
  UMBRA_CHECK(fs::is_regular_file(path, ec), path, ": shard listed in ", kManifestFile,
              " is missing");
  if (check_file_hash) {
    const std::string actual = sha256_file(path);
    UMBRA_CHECK(actual == entry.sha256, path, ": file checksum mismatch (manifest sha256 ",
                entry.sha256, ", file hashes to ", actual,
                "); the shard is corrupt or was "
                "replaced");
  }
  ShardData shard = read_shard(path);
  check_meta(shard.meta, manifest.meta, path);
  UMBRA_CHECK(shard.count() == entry.count, path, ": holds ", shard.count(),
              " images, the manifest says ", entry.count);
  const auto [lo, hi] = std::minmax_element(shard.ids.begin(), shard.ids.end());
  UMBRA_CHECK(*lo >= entry.id_first && *hi <= entry.id_last, path, ": ids span [", *lo, ", ", *hi,
              "], outside the manifest's range [", entry.id_first, ", ", entry.id_last, "]");
  UMBRA_CHECK(*lo == entry.id_first && *hi == entry.id_last, path, ": ids span [", *lo, ", ", *hi,
              "], the manifest says [", entry.id_first, ", ", entry.id_last, "]");
  UMBRA_CHECK(shard.content_sha256 == entry.content_sha256, path, ": content_sha256 ",
              shard.content_sha256, " differs from the manifest's ", entry.content_sha256);
  return shard;
}

SplitData load_split(const std::string& dir, const std::string& split) {
  const Manifest manifest = Manifest::load(dir);
  const SplitManifest& sm = manifest.split(split, (fs::path(dir) / kManifestFile).string());
  SplitData out;
  out.dir = dir;
  out.split = split;
  out.meta = manifest.meta;
  out.images.reserve(static_cast<size_t>(sm.count * manifest.meta.image_bytes()));
  out.labels.reserve(static_cast<size_t>(sm.count));
  out.ids.reserve(static_cast<size_t>(sm.count));
  for (const ShardSummary& entry : sm.shards) {
    ShardData shard = read_listed_shard(dir, manifest, entry, true);
    out.images.insert(out.images.end(), shard.images.begin(), shard.images.end());
    out.labels.insert(out.labels.end(), shard.labels.begin(), shard.labels.end());
    out.ids.insert(out.ids.end(), shard.ids.begin(), shard.ids.end());
  }
  check_unique(out.ids, dir + " split '" + split + "'");
  return out;
}

bool DatasetReport::ok() const {
  return errors.empty() &&
         std::all_of(shards.begin(), shards.end(), [](const ShardCheck& s) { return s.ok; });
}

DatasetReport verify_dataset(const std::string& dir) {
  DatasetReport report;
  report.manifest = Manifest::load(dir);
  const Manifest& m = report.manifest;
  std::vector<int64_t> all_ids;
  for (const auto& [split, sm] : m.splits) {
    auto& counts = report.class_counts[split];
    counts.assign(static_cast<size_t>(m.meta.num_classes()), 0);
    for (const ShardSummary& entry : sm.shards) {
      ShardCheck check{split, entry.file, false, ""};
      try {
        ShardData shard = read_listed_shard(dir, m, entry, true);
        for (int64_t label : shard.labels) ++counts[static_cast<size_t>(label)];
        all_ids.insert(all_ids.end(), shard.ids.begin(), shard.ids.end());
        check.ok = true;
      } catch (const Error& e) {
        check.error = e.what();
      }
      report.shards.push_back(std::move(check));
    }
  }
  if (report.ok()) {
    try {
      check_unique(all_ids, dir);
    } catch (const Error& e) {
      report.errors.push_back(e.what());
    }
  }
  return report;
}

std::vector<int64_t> distinct_image_positions(const SplitData& split) {
  const size_t bytes = static_cast<size_t>(split.meta.image_bytes());
  std::unordered_map<std::string_view, int64_t> first;  // content -> first position
  std::vector<int64_t> distinct;
  for (int64_t i = 0; i < split.count(); ++i) {
    const std::string_view content(reinterpret_cast<const char*>(split.image(i)), bytes);
    if (first.emplace(content, i).second) distinct.push_back(i);
  }
  return distinct;
}

}  // namespace umbra
