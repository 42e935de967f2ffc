// Writes a dataset directory (shards + manifest.json) so that an interrupted pack never damages
// anything: everything goes to "<out>.partial-<pid>" next to <out>, and finish() renames it into
// place only when every shard and the manifest are complete. A writer destroyed without
// finish() (an exception, a failed import) removes its partial directory.
//
// Single-threaded; HDF5 calls happen on the calling thread (see data/hdf5_util.h).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "data/manifest.h"
#include "data/shard.h"

namespace umbra {

struct PackOptions {
  int64_t shard_size = 10000;  // images per shard (the last shard of a split may hold fewer)
  ShardWriteOptions shard;     // compression
  bool force = false;          // replace an existing, non-empty output directory
};

class DatasetWriter {
 public:
  // Throws when out_dir exists, is not an empty directory, and options.force is false.
  DatasetWriter(std::string out_dir, std::string name, DatasetMeta meta, PackOptions options);
  ~DatasetWriter();
  DatasetWriter(const DatasetWriter&) = delete;
  DatasetWriter& operator=(const DatasetWriter&) = delete;

  // Appends n images ([n, C, H, W] bytes) with labels and global ids to `split`; a shard is
  // written whenever shard_size images are buffered. Splits may be interleaved.
  void add(const std::string& split, const uint8_t* images, const int64_t* labels,
           const int64_t* ids, int64_t n);

  // Writes the remaining shards and the manifest, checks that ids are unique across the whole
  // dataset, and renames the directory into place. Returns the manifest written.
  Manifest finish();

  const std::string& partial_dir() const { return partial_dir_; }

 private:
  struct Pending {
    std::vector<uint8_t> images;
    std::vector<int64_t> labels, ids;
    int64_t shards_written = 0;
  };
  void flush(const std::string& split, Pending& pending);

  std::string out_dir_, partial_dir_;
  Manifest manifest_;
  PackOptions options_;
  std::map<std::string, Pending> pending_;
  std::vector<int64_t> all_ids_;
  bool finished_ = false;
};

}  // namespace umbra
