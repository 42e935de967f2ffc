// IDX files (the MNIST/Fashion-MNIST format) and the importers built on them.
//
// An IDX file is a big-endian header - two zero bytes, a type byte (0x08 = uint8), the number
// of dimensions - then one uint32 per dimension and the payload. Umbra reads uint8 images
// (magic 0x00000803: [N, rows, cols]) and uint8 labels (magic 0x00000801: [N]), raw or gzip.
// Parsers check the magic, every dimension, the exact payload length and that image and label
// counts match, and throw umbra::Error naming the file.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "data/dataset_writer.h"
#include "data/manifest.h"

namespace umbra {

constexpr uint32_t kIdxImagesMagic = 0x00000803;
constexpr uint32_t kIdxLabelsMagic = 0x00000801;

struct IdxArray {
  std::vector<int64_t> dims;  // e.g. {N, rows, cols}
  std::vector<uint8_t> data;  // product(dims) bytes
};

// The file's bytes, gunzipped when they start with the gzip magic (1f 8b). Throws naming the
// file when it cannot be read or the gzip stream is corrupt or truncated.
std::vector<uint8_t> read_maybe_gzip(const std::string& path);
// Gunzips (or passes through) an in-memory buffer; `where` names it in errors.
std::vector<uint8_t> maybe_gunzip(const uint8_t* bytes, size_t size, const std::string& where);

// Parses decoded IDX bytes whose magic must equal `magic` (kIdxImagesMagic or kIdxLabelsMagic).
IdxArray parse_idx(const uint8_t* bytes, size_t size, uint32_t magic, const std::string& where);

// Images [N, 1, rows, cols] and labels of one IDX image/label file pair.
struct IdxImages {
  int64_t height = 0, width = 0;
  std::vector<uint8_t> images;
  std::vector<int64_t> labels;
  int64_t count() const { return static_cast<int64_t>(labels.size()); }
};
IdxImages read_idx_pair(const std::string& images_path, const std::string& labels_path);

struct IdxFiles {
  std::string images, labels;
};

struct IdxImportSpec {
  std::string name = "idx";
  IdxFiles train;
  std::optional<IdxFiles> test;
  // Empty: "0", "1", ... up to the largest label. Otherwise every label must index a name.
  std::vector<std::string> class_names;
};

// Packs the files into out_dir (train ids 0..N-1, test ids N..N+M-1). Returns the manifest.
Manifest pack_idx(const IdxImportSpec& spec, const std::string& out_dir,
                  const PackOptions& options);

// Fashion-MNIST from its four IDX files in source_dir (default location below).
constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";
const std::vector<std::string>& fashion_mnist_class_names();
Manifest pack_fashion_mnist(const std::string& source_dir, const std::string& out_dir,
                            const PackOptions& options);

}  // namespace umbra
