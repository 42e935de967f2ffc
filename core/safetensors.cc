#include "core/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "core/check.h"

namespace umbra {
namespace {

using nlohmann::json;

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors data is little-endian; this code copies it verbatim");

struct DType {
  const char* name;
  c10::ScalarType type;
  uint64_t itemsize;
};

constexpr DType kDTypes[] = {
    {"F64", c10::ScalarType::Double, 8}, {"F32", c10::ScalarType::Float, 4},
    {"F16", c10::ScalarType::Half, 2},   {"BF16", c10::ScalarType::BFloat16, 2},
    {"I64", c10::ScalarType::Long, 8},   {"I32", c10::ScalarType::Int, 4},
    {"I16", c10::ScalarType::Short, 2},  {"I8", c10::ScalarType::Char, 1},
    {"U8", c10::ScalarType::Byte, 1},    {"BOOL", c10::ScalarType::Bool, 1},
};

const DType* dtype_by_name(const std::string& name) {
  for (const DType& d : kDTypes) {
    if (name == d.name) return &d;
  }
  return nullptr;
}

const DType* dtype_by_type(c10::ScalarType type) {
  for (const DType& d : kDTypes) {
    if (type == d.type) return &d;
  }
  return nullptr;
}

const char* known_dtypes() { return "one of F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL"; }

// One validated header entry; offsets are relative to the data section.
struct Entry {
  std::string name;
  const DType* dtype = nullptr;
  std::vector<int64_t> shape;
  uint64_t begin = 0;
  uint64_t end = 0;
};

struct Header {
  std::vector<Entry> entries;  // sorted by data offset
  Metadata metadata;
};

uint64_t read_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// A JSON value as it appeared, shortened for error messages.
std::string show(const json& v) {
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

// A non-negative JSON integer that fits in int64 (what torch sizes and our offsets need).
bool as_size(const json& v, uint64_t& out) {
  if (v.is_number_unsigned()) {
    out = v.get<uint64_t>();
    return out <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  }
  if (v.is_number_integer() && v.get<int64_t>() >= 0) {
    out = static_cast<uint64_t>(v.get<int64_t>());
    return true;
  }
  return false;
}

Entry parse_entry(const std::string& origin, const std::string& name, const json& v) {
  const std::string where = origin + ": tensor '" + name + "': ";
  UMBRA_CHECK(v.is_object(), where, "expected an object with dtype, shape and data_offsets, got ",
              show(v));
  for (const auto& item : v.items()) {
    UMBRA_CHECK(item.key() == "dtype" || item.key() == "shape" || item.key() == "data_offsets",
                where, "unexpected field '", item.key(),
                "' (expected only dtype, shape and data_offsets)");
  }
  Entry e;
  e.name = name;

  const auto dtype = v.find("dtype");
  UMBRA_CHECK(dtype != v.end(), where, "missing field 'dtype'");
  UMBRA_CHECK(dtype->is_string(), where, "dtype: expected a string, got ", show(*dtype));
  e.dtype = dtype_by_name(dtype->get<std::string>());
  UMBRA_CHECK(e.dtype != nullptr, where, "dtype: expected ", known_dtypes(), ", got ",
              show(*dtype));

  const auto shape = v.find("shape");
  UMBRA_CHECK(shape != v.end(), where, "missing field 'shape'");
  UMBRA_CHECK(shape->is_array(), where, "shape: expected an array of non-negative integers, got ",
              show(*shape));
  UMBRA_CHECK(shape->size() <= kSafetensorsMaxRank, where, "shape: expected at most ",
              kSafetensorsMaxRank, " dimensions, got ", shape->size());
  // numel, and the product of the non-zero dims (which torch also needs to fit in int64).
  uint64_t numel = 1;
  uint64_t nonzero_product = 1;
  for (const json& d : *shape) {
    uint64_t dim = 0;
    UMBRA_CHECK(as_size(d, dim), where, "shape: expected non-negative integers below 2^63, got ",
                show(*shape));
    const uint64_t factor = std::max<uint64_t>(dim, 1);
    UMBRA_CHECK(!__builtin_mul_overflow(nonzero_product, factor, &nonzero_product) &&
                    nonzero_product <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
                where, "shape ", show(*shape), ": number of elements overflows int64");
    numel *= dim;  // cannot overflow: |numel| <= nonzero_product or numel == 0
    e.shape.push_back(static_cast<int64_t>(dim));
  }
  uint64_t nbytes = 0;
  UMBRA_CHECK(!__builtin_mul_overflow(numel, e.dtype->itemsize, &nbytes), where, "shape ",
              show(*shape), " with dtype ", e.dtype->name, ": byte size overflows 64 bits");

  const auto offsets = v.find("data_offsets");
  UMBRA_CHECK(offsets != v.end(), where, "missing field 'data_offsets'");
  UMBRA_CHECK(offsets->is_array() && offsets->size() == 2 && as_size((*offsets)[0], e.begin) &&
                  as_size((*offsets)[1], e.end),
              where,
              "data_offsets: expected [begin, end] with non-negative integers below 2^63, got ",
              show(*offsets));
  UMBRA_CHECK(e.begin <= e.end, where, "data_offsets ", show(*offsets), ": expected begin <= end");
  UMBRA_CHECK(e.end - e.begin == nbytes, where, "data_offsets ", show(*offsets), " span ",
              e.end - e.begin, " bytes, expected ", nbytes, " (shape ", show(*shape), " x ",
              e.dtype->itemsize, " bytes of ", e.dtype->name, ")");
  return e;
}

Header parse_header(const std::string& origin, const char* text, size_t text_size,
                    uint64_t data_size) {
  // nlohmann keeps the last of duplicate keys; a duplicate tensor name is ambiguous, so reject it.
  std::set<std::string> top_keys;
  std::string duplicate;
  bool has_duplicate = false;
  const json::parser_callback_t callback = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1 && parsed.is_string()) {
      if (!top_keys.insert(parsed.get<std::string>()).second && !has_duplicate) {
        has_duplicate = true;
        duplicate = parsed.get<std::string>();
      }
    }
    return true;
  };
  json root;
  try {
    root = json::parse(text, text + text_size, callback, /*allow_exceptions=*/true,
                       /*ignore_comments=*/false);
  } catch (const json::exception& e) {
    UMBRA_FAIL(origin, ": header is not valid JSON: ", e.what());
  }
  UMBRA_CHECK(root.is_object(), origin, ": header: expected a JSON object, got ", show(root));
  UMBRA_CHECK(!has_duplicate, origin, ": header: tensor '", duplicate, "' appears more than once");

  Header h;
  for (const auto& item : root.items()) {
    if (item.key() == "__metadata__") {
      UMBRA_CHECK(item.value().is_object(), origin,
                  ": __metadata__: expected an object of string -> string, got ",
                  show(item.value()));
      for (const auto& m : item.value().items()) {
        UMBRA_CHECK(m.value().is_string(), origin, ": __metadata__ '", m.key(),
                    "': expected a string value, got ", show(m.value()));
        h.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    h.entries.push_back(parse_entry(origin, item.key(), item.value()));
  }

  // The data section must be tiled exactly: sorted by offset, each entry starts where the
  // previous one ended and the last ends at the end of the file (no gaps, no overlaps).
  std::sort(h.entries.begin(), h.entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered = 0;
  const Entry* previous = nullptr;
  for (const Entry& e : h.entries) {
    const std::string where = origin + ": tensor '" + e.name + "': ";
    UMBRA_CHECK(e.end <= data_size, where, "data_offsets [", e.begin, ", ", e.end,
                "] reach past the data section (", data_size, " bytes)");
    if (e.begin < covered) {
      UMBRA_FAIL(where, "data_offsets [", e.begin, ", ", e.end, "] overlap tensor '",
                 previous->name, "' [", previous->begin, ", ", previous->end, "]");
    }
    UMBRA_CHECK(e.begin == covered, where, "data_offsets [", e.begin, ", ", e.end,
                "] leave bytes [", covered, ", ", e.begin,
                ") of the data section unused (expected begin = ", covered, ")");
    covered = e.end;
    previous = &e;
  }
  UMBRA_CHECK(covered == data_size, origin, ": data section has ", data_size,
              " bytes but the tensors cover only ", covered,
              " (expected the header's data_offsets to account for every byte)");
  return h;
}

torch::Tensor empty_tensor(const Entry& e) {
  return torch::empty(e.shape, torch::TensorOptions().dtype(e.dtype->type));
}

void check_bool_values(const std::string& origin, const Entry& e, const torch::Tensor& t) {
  if (e.dtype->type != c10::ScalarType::Bool) return;
  const auto* bytes = static_cast<const uint8_t*>(t.data_ptr());
  for (uint64_t i = 0; i < e.end - e.begin; ++i) {
    UMBRA_CHECK(bytes[i] <= 1, origin, ": tensor '", e.name, "': BOOL element ", i,
                " has byte value ", static_cast<int>(bytes[i]), ", expected 0 or 1");
  }
}

// Header length from the first 8 bytes, checked against what follows them.
uint64_t checked_header_length(const std::string& origin, const uint8_t* prefix,
                               uint64_t file_size) {
  const uint64_t n = read_le64(prefix);
  UMBRA_CHECK(n <= kSafetensorsMaxHeaderBytes, origin, ": header length ", n,
              " bytes exceeds the limit of ", kSafetensorsMaxHeaderBytes, " bytes");
  UMBRA_CHECK(n <= file_size - 8, origin, ": header length ", n, " bytes exceeds the ",
              file_size - 8, " bytes that follow the 8-byte length field");
  return n;
}

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using FilePtr = std::unique_ptr<std::FILE, FileCloser>;

// Writes to "<path>.tmp.<pid>" and renames over `path` on commit(); removes the temporary
// file when destroyed uncommitted, so a failed save leaves the destination untouched.
class AtomicWriter {
 public:
  explicit AtomicWriter(std::string path)
      : path_(std::move(path)), tmp_(path_ + ".tmp." + std::to_string(::getpid())) {
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    UMBRA_CHECK(fd_ >= 0, path_, ": cannot create temporary file '", tmp_,
                "': ", std::strerror(errno));
  }
  AtomicWriter(const AtomicWriter&) = delete;
  AtomicWriter& operator=(const AtomicWriter&) = delete;
  ~AtomicWriter() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(tmp_.c_str());
  }

  void write(const void* data, size_t size) {
    const auto* p = static_cast<const char*>(data);
    while (size > 0) {
      const ssize_t n = ::write(fd_, p, size);
      if (n < 0 && errno == EINTR) continue;
      UMBRA_CHECK(n > 0, path_, ": write to '", tmp_, "' failed: ", std::strerror(errno));
      p += n;
      size -= static_cast<size_t>(n);
    }
  }

  void commit() {
    UMBRA_CHECK(::fsync(fd_) == 0, path_, ": fsync of '", tmp_, "' failed: ", std::strerror(errno));
    const int rc = ::close(fd_);
    fd_ = -1;
    UMBRA_CHECK(rc == 0, path_, ": close of '", tmp_, "' failed: ", std::strerror(errno));
    UMBRA_CHECK(::rename(tmp_.c_str(), path_.c_str()) == 0, path_, ": rename from '", tmp_,
                "' failed: ", std::strerror(errno));
    committed_ = true;
    // Make the rename itself durable; some file systems cannot fsync a directory (EINVAL).
    const auto slash = path_.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : path_.substr(0, slash + 1);
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  }

 private:
  std::string path_;
  std::string tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace

void save_safetensors(const std::string& path, const TensorMap& tensors, const Metadata& metadata) {
  json header = json::object();
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    UMBRA_CHECK(name != "__metadata__", path,
                ": '__metadata__' is reserved by the format and cannot name a tensor");
    UMBRA_CHECK(t.defined(), path, ": tensor '", name, "' is undefined");
    const DType* d = dtype_by_type(t.scalar_type());
    UMBRA_CHECK(d != nullptr, path, ": tensor '", name, "' has dtype ", t.scalar_type(),
                ", expected ", known_dtypes());
    const uint64_t nbytes = static_cast<uint64_t>(t.numel()) * d->itemsize;
    header[name] = {{"dtype", d->name},
                    {"shape", t.sizes().vec()},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;

  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception& e) {
    UMBRA_FAIL(path, ": tensor names and metadata must be valid UTF-8: ", e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  uint8_t prefix[8];
  for (int i = 0; i < 8; ++i) prefix[i] = static_cast<uint8_t>(text.size() >> (8 * i));

  AtomicWriter out(path);
  out.write(prefix, sizeof(prefix));
  out.write(text.data(), text.size());
  // One tensor at a time, so at most one extra CPU copy exists at any moment.
  for (const auto& item : tensors) {
    const torch::Tensor t = item.second.detach().to(torch::kCPU).contiguous();
    out.write(t.data_ptr(), t.numel() * t.element_size());
  }
  out.commit();
}

SafetensorsFile parse_safetensors(const std::string& origin, const uint8_t* data, size_t size) {
  UMBRA_CHECK(size >= 8, origin, ": file is ", size,
              " bytes, expected at least 8 (the header length field)");
  const uint64_t n = checked_header_length(origin, data, size);
  const uint8_t* data_section = data + 8 + n;
  const Header h = parse_header(origin, reinterpret_cast<const char*>(data + 8), n, size - 8 - n);
  SafetensorsFile out;
  out.metadata = h.metadata;
  for (const Entry& e : h.entries) {
    torch::Tensor t = empty_tensor(e);
    if (e.end > e.begin) std::memcpy(t.data_ptr(), data_section + e.begin, e.end - e.begin);
    check_bool_values(origin, e, t);
    out.tensors.emplace(e.name, std::move(t));
  }
  return out;
}

SafetensorsFile load_safetensors(const std::string& path) {
  FilePtr f(std::fopen(path.c_str(), "rb"));
  UMBRA_CHECK(f != nullptr, path, ": cannot open for reading: ", std::strerror(errno));
  struct stat st {};
  UMBRA_CHECK(::fstat(::fileno(f.get()), &st) == 0, path, ": cannot stat: ", std::strerror(errno));
  UMBRA_CHECK(S_ISREG(st.st_mode), path, ": expected a regular file");
  const uint64_t size = static_cast<uint64_t>(st.st_size);

  auto read_exactly = [&](void* dst, uint64_t count, const char* what) {
    if (count == 0) return;
    const size_t got = std::fread(dst, 1, count, f.get());
    UMBRA_CHECK(got == count, path, ": ", what, ": expected ", count, " bytes, read ", got,
                std::ferror(f.get()) ? std::string(" (") + std::strerror(errno) + ")"
                                     : std::string(" (file shrank while reading)"));
  };

  UMBRA_CHECK(size >= 8, path, ": file is ", size,
              " bytes, expected at least 8 (the header length field)");
  uint8_t prefix[8];
  read_exactly(prefix, 8, "header length");
  const uint64_t n = checked_header_length(path, prefix, size);
  std::string text(n, '\0');
  read_exactly(text.data(), n, "header");
  const Header h = parse_header(path, text.data(), text.size(), size - 8 - n);

  // Entries are sorted and tile the data section, so one sequential pass reads them all.
  SafetensorsFile out;
  out.metadata = h.metadata;
  for (const Entry& e : h.entries) {
    torch::Tensor t = empty_tensor(e);
    read_exactly(t.data_ptr(), e.end - e.begin, ("data of tensor '" + e.name + "'").c_str());
    check_bool_values(path, e, t);
    out.tensors.emplace(e.name, std::move(t));
  }
  return out;
}

}  // namespace umbra
