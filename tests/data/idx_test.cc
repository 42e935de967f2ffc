// IDX import: Fashion-MNIST packed for real and compared with numpy's decoding of the same
// files; malformed IDX files.
#include "data/idx.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <nlohmann/json.hpp>

#include "core/sha256.h"
#include "data/dataset.h"
#include "data_test_util.h"

namespace umbra {
namespace {

using namespace test_util;
using nlohmann::json;

class FashionMnist : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    PackOptions o;
    manifest_ = new Manifest(pack_fashion_mnist(kFashionMnistDir, *dir_ / "fmnist", o));
  }
  static void TearDownTestSuite() {
    delete manifest_;
    delete dir_;
  }
  static TempDir* dir_;
  static Manifest* manifest_;
};
TempDir* FashionMnist::dir_ = nullptr;
Manifest* FashionMnist::manifest_ = nullptr;

TEST_F(FashionMnist, CountsClassesAndIds) {
  const Manifest& m = *manifest_;
  EXPECT_EQ(m.name, "fashion-mnist");
  EXPECT_EQ(m.splits.at("train").count, 60000);
  EXPECT_EQ(m.splits.at("test").count, 10000);
  EXPECT_EQ(m.splits.at("train").shards.size(), 6u);
  EXPECT_EQ(m.meta.class_names,
            (std::vector<std::string>{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"}));
  EXPECT_EQ(m.meta.channels, 1);
  EXPECT_EQ(m.meta.height, 28);
  EXPECT_EQ(m.meta.width, 28);
  EXPECT_EQ(m.splits.at("test").shards.front().id_first, 60000);
  EXPECT_EQ(m.splits.at("test").shards.back().id_last, 69999);
  const DatasetReport r = verify_dataset(*dir_ / "fmnist");
  EXPECT_TRUE(r.ok());
  // Fashion-MNIST is balanced: 6,000 train and 1,000 test images per class (Xiao et al. 2017).
  for (int k = 0; k < 10; ++k) {
    EXPECT_EQ(r.class_counts.at("train")[k], 6000);
    EXPECT_EQ(r.class_counts.at("test")[k], 1000);
  }
}

// numpy decodes the original .gz files independently; pixels, labels and order must agree.
TEST_F(FashionMnist, MatchesNumpyDecoding) {
  const std::string out = run_python(R"PY(
import gzip, hashlib, json, sys, numpy as np
d = sys.argv[1]
res = {}
for split, prefix in (("train", "train"), ("test", "t10k")):
    im = np.frombuffer(gzip.open(f"{d}/{prefix}-images-idx3-ubyte.gz").read(), np.uint8, offset=16)
    lb = np.frombuffer(gzip.open(f"{d}/{prefix}-labels-idx1-ubyte.gz").read(), np.uint8, offset=8)
    res[split] = {"images": hashlib.sha256(im.tobytes()).hexdigest(),
                  "labels": hashlib.sha256(lb.astype("<i8").tobytes()).hexdigest(),
                  "first_label": int(lb[0]), "pixel": int(im[1234 * 784 + 400])}
print(json.dumps(res))
)PY",
                                     dir_->path(), kFashionMnistDir);
  const json j = json::parse(out);
  for (const std::string split : {"train", "test"}) {
    const SplitData s = load_split(*dir_ / "fmnist", split);
    EXPECT_EQ(sha256_hex(s.images.data(), s.images.size()), j[split]["images"]) << split;
    EXPECT_EQ(sha256_hex(s.labels.data(), s.labels.size() * 8), j[split]["labels"]) << split;
    EXPECT_EQ(s.labels[0], j[split]["first_label"].get<int64_t>());
    EXPECT_EQ(s.images[1234 * 784 + 400], j[split]["pixel"].get<int>());
  }
}

std::vector<char> idx_bytes(uint32_t magic, const std::vector<uint32_t>& dims, size_t payload) {
  std::vector<char> b;
  auto be32 = [&](uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<char>((v >> s) & 0xff));
  };
  be32(magic);
  for (uint32_t d : dims) be32(d);
  for (size_t i = 0; i < payload; ++i) b.push_back(static_cast<char>(i % 7));
  return b;
}

void write_gz(const std::string& path, const std::vector<char>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
}

TEST(IdxBadInput, WrongMagic) {
  TempDir dir;
  write_bytes(dir / "labels-as-images", idx_bytes(kIdxLabelsMagic, {10}, 10));
  write_bytes(dir / "labels", idx_bytes(kIdxLabelsMagic, {10}, 10));
  expect_error([&] { read_idx_pair(dir / "labels-as-images", dir / "labels"); },
               {"labels-as-images", "wrong magic number 0x00000801, expected 0x00000803"});
  write_bytes(dir / "float", idx_bytes(0x00000d03, {10, 2, 2}, 160));
  expect_error([&] { read_idx_pair(dir / "float", dir / "labels"); },
               {"float", "wrong magic number 0x00000d03"});
  write_bytes(dir / "tiny", {0, 0});
  expect_error([&] { read_idx_pair(dir / "tiny", dir / "labels"); }, {"tiny", "too short"});
}

TEST(IdxBadInput, TruncatedAndTrailingPayload) {
  TempDir dir;
  write_bytes(dir / "labels", idx_bytes(kIdxLabelsMagic, {10}, 10));
  write_bytes(dir / "short", idx_bytes(kIdxImagesMagic, {10, 3, 3}, 89));
  expect_error([&] { read_idx_pair(dir / "short", dir / "labels"); },
               {"short", "payload is 89 bytes, expected 90 (truncated file)"});
  write_bytes(dir / "long", idx_bytes(kIdxImagesMagic, {10, 3, 3}, 91));
  expect_error([&] { read_idx_pair(dir / "long", dir / "labels"); },
               {"long", "payload is 91 bytes, expected 90 (trailing bytes)"});
  write_bytes(dir / "header", idx_bytes(kIdxImagesMagic, {10}, 0));
  expect_error([&] { read_idx_pair(dir / "header", dir / "labels"); },
               {"header", "too short for the 3-dimension IDX header"});
  // A gzip file cut short.
  write_gz(dir / "images.gz", idx_bytes(kIdxImagesMagic, {10, 30, 30}, 9000));
  std::vector<char> gz = read_bytes(dir / "images.gz");
  gz.resize(gz.size() / 2);
  write_bytes(dir / "cut.gz", gz);
  expect_error([&] { read_idx_pair(dir / "cut.gz", dir / "labels"); },
               {"cut.gz", "truncated gzip stream"});
  gz = read_bytes(dir / "images.gz");
  for (size_t i = 12; i < 40; ++i) gz[i] ^= 0x33;
  write_bytes(dir / "corrupt.gz", gz);
  expect_error([&] { read_idx_pair(dir / "corrupt.gz", dir / "labels"); },
               {"corrupt.gz", "corrupt gzip stream"});
}

TEST(IdxBadInput, CountMismatchAndLabelRange) {
  TempDir dir;
  write_gz(dir / "images.gz", idx_bytes(kIdxImagesMagic, {10, 3, 3}, 90));
  write_bytes(dir / "labels9", idx_bytes(kIdxLabelsMagic, {9}, 9));
  expect_error([&] { read_idx_pair(dir / "images.gz", dir / "labels9"); },
               {"labels9", "holds 9 labels but", "images.gz holds 10 images"});
  // Labels 0..6 (i % 7) but only three class names.
  write_bytes(dir / "labels", idx_bytes(kIdxLabelsMagic, {10}, 10));
  IdxImportSpec spec;
  spec.train = {dir / "images.gz", dir / "labels"};
  spec.class_names = {"a", "b", "c"};
  expect_error([&] { pack_idx(spec, dir / "out", PackOptions{}); },
               {"labels", "label 3 at index 3 has no class name (3 names given)"});
  EXPECT_FALSE(std::filesystem::exists(dir / "out"));
  // Without names the classes are 0..max label, and raw + gzip inputs both work.
  spec.class_names.clear();
  spec.test = IdxFiles{dir / "images.gz", dir / "labels"};
  const Manifest m = pack_idx(spec, dir / "out", PackOptions{});
  EXPECT_EQ(m.meta.class_names, (std::vector<std::string>{"0", "1", "2", "3", "4", "5", "6"}));
  EXPECT_EQ(m.splits.at("test").shards[0].id_first, 10);
}

}  // namespace
}  // namespace umbra
