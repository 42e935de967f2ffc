// Dataset directories: writer (atomic, refuses to overwrite), manifest validation, split
// loading and verification, and manifest/shard disagreements.
#include "data/dataset.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/sha256.h"
#include "data/dataset_writer.h"
#include "data_test_util.h"

namespace umbra {
namespace {

using namespace test_util;
using nlohmann::json;
namespace fs = std::filesystem;

json read_json(const std::string& path) { return json::parse(read_bytes(path)); }
void write_json(const std::string& path, const json& j) {
  const std::string text = j.dump(2);
  write_bytes(path, std::vector<char>(text.begin(), text.end()));
}

TEST(Dataset, WriteLoadAndVerify) {
  TempDir dir;
  const DatasetMeta meta = tiny_meta(2, 6, 7, 5);
  const Manifest m = write_synthetic_dataset(dir / "ds", meta, 2345, 321, 1000);
  EXPECT_EQ(m.splits.at("train").count, 2345);
  EXPECT_EQ(m.splits.at("train").shards.size(), 3u);
  EXPECT_EQ(m.splits.at("test").shards.size(), 1u);
  EXPECT_FALSE(fs::exists(dir / "ds.partial-" + std::to_string(getpid())));

  const Manifest loaded = Manifest::load(dir / "ds");
  EXPECT_EQ(loaded.to_json_text(), m.to_json_text());
  const json j = read_json(dir / "ds/manifest.json");
  EXPECT_EQ(j["format_version"], 1);
  EXPECT_EQ(j["num_classes"], 5);
  EXPECT_EQ(j["splits"]["train"]["shards"][2]["id_first"], 2000);
  EXPECT_EQ(j["splits"]["train"]["shards"][2]["id_last"], 2344);
  EXPECT_EQ(j["splits"]["test"]["shards"][0]["id_first"], 2345);
  EXPECT_EQ(j["splits"]["train"]["shards"][1]["sha256"], sha256_file(dir / "ds/train-00001.h5"));

  const SplitData train = load_split(dir / "ds", "train");
  const Synthetic expected = synthetic(meta, 0, 2345);
  EXPECT_EQ(train.images, expected.images);
  EXPECT_EQ(train.labels, expected.labels);
  EXPECT_EQ(train.ids, expected.ids);
  const SplitData test = load_split(dir / "ds", "test");
  EXPECT_EQ(test.ids.front(), 2345);
  EXPECT_EQ(test.count(), 321);

  const DatasetReport r = verify_dataset(dir / "ds");
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.shards.size(), 4u);
  EXPECT_EQ(r.class_counts.at("train")[0], 469);  // ids 0,5,...,2340
  expect_error([&] { load_split(dir / "ds", "validation"); },
               {"manifest.json", "no split 'validation'", "train"});
}

TEST(Dataset, WriterRefusesToOverwriteAndIsAtomic) {
  TempDir dir;
  const DatasetMeta meta = tiny_meta();
  write_synthetic_dataset(dir / "ds", meta, 50, 10, 20);
  const std::string before = read_json(dir / "ds/manifest.json").dump();
  expect_error([&] { write_synthetic_dataset(dir / "ds", meta, 60, 0, 20); },
               {"ds", "refusing to overwrite", "--force"});
  // A pack that fails half way (duplicate id in a later add) leaves the old dataset intact and
  // no partial directory behind, even with force.
  {
    PackOptions o;
    o.shard_size = 10;
    o.force = true;
    Synthetic s = synthetic(meta, 0, 30);
    expect_error(
        [&] {
          DatasetWriter w(dir / "ds", "broken", meta, o);
          w.add("train", s.images.data(), s.labels.data(), s.ids.data(), 30);
          w.add("test", s.images.data(), s.labels.data(), s.ids.data(), 30);
          w.finish();
        },
        {"ds", "id 0 appears in more than one shard"});
  }
  EXPECT_EQ(read_json(dir / "ds/manifest.json").dump(), before);
  EXPECT_TRUE(verify_dataset(dir / "ds").ok());
  for (const auto& e : fs::directory_iterator(dir.path()))
    EXPECT_EQ(e.path().filename(), "ds") << "left behind: " << e.path();
  // With force the replacement goes through.
  PackOptions o;
  o.shard_size = 100;
  o.force = true;
  {
    DatasetWriter w(dir / "ds", "replaced", meta, o);
    const Synthetic s = synthetic(meta, 0, 70);
    w.add("train", s.images.data(), s.labels.data(), s.ids.data(), 70);
    w.finish();
  }
  EXPECT_EQ(Manifest::load(dir / "ds").name, "replaced");
  EXPECT_EQ(load_split(dir / "ds", "train").count(), 70);
}

TEST(Dataset, DistinctImagePositionsKeepTheFirstOfEachDuplicate) {
  SplitData split;
  split.meta = tiny_meta(1, 2, 2, 3);
  // Images 0..5 with contents a b a c b a: distinct are positions 0 (a), 1 (b), 3 (c).
  const std::vector<std::vector<uint8_t>> contents = {{1, 2, 3, 4}, {1, 2, 3, 5}, {9, 9, 9, 9}};
  for (int which : {0, 1, 0, 2, 1, 0}) {
    split.images.insert(split.images.end(), contents[which].begin(), contents[which].end());
    split.labels.push_back(0);
    split.ids.push_back(static_cast<int64_t>(split.ids.size()));
  }
  EXPECT_EQ(distinct_image_positions(split), (std::vector<int64_t>{0, 1, 3}));
  split.images[5 * 4 + 3] = 7;  // position 5 now differs from a in its last byte
  EXPECT_EQ(distinct_image_positions(split), (std::vector<int64_t>{0, 1, 3, 5}));
}

TEST(DatasetBadInput, MissingManifestAndFields) {
  TempDir dir;
  fs::create_directories(dir / "empty");
  expect_error([&] { load_split(dir / "empty", "train"); }, {"manifest.json", "missing"});
  expect_error([&] { load_split(dir / "nowhere", "train"); }, {"nowhere", "not a dataset"});
  write_synthetic_dataset(dir / "ds", tiny_meta(), 30, 0, 10);
  const json good = read_json(dir / "ds/manifest.json");
  for (const std::string field : {"splits", "class_names", "height", "format_version"}) {
    json j = good;
    j.erase(field);
    write_json(dir / "ds/manifest.json", j);
    expect_error([&] { load_split(dir / "ds", "train"); },
                 {"manifest.json", "missing field '" + field + "'"});
  }
  json j = good;
  j["splits"]["train"]["shards"][0].erase("sha256");
  write_json(dir / "ds/manifest.json", j);
  expect_error([&] { load_split(dir / "ds", "train"); },
               {"manifest.json", "train-00000.h5", "missing field 'sha256'"});
  j = good;
  j["height"] = "four";
  write_json(dir / "ds/manifest.json", j);
  expect_error([&] { load_split(dir / "ds", "train"); },
               {"manifest.json", "field 'height' must be an integer"});
  write_bytes(dir / "ds/manifest.json", {'{', '"'});
  expect_error([&] { load_split(dir / "ds", "train"); }, {"manifest.json", "not valid JSON"});
}

TEST(DatasetBadInput, ManifestDisagreesWithShards) {
  TempDir dir;
  write_synthetic_dataset(dir / "ds", tiny_meta(), 30, 10, 10);
  const json good = read_json(dir / "ds/manifest.json");
  auto expect_load_error = [&](json j, const std::vector<std::string>& needles) {
    write_json(dir / "ds/manifest.json", j);
    expect_error([&] { load_split(dir / "ds", "train"); }, needles);
    write_json(dir / "ds/manifest.json", good);
  };
  json j = good;
  j["splits"]["train"]["shards"][1]["count"] = 9;
  j["splits"]["train"]["count"] = 29;
  expect_load_error(j, {"train-00001.h5", "holds 10 images, the manifest says 9"});
  j = good;
  j["splits"]["train"]["count"] = 31;
  expect_load_error(j, {"manifest.json", "count is 31 but its shards hold 30"});
  j = good;
  j["class_names"][1] = "other";
  expect_load_error(j, {"train-00000.h5", "class_names", "differ from the manifest"});
  j = good;
  j["width"] = 6;
  expect_load_error(j, {"train-00000.h5", "image shape 1x4x5 differs from the manifest's 1x4x6"});
  j = good;
  j["splits"]["train"]["shards"][2]["id_first"] = 21;
  j["splits"]["train"]["shards"][2]["id_last"] = 30;
  expect_load_error(j,
                    {"train-00002.h5", "ids span [20, 29], outside the manifest's range [21, 30]"});
  j = good;
  j["splits"]["train"]["shards"][0]["content_sha256"] = std::string(64, 'b');
  expect_load_error(j, {"train-00000.h5", "differs from the manifest's"});
  j = good;
  j["splits"]["train"]["shards"][0]["file"] = "../escape.h5";
  expect_load_error(j, {"manifest.json", "must be a plain file name"});
  fs::remove(dir / "ds/train-00001.h5");
  expect_error([&] { load_split(dir / "ds", "train"); }, {"train-00001.h5", "is missing"});
}

TEST(DatasetBadInput, DuplicateAndOutOfRangeIdsAcrossShards) {
  TempDir dir;
  const DatasetMeta meta = tiny_meta();
  fs::create_directories(dir / "ds");
  const Synthetic a = synthetic(meta, 0, 10);
  Synthetic b = synthetic(meta, 5, 10);  // ids 5..14 overlap 5..9
  Manifest m;
  m.name = "dup";
  m.meta = meta;
  SplitManifest sm;
  sm.shards.push_back(
      write_shard(dir / "ds/a.h5", meta, a.images.data(), a.labels.data(), a.ids.data(), 10));
  sm.shards.push_back(
      write_shard(dir / "ds/b.h5", meta, b.images.data(), b.labels.data(), b.ids.data(), 10));
  sm.count = 20;
  m.splits["train"] = sm;
  m.save(dir / "ds");
  expect_error([&] { load_split(dir / "ds", "train"); }, {"ds", "duplicate id 5"});
  const DatasetReport r = verify_dataset(dir / "ds");
  EXPECT_TRUE(r.shards[0].ok && r.shards[1].ok);  // each shard is fine on its own ...
  ASSERT_EQ(r.errors.size(), 1u);                 // ... not together
  EXPECT_NE(r.errors[0].find("duplicate id 5"), std::string::npos) << r.errors[0];
  EXPECT_FALSE(r.ok());
}

TEST(DatasetBadInput, FileChecksumMismatchIsReportedPerShard) {
  TempDir dir;
  write_synthetic_dataset(dir / "ds", tiny_meta(1, 28, 28, 3), 300, 0, 100, Compression::kNone);
  std::vector<char> bytes = read_bytes(dir / "ds/train-00001.h5");
  bytes[bytes.size() - 10] ^= 0x10;
  write_bytes(dir / "ds/train-00001.h5", bytes);
  const DatasetReport r = verify_dataset(dir / "ds");
  EXPECT_FALSE(r.ok());
  ASSERT_EQ(r.shards.size(), 3u);
  EXPECT_TRUE(r.shards[0].ok);
  EXPECT_FALSE(r.shards[1].ok);
  EXPECT_TRUE(r.shards[2].ok);
  std::printf("[bad input] %s\n", r.shards[1].error.c_str());
  EXPECT_NE(r.shards[1].error.find("train-00001.h5: file checksum mismatch"), std::string::npos);
}

}  // namespace
}  // namespace umbra
