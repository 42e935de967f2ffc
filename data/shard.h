// One HDF5 shard of a dataset (DESIGN.md §4).
//
// File layout (format_version 1):
//   /images  uint8 [N, C, H, W], chunked by whole images (chunks <= 1 MiB), optional gzip
//   /labels  int64 [N], class index in [0, num_classes)
//   /ids     int64 [N], global sample ids, unique within the dataset and stable forever
//   root attributes: format_version (int64), num_classes (int64), class_names (string list),
//   height, width, channels (int64), source (string), content_sha256 (string: SHA-256 of the
//   image bytes, then the labels, then the ids, as little-endian int64). Strings are
//   fixed-length UTF-8; variable-length strings are refused (see data/hdf5_util.h).
//
// Readers validate everything (dtype, rank, shape against the attributes, counts, label range,
// duplicate ids, storage, content hash) and throw umbra::Error naming the file and what was
// expected. Caveat found by fuzzing: libhdf5 1.10 itself can overrun memory on deliberately
// crafted files (attribute and heap decoding) before Umbra sees any data, so datasets are read
// through load_split/verify_dataset, which check each file's SHA-256 against the manifest
// before libhdf5 opens it; read_shard on an untrusted file relies on libhdf5 alone. All functions
// take the HDF5 lock (data/hdf5_util.h) and may be called from any thread, one at a time.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace umbra {

constexpr int64_t kShardFormatVersion = 1;
// Chunks hold whole images and never exceed this many bytes.
constexpr int64_t kMaxChunkBytes = int64_t{1} << 20;

// What every shard of a dataset (and its manifest) agrees on.
struct DatasetMeta {
  std::string source;                    // where the images came from (free text)
  std::vector<std::string> class_names;  // index = label
  int64_t channels = 0, height = 0, width = 0;

  int64_t num_classes() const { return static_cast<int64_t>(class_names.size()); }
  int64_t image_bytes() const { return channels * height * width; }
  // Throws naming `where` when a field is out of range (no classes, empty names, bad sizes).
  void validate(const std::string& where) const;
};

// A shard's contents, as read from disk.
struct ShardData {
  DatasetMeta meta;
  std::vector<uint8_t> images;  // [N, C, H, W] row-major
  std::vector<int64_t> labels;  // [N]
  std::vector<int64_t> ids;     // [N]
  std::string content_sha256;

  int64_t count() const { return static_cast<int64_t>(labels.size()); }
};

// What the manifest records about a written shard.
struct ShardSummary {
  std::string file;  // name relative to the dataset directory
  int64_t count = 0;
  int64_t id_first = 0, id_last = 0;  // smallest and largest id in the shard
  std::string sha256;                 // of the file's bytes
  std::string content_sha256;         // see the layout above
};

enum class Compression { kNone, kGzip };

struct ShardWriteOptions {
  Compression compression = Compression::kGzip;
  int gzip_level = 1;  // 1..9
};

// SHA-256 over images (n * image_bytes bytes), labels and ids (n int64 each, little-endian).
std::string shard_content_sha256(const uint8_t* images, const int64_t* labels, const int64_t* ids,
                                 int64_t n, int64_t image_bytes);

// Writes a new shard at `path` (which must not exist) and returns its summary (file = the
// path's file name). n >= 1; labels must be in range and ids unique (checked).
ShardSummary write_shard(const std::string& path, const DatasetMeta& meta, const uint8_t* images,
                         const int64_t* labels, const int64_t* ids, int64_t n,
                         const ShardWriteOptions& options = {});

// Opens `path` read-only, reads and validates everything, including the content hash.
ShardData read_shard(const std::string& path);

}  // namespace umbra
