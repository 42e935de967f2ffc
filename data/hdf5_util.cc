#include "data/hdf5_util.h"

#include <algorithm>

namespace umbra {
namespace {

std::recursive_mutex& hdf5_mutex() {
  static std::recursive_mutex m;
  return m;
}

herr_t collect_error(unsigned n, const H5E_error2_t* err, void* data) {
  auto* out = static_cast<std::vector<std::string>*>(data);
  std::string entry = err->func_name ? err->func_name : "?";
  entry += ": ";
  entry += err->desc ? err->desc : "";
  char minor[256] = {0};
  if (H5Eget_msg(err->min_num, nullptr, minor, sizeof(minor)) > 0) {
    entry += " (";
    entry += minor;
    entry += ")";
  }
  out->push_back(entry);
  return 0;
}

// Largest string list an attribute may hold; guards allocation against corrupt files.
constexpr hssize_t kMaxAttributeElements = 1 << 20;
constexpr size_t kMaxAttributeBytes = size_t{16} << 20;

H5Id open_attribute(hid_t obj, const std::string& name, const std::string& where) {
  const htri_t exists =
      UMBRA_H5(H5Aexists(obj, name.c_str()), where, ": checking attribute '", name, "'");
  UMBRA_CHECK(exists > 0, where, ": attribute '", name, "' is missing");
  return H5Id(
      UMBRA_H5(H5Aopen(obj, name.c_str(), H5P_DEFAULT), where, ": opening attribute '", name, "'"));
}

// Number of elements of a scalar (1) or 1-D attribute; anything else is an error.
hssize_t attribute_elements(hid_t attr, const std::string& name, const std::string& where,
                            bool allow_list) {
  H5Id space(UMBRA_H5(H5Aget_space(attr), where, ": attribute '", name, "' dataspace"));
  const int rank =
      UMBRA_H5(H5Sget_simple_extent_ndims(space), where, ": attribute '", name, "' rank");
  UMBRA_CHECK(rank == 0 || (allow_list && rank == 1), where, ": attribute '", name, "' must be ",
              allow_list ? "a scalar or 1-D" : "a scalar", ", got rank ", rank);
  const hssize_t n =
      UMBRA_H5(H5Sget_simple_extent_npoints(space), where, ": attribute '", name, "' size");
  UMBRA_CHECK(n >= 0 && n <= kMaxAttributeElements, where, ": attribute '", name,
              "' has an implausible number of elements (", n, ")");
  UMBRA_CHECK(allow_list || n == 1, where, ": attribute '", name, "' must hold one value, got ", n);
  return n;
}

std::vector<std::string> read_strings(hid_t obj, const std::string& name, const std::string& where,
                                      bool allow_list) {
  H5Id attr = open_attribute(obj, name, where);
  H5Id type(UMBRA_H5(H5Aget_type(attr), where, ": attribute '", name, "' type"));
  UMBRA_CHECK(
      UMBRA_H5(H5Tget_class(type), where, ": attribute '", name, "' type class") == H5T_STRING,
      where, ": attribute '", name, "' must be a string");
  const hssize_t n = attribute_elements(attr, name, where, allow_list);
  std::vector<std::string> out;
  out.reserve(static_cast<size_t>(n));
  const htri_t variable =
      UMBRA_H5(H5Tis_variable_str(type), where, ": attribute '", name, "' string kind");
  // Variable-length strings live in HDF5's global heap, whose object lengths libhdf5 1.10 does
  // not validate: a corrupt file makes H5Aread copy out of bounds (found by fuzzing). Umbra
  // writes fixed-length strings and refuses the other kind.
  UMBRA_CHECK(variable == 0, where, ": attribute '", name, "' must be a fixed-length string ",
              "(variable-length strings are not accepted; with h5py write e.g. ",
              "np.array([n.encode() for n in names], dtype=h5py.string_dtype('utf-8', 64)))");
  H5Id memtype(UMBRA_H5(H5Tcopy(H5T_C_S1), where, ": string type"));
  // HDF5 does not convert between ASCII and UTF-8; read in the stored character set.
  const H5T_cset_t cset = H5Tget_cset(type);
  if (cset < 0) detail::hdf5_fail(where + ": attribute '" + name + "' character set");
  UMBRA_H5(H5Tset_cset(memtype, cset), where, ": string type");
  const size_t size = H5Tget_size(type);  // 0 on error
  if (size == 0) detail::hdf5_fail(where + ": attribute '" + name + "' string size");
  UMBRA_CHECK(size <= kMaxAttributeBytes && size * static_cast<size_t>(n) <= kMaxAttributeBytes,
              where, ": attribute '", name, "' is implausibly large (", n, " strings of ", size,
              " bytes)");
  UMBRA_H5(H5Tset_size(memtype, size), where, ": string type");
  // NUL-padded in memory: a NUL-terminated type of the same size would drop the last character.
  UMBRA_H5(H5Tset_strpad(memtype, H5T_STR_NULLPAD), where, ": string type");
  std::vector<char> buf(size * static_cast<size_t>(n), 0);
  UMBRA_H5(H5Aread(attr, memtype, buf.data()), where, ": reading attribute '", name, "'");
  for (hssize_t i = 0; i < n; ++i) {
    const char* p = buf.data() + static_cast<size_t>(i) * size;
    out.emplace_back(p, std::find(p, p + size, '\0'));
  }
  return out;
}

void write_strings(hid_t obj, const std::string& name, const std::vector<std::string>& values,
                   bool scalar, const std::string& where) {
  // Fixed-length UTF-8, as long as the longest value (see read_strings for why not vlen).
  size_t size = 1;
  for (const auto& v : values) size = std::max(size, v.size());
  UMBRA_CHECK(size <= kMaxAttributeBytes && size * values.size() <= kMaxAttributeBytes, where,
              ": attribute '", name, "' is too large to store");
  H5Id type(UMBRA_H5(H5Tcopy(H5T_C_S1), where, ": string type"));
  UMBRA_H5(H5Tset_size(type, size), where, ": string type");
  UMBRA_H5(H5Tset_strpad(type, H5T_STR_NULLPAD), where, ": string type");
  UMBRA_H5(H5Tset_cset(type, H5T_CSET_UTF8), where, ": string type");
  const hsize_t dims[1] = {values.size()};
  H5Id space(scalar ? UMBRA_H5(H5Screate(H5S_SCALAR), where, ": dataspace")
                    : UMBRA_H5(H5Screate_simple(1, dims, nullptr), where, ": dataspace"));
  H5Id attr(UMBRA_H5(H5Acreate2(obj, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT), where,
                     ": creating attribute '", name, "'"));
  std::vector<char> buf(size * values.size(), '\0');
  for (size_t i = 0; i < values.size(); ++i)
    std::copy(values[i].begin(), values[i].end(),
              buf.begin() + static_cast<std::ptrdiff_t>(i * size));
  UMBRA_H5(H5Awrite(attr, type, buf.data()), where, ": writing attribute '", name, "'");
}

}  // namespace

Hdf5Guard::Hdf5Guard() : lock_(hdf5_mutex()) {
  // The automatic printer is per thread in thread-safe builds; switching it off is cheap.
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

std::string hdf5_error_text() {
  std::vector<std::string> entries;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, collect_error, &entries);
  if (entries.empty()) return "HDF5 reported an error without details";
  // The outermost call says what failed, the innermost why; the middle is plumbing.
  std::string out = "HDF5: " + entries.front();
  if (entries.size() > 1) out += " <- " + entries.back();
  return out;
}

namespace detail {
void hdf5_fail(const std::string& context) {
  const std::string text = hdf5_error_text();
  H5Eclear2(H5E_DEFAULT);
  throw Error(context + ": " + text);
}
}  // namespace detail

void H5Id::reset() {
  if (id_ >= 0) H5Idec_ref(id_);
  id_ = H5I_INVALID_HID;
}

bool h5_has_attribute(hid_t obj, const std::string& name, const std::string& where) {
  return UMBRA_H5(H5Aexists(obj, name.c_str()), where, ": checking attribute '", name, "'") > 0;
}

int64_t h5_read_int_attribute(hid_t obj, const std::string& name, const std::string& where) {
  H5Id attr = open_attribute(obj, name, where);
  H5Id type(UMBRA_H5(H5Aget_type(attr), where, ": attribute '", name, "' type"));
  UMBRA_CHECK(
      UMBRA_H5(H5Tget_class(type), where, ": attribute '", name, "' type class") == H5T_INTEGER,
      where, ": attribute '", name, "' must be an integer");
  attribute_elements(attr, name, where, false);
  int64_t value = 0;
  UMBRA_H5(H5Aread(attr, H5T_NATIVE_INT64, &value), where, ": reading attribute '", name, "'");
  return value;
}

std::string h5_read_string_attribute(hid_t obj, const std::string& name, const std::string& where) {
  auto values = read_strings(obj, name, where, false);
  return values.front();
}

std::vector<std::string> h5_read_string_list_attribute(hid_t obj, const std::string& name,
                                                       const std::string& where) {
  return read_strings(obj, name, where, true);
}

void h5_write_int_attribute(hid_t obj, const std::string& name, int64_t value,
                            const std::string& where) {
  H5Id space(UMBRA_H5(H5Screate(H5S_SCALAR), where, ": dataspace"));
  H5Id attr(UMBRA_H5(H5Acreate2(obj, name.c_str(), H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT),
                     where, ": creating attribute '", name, "'"));
  UMBRA_H5(H5Awrite(attr, H5T_NATIVE_INT64, &value), where, ": writing attribute '", name, "'");
}

void h5_write_string_attribute(hid_t obj, const std::string& name, const std::string& value,
                               const std::string& where) {
  write_strings(obj, name, {value}, true, where);
}

void h5_write_string_list_attribute(hid_t obj, const std::string& name,
                                    const std::vector<std::string>& values,
                                    const std::string& where) {
  write_strings(obj, name, values, false, where);
}

}  // namespace umbra
