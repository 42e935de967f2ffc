#include "data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "core/check.h"
#include "core/log.h"

namespace umbra {
namespace {

// Refuse to inflate beyond this (a corrupt length would otherwise exhaust memory).
constexpr size_t kMaxDecodedBytes = size_t{16} << 30;

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%08x", v);
  return buf;
}

uint32_t read_be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  UMBRA_CHECK(in.good(), path, ": cannot open: ", std::strerror(errno));
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
  UMBRA_CHECK(!in.bad(), path, ": read error");
  return bytes;
}

}  // namespace

std::vector<uint8_t> maybe_gunzip(const uint8_t* bytes, size_t size, const std::string& where) {
  if (size < 2 || bytes[0] != 0x1f || bytes[1] != 0x8b) return {bytes, bytes + size};
  z_stream zs{};
  UMBRA_CHECK(inflateInit2(&zs, 15 + 16) == Z_OK, where, ": zlib initialisation failed");
  std::vector<uint8_t> out(std::max<size_t>(size * 4, 1 << 16));
  zs.next_in = const_cast<Bytef*>(bytes);
  zs.avail_in = 0;
  size_t consumed = 0;
  int rc = Z_OK;
  std::string error;
  while (true) {
    if (zs.avail_in == 0 && consumed < size) {
      const size_t chunk = std::min<size_t>(size - consumed, std::numeric_limits<uInt>::max());
      zs.next_in = const_cast<Bytef*>(bytes + consumed);
      zs.avail_in = static_cast<uInt>(chunk);
      consumed += chunk;
    }
    if (zs.total_out == out.size()) {
      if (out.size() >= kMaxDecodedBytes) {
        error = "decompresses to more than " + std::to_string(kMaxDecodedBytes) + " bytes";
        break;
      }
      out.resize(std::min(out.size() * 2, kMaxDecodedBytes));
    }
    const size_t room =
        std::min<size_t>(out.size() - zs.total_out, std::numeric_limits<uInt>::max());
    zs.next_out = out.data() + zs.total_out;
    zs.avail_out = static_cast<uInt>(room);
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc == Z_STREAM_END) {
      // Concatenated gzip members are one file (gzip(1) semantics).
      const size_t left = zs.avail_in + (size - consumed);
      if (left >= 2 && zs.next_in[0] == 0x1f && zs.next_in[1] == 0x8b) {
        inflateReset(&zs);
        continue;
      }
      if (left > 0) error = std::to_string(left) + " bytes of trailing garbage after the gzip data";
      break;
    }
    if (rc == Z_BUF_ERROR && zs.avail_in == 0 && consumed == size) {
      error = "truncated gzip stream (ended after " + std::to_string(size) + " bytes)";
      break;
    }
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      error = std::string("corrupt gzip stream: ") +
              (zs.msg ? zs.msg : "zlib error " + std::to_string(rc));
      break;
    }
  }
  const size_t total = zs.total_out;
  inflateEnd(&zs);
  UMBRA_CHECK(error.empty(), where, ": ", error);
  out.resize(total);
  return out;
}

std::vector<uint8_t> read_maybe_gzip(const std::string& path) {
  const std::vector<uint8_t> raw = read_file(path);
  return maybe_gunzip(raw.data(), raw.size(), path);
}

IdxArray parse_idx(const uint8_t* bytes, size_t size, uint32_t magic, const std::string& where) {
  const int ndims = static_cast<int>(magic & 0xff);
  const char* what =
      magic == kIdxImagesMagic ? "IDX uint8 images [N, rows, cols]" : "IDX uint8 labels [N]";
  UMBRA_CHECK(size >= 4, where, ": file is ", size, " bytes, too short for an IDX header");
  const uint32_t got = read_be32(bytes);
  UMBRA_CHECK(got == magic, where, ": wrong magic number ", hex32(got), ", expected ", hex32(magic),
              " (", what, ")");
  const size_t header = 4 + 4 * static_cast<size_t>(ndims);
  UMBRA_CHECK(size >= header, where, ": file is ", size, " bytes, too short for the ", ndims,
              "-dimension IDX header (", header, " bytes)");
  IdxArray out;
  uint64_t payload = 1;
  for (int d = 0; d < ndims; ++d) {
    const uint32_t dim = read_be32(bytes + 4 + 4 * d);
    UMBRA_CHECK(dim > 0, where, ": dimension ", d, " is zero");
    UMBRA_CHECK(payload <= std::numeric_limits<uint64_t>::max() / dim, where,
                ": dimensions overflow");
    payload *= dim;
    out.dims.push_back(dim);
  }
  const uint64_t actual = size - header;
  UMBRA_CHECK(actual == payload, where, ": payload is ", actual, " bytes, expected ", payload,
              actual < payload ? " (truncated file)" : " (trailing bytes)");
  out.data.assign(bytes + header, bytes + size);
  return out;
}

IdxImages read_idx_pair(const std::string& images_path, const std::string& labels_path) {
  const std::vector<uint8_t> image_bytes = read_maybe_gzip(images_path);
  IdxArray images = parse_idx(image_bytes.data(), image_bytes.size(), kIdxImagesMagic, images_path);
  const std::vector<uint8_t> label_bytes = read_maybe_gzip(labels_path);
  const IdxArray labels =
      parse_idx(label_bytes.data(), label_bytes.size(), kIdxLabelsMagic, labels_path);
  UMBRA_CHECK(images.dims[0] == labels.dims[0], labels_path, ": holds ", labels.dims[0],
              " labels but ", images_path, " holds ", images.dims[0], " images");
  IdxImages out;
  out.height = images.dims[1];
  out.width = images.dims[2];
  out.images = std::move(images.data);
  out.labels.assign(labels.data.begin(), labels.data.end());
  return out;
}

Manifest pack_idx(const IdxImportSpec& spec, const std::string& out_dir,
                  const PackOptions& options) {
  spdlog::info("pack: reading {} and {}", spec.train.images, spec.train.labels);
  IdxImages train = read_idx_pair(spec.train.images, spec.train.labels);
  std::optional<IdxImages> test;
  if (spec.test) {
    spdlog::info("pack: reading {} and {}", spec.test->images, spec.test->labels);
    test = read_idx_pair(spec.test->images, spec.test->labels);
    UMBRA_CHECK(test->height == train.height && test->width == train.width, spec.test->images,
                ": images are ", test->height, "x", test->width, " but the training images are ",
                train.height, "x", train.width);
  }
  DatasetMeta meta;
  meta.channels = 1;
  meta.height = train.height;
  meta.width = train.width;
  meta.class_names = spec.class_names;
  if (meta.class_names.empty()) {
    int64_t max_label = *std::max_element(train.labels.begin(), train.labels.end());
    if (test)
      max_label = std::max(max_label, *std::max_element(test->labels.begin(), test->labels.end()));
    for (int64_t k = 0; k <= max_label; ++k) meta.class_names.push_back(std::to_string(k));
  }
  auto check_labels = [&](const IdxImages& set, const std::string& path) {
    for (int64_t i = 0; i < set.count(); ++i)
      UMBRA_CHECK(set.labels[i] < meta.num_classes(), path, ": label ", set.labels[i], " at index ",
                  i, " has no class name (", meta.num_classes(), " names given)");
  };
  check_labels(train, spec.train.labels);
  if (test) check_labels(*test, spec.test->labels);
  meta.source = spec.train.images;
  if (test) meta.source += " + " + spec.test->images;

  DatasetWriter writer(out_dir, spec.name, meta, options);
  std::vector<int64_t> ids(static_cast<size_t>(train.count()));
  for (int64_t i = 0; i < train.count(); ++i) ids[i] = i;
  writer.add("train", train.images.data(), train.labels.data(), ids.data(), train.count());
  if (test) {
    ids.resize(static_cast<size_t>(test->count()));
    for (int64_t i = 0; i < test->count(); ++i) ids[i] = train.count() + i;
    writer.add("test", test->images.data(), test->labels.data(), ids.data(), test->count());
  }
  return writer.finish();
}

const std::vector<std::string>& fashion_mnist_class_names() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                                 "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                                 "Bag",         "Ankle boot"};
  return names;
}

Manifest pack_fashion_mnist(const std::string& source_dir, const std::string& out_dir,
                            const PackOptions& options) {
  namespace fs = std::filesystem;
  auto file = [&](const char* name) {
    const fs::path p = fs::path(source_dir) / name;
    UMBRA_CHECK(fs::exists(p), p.string(),
                ": missing; expected the four Fashion-MNIST IDX files "
                "in ",
                source_dir, " (Debian package dataset-fashion-mnist)");
    return p.string();
  };
  IdxImportSpec spec;
  spec.name = "fashion-mnist";
  spec.train = {file("train-images-idx3-ubyte.gz"), file("train-labels-idx1-ubyte.gz")};
  spec.test = IdxFiles{file("t10k-images-idx3-ubyte.gz"), file("t10k-labels-idx1-ubyte.gz")};
  spec.class_names = fashion_mnist_class_names();
  return pack_idx(spec, out_dir, options);
}

}  // namespace umbra
