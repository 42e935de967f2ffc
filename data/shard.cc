#include "data/shard.h"

#include <algorithm>
#include <filesystem>
#include <limits>

#include "core/check.h"
#include "core/sha256.h"
#include "data/hdf5_util.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "content_sha256 hashes int64 values in memory order, defined as little-endian");

namespace umbra {
namespace {

// Upper bounds that keep a corrupt header from requesting absurd allocations.
constexpr int64_t kMaxSide = 1 << 16;
constexpr int64_t kMaxChannels = 4;
constexpr int64_t kMaxClasses = 1 << 20;
// deflate cannot expand data more than ~1032:1, so stored bytes bound the decoded size.
constexpr uint64_t kMaxFilterRatio = 2048;

enum class Kind { kUint8, kInt64 };

std::string describe_dtype(H5T_class_t cls, size_t size, H5T_sign_t sign) {
  const std::string bits = std::to_string(8 * size);
  if (cls == H5T_INTEGER) return (sign == H5T_SGN_NONE ? "uint" : "int") + bits;
  if (cls == H5T_FLOAT) return "float" + bits;
  if (cls == H5T_STRING) return "string";
  return "a non-numeric type";
}

// Opens dataset `name`, checks dtype and rank, returns its dimensions.
std::vector<hsize_t> open_checked(hid_t file, const std::string& name, Kind kind, int rank,
                                  const std::string& where, H5Id& out) {
  const htri_t exists = UMBRA_H5(H5Lexists(file, name.c_str(), H5P_DEFAULT), where,
                                 ": looking up dataset '", name, "'");
  UMBRA_CHECK(exists > 0, where, ": dataset '", name, "' is missing");
  out = H5Id(
      UMBRA_H5(H5Dopen2(file, name.c_str(), H5P_DEFAULT), where, ": opening dataset '", name, "'"));
  H5Id type(UMBRA_H5(H5Dget_type(out), where, ": dataset '", name, "' type"));
  const H5T_class_t cls = UMBRA_H5(H5Tget_class(type), where, ": dataset '", name, "' type");
  const size_t size = H5Tget_size(type);  // 0 on error
  if (size == 0) detail::hdf5_fail(where + ": dataset '" + name + "' type size");
  const H5T_sign_t sign = cls == H5T_INTEGER
                              ? UMBRA_H5(H5Tget_sign(type), where, ": dataset '", name, "' sign")
                              : H5T_SGN_NONE;
  const char* expected = kind == Kind::kUint8 ? "uint8" : "int64";
  const bool ok = cls == H5T_INTEGER && (kind == Kind::kUint8 ? size == 1 && sign == H5T_SGN_NONE
                                                              : size == 8 && sign == H5T_SGN_2);
  UMBRA_CHECK(ok, where, ": dataset '", name, "' must have dtype ", expected, ", got ",
              describe_dtype(cls, size, sign));
  H5Id space(UMBRA_H5(H5Dget_space(out), where, ": dataset '", name, "' dataspace"));
  const int got_rank =
      UMBRA_H5(H5Sget_simple_extent_ndims(space), where, ": dataset '", name, "' rank");
  UMBRA_CHECK(got_rank == rank, where, ": dataset '", name, "' must have rank ", rank, ", got ",
              got_rank);
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  UMBRA_H5(H5Sget_simple_extent_dims(space, dims.data(), nullptr), where, ": dataset '", name,
           "' dims");
  return dims;
}

// Refuses datasets whose data was never written (reading would return fill values) or whose
// declared size cannot come from a file of this size; for images also checks the chunk shape.
void check_storage(hid_t ds, const std::string& name, const std::vector<hsize_t>& dims,
                   uint64_t bytes, uint64_t file_size, const std::string& where) {
  H5Id dcpl(UMBRA_H5(H5Dget_create_plist(ds), where, ": dataset '", name, "' properties"));
  const H5D_layout_t layout = UMBRA_H5(H5Pget_layout(dcpl), where, ": dataset '", name, "' layout");
  const int filters = UMBRA_H5(H5Pget_nfilters(dcpl), where, ": dataset '", name, "' filters");
  const uint64_t ratio = filters > 0 ? kMaxFilterRatio : 1;
  UMBRA_CHECK(bytes <= file_size * ratio, where, ": dataset '", name, "' declares ", bytes,
              " bytes, more than a file of ", file_size, " bytes can hold (truncated or corrupt)");
  if (layout == H5D_CHUNKED) {
    std::vector<hsize_t> chunk(dims.size());
    const int chunk_rank =
        UMBRA_H5(H5Pget_chunk(dcpl, static_cast<int>(chunk.size()), chunk.data()), where,
                 ": dataset '", name, "' chunk shape");
    UMBRA_CHECK(chunk_rank == static_cast<int>(dims.size()) && chunk[0] > 0, where, ": dataset '",
                name, "' has a malformed chunk shape");
    uint64_t per_chunk = chunk[0];
    for (size_t d = 1; d < dims.size(); ++d) {
      UMBRA_CHECK(chunk[d] == dims[d], where, ": dataset '", name,
                  "' chunks must hold whole samples (chunk dim ", d, " = ", chunk[d], ", expected ",
                  dims[d], ")");
      per_chunk *= chunk[d];
    }
    UMBRA_CHECK(name != "images" || per_chunk <= static_cast<uint64_t>(kMaxChunkBytes), where,
                ": dataset 'images' chunks must be at most ", kMaxChunkBytes, " bytes, got ",
                per_chunk);
    hsize_t allocated = 0;
    H5Id space(UMBRA_H5(H5Dget_space(ds), where, ": dataset '", name, "' dataspace"));
    UMBRA_H5(H5Dget_num_chunks(ds, space, &allocated), where, ": dataset '", name, "' chunk count");
    const hsize_t expected = (dims[0] + chunk[0] - 1) / chunk[0];
    UMBRA_CHECK(allocated == expected, where, ": dataset '", name, "' has ", allocated, " of ",
                expected, " chunks stored (incomplete file)");
  } else if (layout == H5D_CONTIGUOUS) {
    const hsize_t stored = H5Dget_storage_size(ds);
    UMBRA_CHECK(stored == bytes, where, ": dataset '", name, "' stores ", stored,
                " bytes, expected ", bytes, " (incomplete file)");
  } else {
    UMBRA_CHECK(layout == H5D_COMPACT, where, ": dataset '", name, "' has an unsupported layout");
  }
}

template <class T>
void read_all(hid_t ds, hid_t memtype, std::vector<T>& out, const std::string& name,
              const std::string& where) {
  UMBRA_H5(H5Dread(ds, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()), where,
           ": reading dataset '", name, "'");
}

}  // namespace

void DatasetMeta::validate(const std::string& where) const {
  UMBRA_CHECK(!class_names.empty() && num_classes() <= kMaxClasses, where, ": expected 1..",
              kMaxClasses, " class names, got ", class_names.size());
  for (size_t i = 0; i < class_names.size(); ++i)
    UMBRA_CHECK(!class_names[i].empty(), where, ": class name ", i, " is empty");
  UMBRA_CHECK(channels >= 1 && channels <= kMaxChannels, where, ": channels must be 1..",
              kMaxChannels, ", got ", channels);
  UMBRA_CHECK(height >= 1 && height <= kMaxSide && width >= 1 && width <= kMaxSide, where,
              ": height and width must be 1..", kMaxSide, ", got ", height, "x", width);
}

std::string shard_content_sha256(const uint8_t* images, const int64_t* labels, const int64_t* ids,
                                 int64_t n, int64_t image_bytes) {
  Sha256 h;
  h.update(images, static_cast<size_t>(n * image_bytes));
  h.update(labels, static_cast<size_t>(n) * sizeof(int64_t));
  h.update(ids, static_cast<size_t>(n) * sizeof(int64_t));
  return h.hex();
}

ShardSummary write_shard(const std::string& path, const DatasetMeta& meta, const uint8_t* images,
                         const int64_t* labels, const int64_t* ids, int64_t n,
                         const ShardWriteOptions& options) {
  meta.validate(path);
  UMBRA_CHECK(n >= 1, path, ": a shard needs at least one image");
  const int64_t image_bytes = meta.image_bytes();
  UMBRA_CHECK(image_bytes <= kMaxChunkBytes, path, ": an image of ", image_bytes,
              " bytes exceeds the ", kMaxChunkBytes, "-byte chunk limit of the shard format");
  UMBRA_CHECK(options.gzip_level >= 1 && options.gzip_level <= 9, path,
              ": gzip level must be 1..9, got ", options.gzip_level);
  std::vector<int64_t> sorted(ids, ids + n);
  std::sort(sorted.begin(), sorted.end());
  UMBRA_CHECK(sorted.front() >= 0, path, ": ids must be non-negative, got ", sorted.front());
  const auto dup = std::adjacent_find(sorted.begin(), sorted.end());
  UMBRA_CHECK(dup == sorted.end(), path, ": duplicate id ", dup == sorted.end() ? 0 : *dup);
  for (int64_t i = 0; i < n; ++i)
    UMBRA_CHECK(labels[i] >= 0 && labels[i] < meta.num_classes(), path, ": label ", labels[i],
                " of id ", ids[i], " is outside [0, ", meta.num_classes(), ")");

  ShardSummary summary;
  summary.file = std::filesystem::path(path).filename().string();
  summary.count = n;
  summary.id_first = sorted.front();
  summary.id_last = sorted.back();
  summary.content_sha256 = shard_content_sha256(images, labels, ids, n, image_bytes);
  {
    Hdf5Guard guard;
    H5Id file(UMBRA_H5(H5Fcreate(path.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT), path,
                       ": creating shard"));
    const hsize_t n_h = static_cast<hsize_t>(n);
    const hsize_t image_dims[4] = {n_h, static_cast<hsize_t>(meta.channels),
                                   static_cast<hsize_t>(meta.height),
                                   static_cast<hsize_t>(meta.width)};
    const hsize_t per_chunk = std::min<hsize_t>(
        n_h, static_cast<hsize_t>(std::max<int64_t>(1, kMaxChunkBytes / image_bytes)));
    const hsize_t chunk_dims[4] = {per_chunk, image_dims[1], image_dims[2], image_dims[3]};
    H5Id dcpl(UMBRA_H5(H5Pcreate(H5P_DATASET_CREATE), path, ": dataset properties"));
    UMBRA_H5(H5Pset_chunk(dcpl, 4, chunk_dims), path, ": setting chunk shape");
    if (options.compression == Compression::kGzip)
      UMBRA_H5(H5Pset_deflate(dcpl, static_cast<unsigned>(options.gzip_level)), path,
               ": enabling gzip");
    H5Id image_space(UMBRA_H5(H5Screate_simple(4, image_dims, nullptr), path, ": dataspace"));
    H5Id image_ds(UMBRA_H5(
        H5Dcreate2(file, "images", H5T_STD_U8LE, image_space, H5P_DEFAULT, dcpl, H5P_DEFAULT), path,
        ": creating dataset 'images'"));
    UMBRA_H5(H5Dwrite(image_ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, images), path,
             ": writing dataset 'images'");
    H5Id vec_space(UMBRA_H5(H5Screate_simple(1, &n_h, nullptr), path, ": dataspace"));
    // (no structured bindings here: clang cannot capture them in UMBRA_H5's lambda in C++17)
    const std::pair<const char*, const int64_t*> vectors[] = {{"labels", labels}, {"ids", ids}};
    for (const auto& vec : vectors) {
      const char* name = vec.first;
      H5Id ds(UMBRA_H5(
          H5Dcreate2(file, name, H5T_STD_I64LE, vec_space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
          path, ": creating dataset '", name, "'"));
      UMBRA_H5(H5Dwrite(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, vec.second), path,
               ": writing dataset '", name, "'");
    }
    H5Id root(UMBRA_H5(H5Gopen2(file, "/", H5P_DEFAULT), path, ": opening root group"));
    h5_write_int_attribute(root, "format_version", kShardFormatVersion, path);
    h5_write_int_attribute(root, "num_classes", meta.num_classes(), path);
    h5_write_string_list_attribute(root, "class_names", meta.class_names, path);
    h5_write_int_attribute(root, "height", meta.height, path);
    h5_write_int_attribute(root, "width", meta.width, path);
    h5_write_int_attribute(root, "channels", meta.channels, path);
    h5_write_string_attribute(root, "source", meta.source, path);
    h5_write_string_attribute(root, "content_sha256", summary.content_sha256, path);
    UMBRA_H5(H5Fflush(file, H5F_SCOPE_LOCAL), path, ": flushing shard");
  }
  summary.sha256 = sha256_file(path);
  return summary;
}

ShardData read_shard(const std::string& path) {
  std::error_code ec;
  const uint64_t file_size = std::filesystem::file_size(path, ec);
  UMBRA_CHECK(!ec, path, ": cannot read shard: ", ec.message());

  Hdf5Guard guard;
  const htri_t is_hdf5 = H5Fis_hdf5(path.c_str());
  H5Eclear2(H5E_DEFAULT);
  UMBRA_CHECK(is_hdf5 > 0, path, ": not an HDF5 file (expected an Umbra shard)");
  H5Id file(UMBRA_H5(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), path,
                     ": opening shard read-only"));
  H5Id root(UMBRA_H5(H5Gopen2(file, "/", H5P_DEFAULT), path, ": opening root group"));

  ShardData out;
  const int64_t version = h5_read_int_attribute(root, "format_version", path);
  UMBRA_CHECK(version == kShardFormatVersion, path, ": format_version must be ",
              kShardFormatVersion, ", got ", version);
  DatasetMeta& meta = out.meta;
  meta.class_names = h5_read_string_list_attribute(root, "class_names", path);
  const int64_t num_classes = h5_read_int_attribute(root, "num_classes", path);
  UMBRA_CHECK(num_classes == meta.num_classes(), path, ": num_classes is ", num_classes,
              " but class_names lists ", meta.num_classes(), " names");
  meta.height = h5_read_int_attribute(root, "height", path);
  meta.width = h5_read_int_attribute(root, "width", path);
  meta.channels = h5_read_int_attribute(root, "channels", path);
  meta.source = h5_read_string_attribute(root, "source", path);
  meta.validate(path);
  out.content_sha256 = h5_read_string_attribute(root, "content_sha256", path);

  H5Id images, labels, ids;
  const auto image_dims = open_checked(file, "images", Kind::kUint8, 4, path, images);
  const auto label_dims = open_checked(file, "labels", Kind::kInt64, 1, path, labels);
  const auto id_dims = open_checked(file, "ids", Kind::kInt64, 1, path, ids);
  const hsize_t expected_shape[3] = {static_cast<hsize_t>(meta.channels),
                                     static_cast<hsize_t>(meta.height),
                                     static_cast<hsize_t>(meta.width)};
  UMBRA_CHECK(image_dims[1] == expected_shape[0] && image_dims[2] == expected_shape[1] &&
                  image_dims[3] == expected_shape[2],
              path, ": dataset 'images' has shape [N,", image_dims[1], ",", image_dims[2], ",",
              image_dims[3], "], expected [N,", meta.channels, ",", meta.height, ",", meta.width,
              "] from the channels/height/width attributes");
  const hsize_t n = image_dims[0];
  UMBRA_CHECK(n >= 1, path, ": dataset 'images' is empty; a shard holds at least one image");
  UMBRA_CHECK(label_dims[0] == n && id_dims[0] == n, path,
              ": images, labels and ids must have "
              "the same length, got ",
              n, ", ", label_dims[0], " and ", id_dims[0]);
  UMBRA_CHECK(
      n <= std::numeric_limits<uint64_t>::max() / 8 / static_cast<uint64_t>(meta.image_bytes()),
      path, ": implausible image count ", n);
  const uint64_t image_bytes = n * static_cast<uint64_t>(meta.image_bytes());
  check_storage(images, "images", image_dims, image_bytes, file_size, path);
  check_storage(labels, "labels", label_dims, n * 8, file_size, path);
  check_storage(ids, "ids", id_dims, n * 8, file_size, path);

  out.images.resize(image_bytes);
  out.labels.resize(n);
  out.ids.resize(n);
  read_all(images, H5T_NATIVE_UINT8, out.images, "images", path);
  read_all(labels, H5T_NATIVE_INT64, out.labels, "labels", path);
  read_all(ids, H5T_NATIVE_INT64, out.ids, "ids", path);

  for (size_t i = 0; i < n; ++i) {
    UMBRA_CHECK(out.labels[i] >= 0 && out.labels[i] < num_classes, path, ": label ", out.labels[i],
                " at index ", i, " is outside [0, ", num_classes, ")");
    UMBRA_CHECK(out.ids[i] >= 0, path, ": id ", out.ids[i], " at index ", i, " is negative");
  }
  std::vector<int64_t> sorted = out.ids;
  std::sort(sorted.begin(), sorted.end());
  const auto dup = std::adjacent_find(sorted.begin(), sorted.end());
  UMBRA_CHECK(dup == sorted.end(), path, ": duplicate id ", dup == sorted.end() ? 0 : *dup);
  const std::string actual = shard_content_sha256(out.images.data(), out.labels.data(),
                                                  out.ids.data(), out.count(), meta.image_bytes());
  UMBRA_CHECK(actual == out.content_sha256, path, ": content checksum mismatch (attribute ",
              out.content_sha256, ", data hashes to ", actual, "); the shard is corrupt");
  return out;
}

}  // namespace umbra
