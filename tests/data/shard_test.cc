// The HDF5 shard format: round trip, cross-checks against h5py (both directions), and every
// malformed-shard case, each built with the HDF5 C API directly.
#include "data/shard.h"

#include <gtest/gtest.h>
#include <hdf5.h>

#include <nlohmann/json.hpp>

#include "core/sha256.h"
#include "data/hdf5_util.h"
#include "data_test_util.h"

namespace umbra {
namespace {

using namespace test_util;
using nlohmann::json;

// A shard written field by field so each can be made wrong on purpose.
struct RawShard {
  hid_t image_type = H5T_NATIVE_UINT8;
  std::vector<hsize_t> image_dims{6, 1, 4, 5};
  hsize_t n_labels = 6, n_ids = 6;
  hid_t label_type = H5T_NATIVE_INT64;
  std::vector<int64_t> labels{0, 1, 2, 0, 1, 2};
  std::vector<int64_t> ids{10, 11, 12, 13, 14, 15};
  int64_t height = 4, width = 5, channels = 1, num_classes = 3, format_version = 1;
  bool write_num_classes = true;
  std::string content_sha256;  // empty: the correct hash
};

void write_raw(const std::string& path, const RawShard& r) {
  Hdf5Guard guard;
  H5Id file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
  ASSERT_GE(file.get(), 0);
  hsize_t total = 1;
  for (hsize_t d : r.image_dims) total *= d;
  std::vector<uint8_t> bytes(total);
  for (hsize_t i = 0; i < total; ++i) bytes[i] = static_cast<uint8_t>(i * 13);
  std::vector<float> floats(bytes.begin(), bytes.end());
  {
    H5Id space(
        H5Screate_simple(static_cast<int>(r.image_dims.size()), r.image_dims.data(), nullptr));
    H5Id ds(H5Dcreate2(file, "images", r.image_type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    const void* data = r.image_type == H5T_NATIVE_FLOAT ? static_cast<const void*>(floats.data())
                                                        : static_cast<const void*>(bytes.data());
    ASSERT_GE(H5Dwrite(ds, r.image_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), 0);
  }
  auto vec = [&](const char* name, hsize_t n, hid_t type, std::vector<int64_t> values) {
    values.resize(n, 0);
    std::vector<int32_t> narrow(values.begin(), values.end());
    H5Id space(H5Screate_simple(1, &n, nullptr));
    H5Id ds(H5Dcreate2(file, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    ASSERT_GE(H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                       type == H5T_NATIVE_INT32 ? static_cast<const void*>(narrow.data())
                                                : static_cast<const void*>(values.data())),
              0);
  };
  vec("labels", r.n_labels, r.label_type, r.labels);
  vec("ids", r.n_ids, H5T_NATIVE_INT64, r.ids);
  const std::string where = path;
  h5_write_int_attribute(file, "format_version", r.format_version, where);
  if (r.write_num_classes) h5_write_int_attribute(file, "num_classes", r.num_classes, where);
  h5_write_string_list_attribute(file, "class_names", {"a", "b", "c"}, where);
  h5_write_int_attribute(file, "height", r.height, where);
  h5_write_int_attribute(file, "width", r.width, where);
  h5_write_int_attribute(file, "channels", r.channels, where);
  h5_write_string_attribute(file, "source", "raw test", where);
  std::string hash = r.content_sha256;
  if (hash.empty() && r.labels.size() == r.n_labels && r.ids.size() == r.n_ids)
    hash = shard_content_sha256(bytes.data(), r.labels.data(), r.ids.data(),
                                static_cast<int64_t>(r.n_labels), total / r.image_dims[0]);
  h5_write_string_attribute(file, "content_sha256", hash.empty() ? std::string(64, '0') : hash,
                            where);
}

TEST(Shard, RawWriterProducesAValidShard) {
  TempDir dir;
  write_raw(dir / "ok.h5", RawShard{});
  const ShardData s = read_shard(dir / "ok.h5");
  EXPECT_EQ(s.count(), 6);
  EXPECT_EQ(s.ids, (std::vector<int64_t>{10, 11, 12, 13, 14, 15}));
}

TEST(Shard, RoundTripBothCompressions) {
  TempDir dir;
  const DatasetMeta meta = tiny_meta(3, 7, 9, 4);
  const Synthetic s = synthetic(meta, 100, 2500);
  for (Compression c : {Compression::kGzip, Compression::kNone}) {
    const std::string path = dir / (c == Compression::kGzip ? "gz.h5" : "raw.h5");
    const ShardSummary sum =
        write_shard(path, meta, s.images.data(), s.labels.data(), s.ids.data(), 2500, {c, 1});
    EXPECT_EQ(sum.count, 2500);
    EXPECT_EQ(sum.id_first, 100);
    EXPECT_EQ(sum.id_last, 2599);
    EXPECT_EQ(sum.sha256, sha256_file(path));
    const ShardData r = read_shard(path);
    EXPECT_EQ(r.images, s.images);
    EXPECT_EQ(r.labels, s.labels);
    EXPECT_EQ(r.ids, s.ids);
    EXPECT_EQ(r.meta.class_names, meta.class_names);
    EXPECT_EQ(r.meta.channels, 3);
    EXPECT_EQ(r.meta.height, 7);
    EXPECT_EQ(r.meta.width, 9);
    EXPECT_EQ(r.content_sha256, sum.content_sha256);
  }
}

// h5py (an independent HDF5 reader) sees the documented layout and the same content hash.
TEST(Shard, H5pyReadsUmbraShard) {
  TempDir dir;
  const DatasetMeta meta = tiny_meta(1, 28, 28, 10);
  const Synthetic s = synthetic(meta, 0, 3000);
  const ShardSummary sum =
      write_shard(dir / "s.h5", meta, s.images.data(), s.labels.data(), s.ids.data(), 3000);
  const std::string out = run_python(R"PY(
import hashlib, json, sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
im, lb, ids = f["images"], f["labels"], f["ids"]
h = hashlib.sha256()
for a in (im[...], lb[...].astype("<i8"), ids[...].astype("<i8")):
    h.update(np.ascontiguousarray(a).tobytes())
attrs = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in f.attrs.items()}
attrs = {k: ([x.decode() if isinstance(x, bytes) else x for x in v] if isinstance(v, list) else
             (v.decode() if isinstance(v, bytes) else v)) for k, v in attrs.items()}
print(json.dumps({"dtype": [str(im.dtype), str(lb.dtype), str(ids.dtype)], "shape": list(im.shape),
                  "chunks": list(im.chunks), "compression": im.compression, "sha": h.hexdigest(),
                  "attrs": attrs}))
)PY",
                                     dir.path(), dir / "s.h5");
  const json j = json::parse(out);
  EXPECT_EQ(j["dtype"], json({"uint8", "int64", "int64"}));
  EXPECT_EQ(j["shape"], json({3000, 1, 28, 28}));
  const int64_t chunk0 = j["chunks"][0].get<int64_t>();
  EXPECT_LE(chunk0 * 784, kMaxChunkBytes);
  EXPECT_EQ(j["chunks"], json({chunk0, 1, 28, 28}));
  EXPECT_EQ(j["compression"], "gzip");
  EXPECT_EQ(j["sha"], sum.content_sha256);
  EXPECT_EQ(j["attrs"]["content_sha256"], sum.content_sha256);
  EXPECT_EQ(j["attrs"]["format_version"], 1);
  EXPECT_EQ(j["attrs"]["num_classes"], 10);
  EXPECT_EQ(j["attrs"]["height"], 28);
  EXPECT_EQ(j["attrs"]["width"], 28);
  EXPECT_EQ(j["attrs"]["channels"], 1);
  EXPECT_EQ(j["attrs"]["source"], "synthetic");
  EXPECT_EQ(j["attrs"]["class_names"].size(), 10u);
  EXPECT_EQ(j["attrs"]["class_names"][3], "class3");
}

const char* kH5pyShard = R"PY(
import hashlib, json, sys, h5py, numpy as np
rng = np.random.default_rng(7)
n = 50
images = rng.integers(0, 256, size=(n, 3, 6, 5), dtype=np.uint8)
labels = rng.integers(0, 4, size=n).astype(np.int64)
ids = (np.arange(n) * 3 + 1000).astype(np.int64)
with h5py.File(sys.argv[1], "w") as f:
    f.create_dataset("images", data=images, chunks=(16, 3, 6, 5), compression="gzip")
    f.create_dataset("labels", data=labels)
    f.create_dataset("ids", data=ids)
    f.attrs["format_version"] = 1
    f.attrs["num_classes"] = 4
    f.attrs["height"], f.attrs["width"], f.attrs["channels"] = 6, 5, 3
    digest = hashlib.sha256(images.tobytes() + labels.tobytes() + ids.tobytes()).hexdigest()
    if sys.argv[2] == "fixed":  # what the format asks for: fixed-length strings
        f.attrs["class_names"] = np.array([b"w", b"x", b"y", b"z"])
        f.attrs["source"] = np.bytes_("h5py")
        f.attrs["content_sha256"] = np.bytes_(digest)
    else:  # h5py's default for str: variable-length
        f.attrs["class_names"] = ["w", "x", "y", "z"]
        f.attrs["source"] = "h5py"
        f.attrs["content_sha256"] = digest
print(json.dumps({"sum": int(images.astype(np.int64).sum()), "labels": labels.tolist(),
                  "ids": ids.tolist(), "pixel": int(images[7, 2, 4, 3])}))
)PY";

// A shard written by h5py from the format description alone reads back with the values Python
// reports.
TEST(Shard, ReadsShardWrittenByH5py) {
  TempDir dir;
  const std::string out = run_python(kH5pyShard, dir.path(), dir / "py.h5 fixed");
  const json j = json::parse(out);
  const ShardData s = read_shard(dir / "py.h5");
  int64_t sum = 0;
  for (uint8_t v : s.images) sum += v;
  EXPECT_EQ(sum, j["sum"].get<int64_t>());
  EXPECT_EQ(s.labels, j["labels"].get<std::vector<int64_t>>());
  EXPECT_EQ(s.ids, j["ids"].get<std::vector<int64_t>>());
  EXPECT_EQ(s.images[((7 * 3 + 2) * 6 + 4) * 5 + 3], j["pixel"].get<int>());
  EXPECT_EQ(s.meta.class_names, (std::vector<std::string>{"w", "x", "y", "z"}));
}

TEST(ShardBadInput, VariableLengthStringsAreRefused) {
  TempDir dir;
  run_python(kH5pyShard, dir.path(), dir / "vlen.h5 vlen");
  expect_error([&] { read_shard(dir / "vlen.h5"); },
               {"vlen.h5", "attribute 'class_names' must be a fixed-length string"});
}

TEST(ShardBadInput, NotHdf5AndMissing) {
  TempDir dir;
  write_bytes(dir / "junk.h5", std::vector<char>(4096, 'x'));
  expect_error([&] { read_shard(dir / "junk.h5"); }, {"junk.h5", "not an HDF5 file"});
  expect_error([&] { read_shard(dir / "absent.h5"); }, {"absent.h5"});
}

TEST(ShardBadInput, Truncated) {
  TempDir dir;
  const DatasetMeta meta = tiny_meta(1, 28, 28, 10);
  const Synthetic s = synthetic(meta, 0, 4000);
  for (Compression c : {Compression::kGzip, Compression::kNone}) {
    const std::string path = dir / (c == Compression::kGzip ? "gz.h5" : "raw.h5");
    write_shard(path, meta, s.images.data(), s.labels.data(), s.ids.data(), 4000, {c, 1});
    std::vector<char> bytes = read_bytes(path);
    for (double keep : {0.5, 0.9}) {
      const std::string cut = path + ".cut";
      write_bytes(cut, std::vector<char>(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(
                                                                            bytes.size() * keep)));
      expect_error([&] { read_shard(cut); }, {".h5.cut"});
    }
  }
}

TEST(ShardBadInput, CorruptByte) {
  TempDir dir;
  const DatasetMeta meta = tiny_meta(1, 28, 28, 10);
  const Synthetic s = synthetic(meta, 0, 2000);
  // Uncompressed: flip a byte inside the image data -> the content hash catches it.
  write_shard(dir / "raw.h5", meta, s.images.data(), s.labels.data(), s.ids.data(), 2000,
              {Compression::kNone, 1});
  std::vector<char> bytes = read_bytes(dir / "raw.h5");
  const std::string needle(s.images.begin() + 784 * 500, s.images.begin() + 784 * 501);
  const size_t at = std::string(bytes.begin(), bytes.end()).find(needle);
  ASSERT_NE(at, std::string::npos);
  bytes[at + 100] ^= 0x01;
  write_bytes(dir / "raw.h5", bytes);
  expect_error([&] { read_shard(dir / "raw.h5"); }, {"raw.h5", "content checksum mismatch"});
  // gzip: flipping bytes in the compressed stream fails decompression or the content hash.
  write_shard(dir / "gz.h5", meta, s.images.data(), s.labels.data(), s.ids.data(), 2000);
  bytes = read_bytes(dir / "gz.h5");
  for (size_t k = 0; k < 16; ++k) bytes[bytes.size() / 2 + k] ^= 0x5a;
  write_bytes(dir / "gz.h5", bytes);
  expect_error([&] { read_shard(dir / "gz.h5"); }, {"gz.h5"});
}

TEST(ShardBadInput, WrongDtype) {
  TempDir dir;
  RawShard r;
  r.image_type = H5T_NATIVE_FLOAT;
  write_raw(dir / "float.h5", r);
  expect_error([&] { read_shard(dir / "float.h5"); },
               {"float.h5", "dataset 'images' must have dtype uint8, got float32"});
  RawShard l;
  l.label_type = H5T_NATIVE_INT32;
  write_raw(dir / "int32.h5", l);
  expect_error([&] { read_shard(dir / "int32.h5"); },
               {"int32.h5", "dataset 'labels' must have dtype int64, got int32"});
}

TEST(ShardBadInput, WrongRankAndShape) {
  TempDir dir;
  RawShard r;
  r.image_dims = {6, 4, 5};
  write_raw(dir / "rank3.h5", r);
  expect_error([&] { read_shard(dir / "rank3.h5"); },
               {"rank3.h5", "dataset 'images' must have rank 4, got 3"});
  RawShard s;
  s.height = 5;  // images are 4 high
  write_raw(dir / "shape.h5", s);
  expect_error([&] { read_shard(dir / "shape.h5"); },
               {"shape.h5", "has shape [N,1,4,5], expected [N,1,5,5]"});
}

TEST(ShardBadInput, CountMismatch) {
  TempDir dir;
  RawShard r;
  r.n_labels = 5;
  r.labels.resize(5);
  write_raw(dir / "n.h5", r);
  expect_error([&] { read_shard(dir / "n.h5"); },
               {"n.h5", "images, labels and ids must have the same length, got 6, 5 and 6"});
}

TEST(ShardBadInput, DuplicateNegativeIdsAndLabels) {
  TempDir dir;
  RawShard d;
  d.ids = {10, 11, 12, 11, 14, 15};
  write_raw(dir / "dup.h5", d);
  expect_error([&] { read_shard(dir / "dup.h5"); }, {"dup.h5", "duplicate id 11"});
  RawShard n;
  n.ids = {10, 11, -12, 13, 14, 15};
  write_raw(dir / "neg.h5", n);
  expect_error([&] { read_shard(dir / "neg.h5"); }, {"neg.h5", "id -12 at index 2 is negative"});
  RawShard l;
  l.labels = {0, 1, 2, 3, 1, 2};
  write_raw(dir / "label.h5", l);
  expect_error([&] { read_shard(dir / "label.h5"); },
               {"label.h5", "label 3 at index 3 is outside [0, 3)"});
}

TEST(ShardBadInput, ChecksumAndAttributes) {
  TempDir dir;
  RawShard h;
  h.content_sha256 = std::string(64, 'a');
  write_raw(dir / "hash.h5", h);
  expect_error([&] { read_shard(dir / "hash.h5"); }, {"hash.h5", "content checksum mismatch"});
  RawShard v;
  v.format_version = 2;
  write_raw(dir / "version.h5", v);
  expect_error([&] { read_shard(dir / "version.h5"); },
               {"version.h5", "format_version must be 1, got 2"});
  RawShard m;
  m.write_num_classes = false;
  write_raw(dir / "attr.h5", m);
  expect_error([&] { read_shard(dir / "attr.h5"); },
               {"attr.h5", "attribute 'num_classes' is missing"});
}

TEST(ShardBadInput, WriterRefusesBadData) {
  TempDir dir;
  const DatasetMeta meta = tiny_meta();
  Synthetic s = synthetic(meta, 0, 4);
  s.ids[2] = 1;
  expect_error(
      [&] { write_shard(dir / "w.h5", meta, s.images.data(), s.labels.data(), s.ids.data(), 4); },
      {"w.h5", "duplicate id 1"});
  s = synthetic(meta, 0, 4);
  write_shard(dir / "w.h5", meta, s.images.data(), s.labels.data(), s.ids.data(), 4);
  expect_error(
      [&] { write_shard(dir / "w.h5", meta, s.images.data(), s.labels.data(), s.ids.data(), 4); },
      {"w.h5", "creating shard"});
}

}  // namespace
}  // namespace umbra
