#include "data/dataset_writer.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "core/check.h"
#include "core/log.h"

namespace umbra {
namespace fs = std::filesystem;

namespace {

bool is_empty_dir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec) && fs::is_empty(p, ec) && !ec;
}

}  // namespace

DatasetWriter::DatasetWriter(std::string out_dir, std::string name, DatasetMeta meta,
                             PackOptions options)
    : out_dir_(std::move(out_dir)), options_(options) {
  UMBRA_CHECK(!out_dir_.empty(), "--out: an output directory is required");
  meta.validate(out_dir_);
  UMBRA_CHECK(options_.shard_size >= 1, "--shard-size: must be at least 1, got ",
              options_.shard_size);
  // A trailing slash would put the partial directory inside the output.
  fs::path out = fs::path(out_dir_).lexically_normal();
  if (out.filename().empty()) out = out.parent_path();
  out_dir_ = out.string();
  std::error_code ec;
  const bool exists = fs::exists(out, ec);
  UMBRA_CHECK(!exists || options_.force || is_empty_dir(out), out_dir_,
              ": already exists and is not an empty directory; refusing to overwrite it "
              "(pass --force to replace it)");
  UMBRA_CHECK(!exists || fs::is_directory(out, ec), out_dir_,
              ": exists and is not a directory; refusing to replace it");
  partial_dir_ = out_dir_ + ".partial-" + std::to_string(::getpid());
  fs::remove_all(partial_dir_, ec);
  fs::create_directories(partial_dir_, ec);
  UMBRA_CHECK(!ec, partial_dir_, ": cannot create directory: ", ec.message());
  manifest_.name = std::move(name);
  manifest_.meta = std::move(meta);
}

DatasetWriter::~DatasetWriter() {
  if (!finished_) {
    std::error_code ec;
    fs::remove_all(partial_dir_, ec);
  }
}

void DatasetWriter::add(const std::string& split, const uint8_t* images, const int64_t* labels,
                        const int64_t* ids, int64_t n) {
  UMBRA_ASSERT(!finished_, "DatasetWriter::add after finish");
  UMBRA_CHECK(!split.empty() && split.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") ==
                                    std::string::npos,
              "split name '", split, "' must be lowercase letters, digits and underscores");
  Pending& p = pending_[split];
  const int64_t bytes = manifest_.meta.image_bytes();
  int64_t done = 0;
  while (done < n) {
    const int64_t room = options_.shard_size - static_cast<int64_t>(p.labels.size());
    const int64_t take = std::min(room, n - done);
    p.images.insert(p.images.end(), images + done * bytes, images + (done + take) * bytes);
    p.labels.insert(p.labels.end(), labels + done, labels + done + take);
    p.ids.insert(p.ids.end(), ids + done, ids + done + take);
    done += take;
    if (static_cast<int64_t>(p.labels.size()) == options_.shard_size) flush(split, p);
  }
}

void DatasetWriter::flush(const std::string& split, Pending& p) {
  if (p.labels.empty()) return;
  char file[64];
  std::snprintf(file, sizeof(file), "%s-%05lld.h5", split.c_str(),
                static_cast<long long>(p.shards_written));
  const std::string path = (fs::path(partial_dir_) / file).string();
  const int64_t n = static_cast<int64_t>(p.labels.size());
  ShardSummary s = write_shard(path, manifest_.meta, p.images.data(), p.labels.data(), p.ids.data(),
                               n, options_.shard);
  SplitManifest& sm = manifest_.splits[split];
  sm.count += n;
  sm.shards.push_back(s);
  all_ids_.insert(all_ids_.end(), p.ids.begin(), p.ids.end());
  ++p.shards_written;
  spdlog::info("pack: {} {}: {} images, ids {}..{}, {:.2f} MiB ({} {} images so far)", split, file,
               n, s.id_first, s.id_last, static_cast<double>(fs::file_size(path)) / (1 << 20),
               sm.count, split);
  p.images.clear();
  p.labels.clear();
  p.ids.clear();
}

Manifest DatasetWriter::finish() {
  UMBRA_ASSERT(!finished_, "DatasetWriter::finish called twice");
  for (auto& [split, p] : pending_) flush(split, p);
  UMBRA_CHECK(manifest_.splits.count("train"), out_dir_, ": nothing to write; a dataset needs a ",
              "non-empty 'train' split");
  std::vector<int64_t> sorted = all_ids_;
  std::sort(sorted.begin(), sorted.end());
  const auto dup = std::adjacent_find(sorted.begin(), sorted.end());
  UMBRA_CHECK(dup == sorted.end(), out_dir_, ": id ", dup == sorted.end() ? 0 : *dup,
              " appears in more than one shard; ids must be unique across the dataset");
  manifest_.save(partial_dir_);

  std::error_code ec;
  const fs::path out(out_dir_);
  std::string old_dir;
  if (fs::exists(out, ec)) {
    if (is_empty_dir(out)) {
      fs::remove(out, ec);
    } else {
      UMBRA_CHECK(options_.force, out_dir_, ": appeared while packing; refusing to overwrite it");
      old_dir = out_dir_ + ".old-" + std::to_string(::getpid());
      fs::rename(out, old_dir, ec);
      UMBRA_CHECK(!ec, out_dir_, ": cannot move the existing dataset aside: ", ec.message());
    }
  }
  fs::rename(partial_dir_, out, ec);
  if (ec && !old_dir.empty()) {
    std::error_code restore;
    fs::rename(old_dir, out, restore);
  }
  UMBRA_CHECK(!ec, out_dir_, ": cannot rename ", partial_dir_, " into place: ", ec.message());
  finished_ = true;
  if (!old_dir.empty()) fs::remove_all(old_dir, ec);
  return manifest_;
}

}  // namespace umbra
