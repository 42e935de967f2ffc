// manifest.json: the table of contents of a packed dataset directory (DESIGN.md §4).
//
//   {
//     "format_version": 1, "name": "fashion-mnist", "source": "...",
//     "num_classes": 10, "class_names": [...], "height": 28, "width": 28, "channels": 1,
//     "splits": {
//       "train": {"count": 60000, "shards": [{"file": "train-00000.h5", "count": 10000,
//                  "id_first": 0, "id_last": 9999, "sha256": "...", "content_sha256": "..."}]},
//       "test":  {...}
//     }
//   }
//
// sha256 is of the shard file's bytes, content_sha256 as in data/shard.h. Loading validates
// every field (presence, type, ranges, count = sum of shard counts, plain unique file names) and
// throws umbra::Error naming the manifest path and the field.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "data/shard.h"

namespace umbra {

constexpr int64_t kManifestFormatVersion = 1;
constexpr const char* kManifestFile = "manifest.json";

struct SplitManifest {
  int64_t count = 0;
  std::vector<ShardSummary> shards;  // in id order as written
};

struct Manifest {
  std::string name;
  DatasetMeta meta;
  std::map<std::string, SplitManifest> splits;  // "train" (required), "test", ...

  // Reads and validates <dir>/manifest.json.
  static Manifest load(const std::string& dir);
  // Parses manifest text; `where` names it in errors.
  static Manifest parse(const std::string& text, const std::string& where);
  std::string to_json_text() const;  // pretty-printed, stable key order
  // Writes <dir>/manifest.json (through a temporary name, then rename).
  void save(const std::string& dir) const;

  // Throws naming the manifest when the split does not exist.
  const SplitManifest& split(const std::string& name, const std::string& where) const;
  int64_t total_count() const;  // all splits
};

}  // namespace umbra
