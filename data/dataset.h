// Reading a packed dataset directory: one split into memory, or every shard for verification.
//
// Both check each shard against its manifest entry (file exists, attributes equal the
// manifest's, count, id range, content hash) and the ids of a split for duplicates, throwing
// umbra::Error that names the shard file. HDF5 runs on the calling thread (data/hdf5_util.h).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "data/manifest.h"
#include "data/shard.h"

namespace umbra {

// A whole split in memory: shards concatenated in manifest order. Position i (0..N-1) is what
// the samplers index; ids[i] is the sample's global id.
struct SplitData {
  std::string dir, split;
  DatasetMeta meta;
  std::vector<uint8_t> images;  // [N, C, H, W]
  std::vector<int64_t> labels;  // [N]
  std::vector<int64_t> ids;     // [N]

  int64_t count() const { return static_cast<int64_t>(labels.size()); }
  const uint8_t* image(int64_t position) const {
    return images.data() + position * meta.image_bytes();
  }
};

// Reads, validates and concatenates every shard of `split`. Each shard file's SHA-256 is
// checked against the manifest before libhdf5 parses it: fuzzing showed libhdf5 1.10 overrunning
// memory on crafted files, so a damaged shard must never reach it (the hash costs ~0.03 s per
// 50 MB).
SplitData load_split(const std::string& dir, const std::string& split);

// Positions of the split's distinct images, ascending: the first of each group of byte-identical
// images (audit/audit_run.h says why the memorisation check needs them).
std::vector<int64_t> distinct_image_positions(const SplitData& split);

// Reads one shard listed in the manifest and checks it against its entry; with
// check_file_hash the file's sha256 is checked first (see load_split).
ShardData read_listed_shard(const std::string& dir, const Manifest& manifest,
                            const ShardSummary& entry, bool check_file_hash);

struct ShardCheck {
  std::string split;
  std::string file;
  bool ok = false;
  std::string error;  // the reason when !ok
};

struct DatasetReport {
  Manifest manifest;
  std::vector<ShardCheck> shards;
  // split -> images per class (only shards that verified contribute).
  std::map<std::string, std::vector<int64_t>> class_counts;
  std::vector<std::string> errors;  // dataset-level problems (ids repeated across shards)
  bool ok() const;
};

// Verifies every shard (file sha256, content hash, manifest agreement) and ids unique across
// all splits. Problems are recorded in the report, not thrown; a missing or invalid manifest
// throws.
DatasetReport verify_dataset(const std::string& dir);

}  // namespace umbra
