// PNG folder import: class folders, the deterministic stratified split, a given train/test
// split, pixel layout (HWC files -> CHW shards), and bad images.
#include "data/image_folder.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "core/png.h"
#include "data/dataset.h"
#include "data_test_util.h"

namespace umbra {
namespace {

using namespace test_util;
namespace fs = std::filesystem;

// Writes an RGB image whose pixels encode (tag, y, x, c).
std::vector<uint8_t> write_image(const std::string& path, int tag, int64_t h = 6, int64_t w = 5,
                                 int64_t c = 3) {
  fs::create_directories(fs::path(path).parent_path());
  std::vector<uint8_t> hwc(static_cast<size_t>(h * w * c));
  for (int64_t i = 0; i < h * w * c; ++i) hwc[i] = static_cast<uint8_t>((tag * 17 + i * 3) % 256);
  write_png(path, hwc.data(), h, w, c);
  return hwc;
}

TEST(ImageFolder, ClassFoldersAndStratifiedSplit) {
  TempDir dir;
  const std::vector<std::pair<std::string, int>> classes = {
      {"zebra", 7}, {"ant", 12}, {"moth", 20}};
  int tag = 0;
  std::map<std::string, std::vector<uint8_t>> pixels;  // file name -> HWC
  for (const auto& [name, n] : classes)
    for (int i = 0; i < n; ++i) {
      const std::string file = name + "_" + std::to_string(100 + i) + ".png";
      pixels[file] = write_image(dir / ("src/" + name + "/" + file), tag++);
    }
  write_bytes(dir / "src/ant/README.txt", {'h', 'i'});
  ImageFolderSpec spec;
  spec.source = dir / "src";
  spec.test_fraction = 0.25;
  const Manifest m = pack_image_folder(spec, dir / "out", PackOptions{});
  EXPECT_EQ(m.name, "src");
  EXPECT_EQ(m.meta.class_names, (std::vector<std::string>{"ant", "moth", "zebra"}));
  EXPECT_EQ(m.meta.channels, 3);
  EXPECT_EQ(m.meta.height, 6);
  EXPECT_EQ(m.meta.width, 5);
  // round(0.25 * n) per class: ant 3 of 12, moth 5 of 20, zebra 2 of 7.
  const DatasetReport r = verify_dataset(dir / "out");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.class_counts.at("test"), (std::vector<int64_t>{3, 5, 2}));
  EXPECT_EQ(r.class_counts.at("train"), (std::vector<int64_t>{9, 15, 5}));
  // Ids: train first (0..28), then test (29..38).
  const SplitData train = load_split(dir / "out", "train");
  const SplitData test = load_split(dir / "out", "test");
  EXPECT_EQ(train.ids.front(), 0);
  EXPECT_EQ(train.ids.back(), 28);
  EXPECT_EQ(test.ids.front(), 29);
  EXPECT_EQ(test.ids.back(), 38);
  // Every source image appears exactly once, transposed to CHW, with its class label.
  std::multiset<std::vector<uint8_t>> stored;
  for (const SplitData* s : {&train, &test})
    for (int64_t i = 0; i < s->count(); ++i) {
      std::vector<uint8_t> hwc(90);
      for (int64_t c = 0; c < 3; ++c)
        for (int64_t p = 0; p < 30; ++p) hwc[p * 3 + c] = s->image(i)[c * 30 + p];
      stored.insert(hwc);
    }
  for (const auto& [file, hwc] : pixels) EXPECT_EQ(stored.count(hwc), 1u) << file;

  // Deterministic: the same folder packs to the same content; another seed splits differently.
  const Manifest again = pack_image_folder(spec, dir / "again", PackOptions{});
  EXPECT_EQ(again.splits.at("test").shards[0].content_sha256,
            m.splits.at("test").shards[0].content_sha256);
  spec.seed = 99;
  const Manifest other = pack_image_folder(spec, dir / "other", PackOptions{});
  EXPECT_NE(other.splits.at("test").shards[0].content_sha256,
            m.splits.at("test").shards[0].content_sha256);
}

TEST(ImageFolder, GivenTrainTestSplitAndGray) {
  TempDir dir;
  for (int i = 0; i < 4; ++i) {
    write_image(dir / ("src/train/b/" + std::to_string(i) + ".png"), i, 8, 8, 1);
    write_image(dir / ("src/train/a/" + std::to_string(i) + ".png"), 10 + i, 8, 8, 1);
  }
  write_image(dir / "src/test/b/x.png", 50, 8, 8, 1);
  ImageFolderSpec spec;
  spec.source = dir / "src";
  spec.name = "given";
  const Manifest m = pack_image_folder(spec, dir / "out", PackOptions{});
  EXPECT_EQ(m.meta.class_names, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(m.splits.at("train").count, 8);
  EXPECT_EQ(m.splits.at("test").count, 1);
  const SplitData test = load_split(dir / "out", "test");
  EXPECT_EQ(test.labels[0], 1);
  EXPECT_EQ(test.ids[0], 8);
  fs::create_directories(dir / "src/test/c");
  expect_error([&] { pack_image_folder(spec, dir / "out2", PackOptions{}); },
               {"test/c", "class 'c' has no folder under train/"});
}

TEST(ImageFolderBadInput, NotAPng) {
  TempDir dir;
  write_image(dir / "src/a/0.png", 0);
  write_image(dir / "src/b/0.png", 1);
  write_bytes(dir / "src/b/1.png", std::vector<char>(100, 'x'));
  ImageFolderSpec spec;
  spec.source = dir / "src";
  expect_error([&] { pack_image_folder(spec, dir / "out", PackOptions{}); }, {"b/1.png"});
  EXPECT_FALSE(fs::exists(dir / "out"));
}

TEST(ImageFolderBadInput, WrongSizeAndChannels) {
  TempDir dir;
  write_image(dir / "src/a/0.png", 0);
  write_image(dir / "src/a/1.png", 1, 6, 4, 3);
  ImageFolderSpec spec;
  spec.source = dir / "src";
  spec.test_fraction = 0;
  expect_error([&] { pack_image_folder(spec, dir / "out", PackOptions{}); },
               {"a/1.png", "image is 6x4 with 3 channel(s), expected 6x5 with 3 channel(s)"});
  write_image(dir / "src/a/1.png", 1, 6, 5, 4);
  expect_error([&] { pack_image_folder(spec, dir / "out", PackOptions{}); },
               {"a/1.png", "image is 6x5 with 4 channel(s), expected 6x5 with 3 channel(s)"});
  fs::remove(dir / "src/a/1.png");
  fs::create_directories(dir / "src/empty");
  expect_error([&] { pack_image_folder(spec, dir / "out", PackOptions{}); },
               {"empty", "class folder holds no .png files"});
  EXPECT_FALSE(fs::exists(dir / "out"));
}

}  // namespace
}  // namespace umbra
