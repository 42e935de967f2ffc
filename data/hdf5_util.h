// Checked HDF5 C API use: one error macro, owning handles, typed attribute helpers.
//
// Every HDF5 call in Umbra goes through UMBRA_H5(call, context...): a negative return throws
// umbra::Error whose message is the context (which names the file and what was being done)
// followed by the text of HDF5's own error stack. HDF5's automatic stack printing is switched
// off, so nothing reaches stderr behind the caller's back.
//
// Threading: Debian's HDF5 must be treated as not thread-safe. Every function of data/ that
// touches HDF5 first takes Hdf5Guard, a process-wide recursive lock, so HDF5 calls never run
// concurrently; by design they also all happen on the thread that opens or writes a dataset
// (the loader reads everything up front and decodes elsewhere).
//
// On Lustre/NFS set HDF5_USE_FILE_LOCKING=FALSE in the environment if opening shards fails
// with a file-locking error; Umbra only ever opens shards read-only.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "core/check.h"

namespace umbra {

// Holds the process-wide HDF5 lock and disables automatic error printing for this thread.
class Hdf5Guard {
 public:
  Hdf5Guard();

 private:
  std::unique_lock<std::recursive_mutex> lock_;
};

// The current thread's HDF5 error stack as one line ("H5Dread: ...; H5Z: inflate failed").
std::string hdf5_error_text();

namespace detail {
[[noreturn]] void hdf5_fail(const std::string& context);
}  // namespace detail

// An owning hid_t; closes with H5Idec_ref. Never wrap predefined ids (H5T_NATIVE_*).
class H5Id {
 public:
  H5Id() = default;
  explicit H5Id(hid_t id) : id_(id) {}
  ~H5Id() { reset(); }
  H5Id(H5Id&& o) noexcept : id_(o.id_) { o.id_ = H5I_INVALID_HID; }
  H5Id& operator=(H5Id&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = o.id_;
      o.id_ = H5I_INVALID_HID;
    }
    return *this;
  }
  H5Id(const H5Id&) = delete;
  H5Id& operator=(const H5Id&) = delete;
  hid_t get() const { return id_; }
  operator hid_t() const { return id_; }  // NOLINT: handles are passed straight to the C API
  void reset();

 private:
  hid_t id_ = H5I_INVALID_HID;
};

// Attribute helpers on an open object. Readers check the attribute's class (integer/string)
// and shape (scalar or 1-D) and throw naming `where` (usually the file) and the attribute.
// Strings are fixed-length UTF-8 (NUL-padded to the longest value); variable-length string
// attributes are refused, because libhdf5 1.10 reads them from its global heap without
// validating lengths (a corrupt file overruns memory there).
bool h5_has_attribute(hid_t obj, const std::string& name, const std::string& where);
int64_t h5_read_int_attribute(hid_t obj, const std::string& name, const std::string& where);
std::string h5_read_string_attribute(hid_t obj, const std::string& name, const std::string& where);
std::vector<std::string> h5_read_string_list_attribute(hid_t obj, const std::string& name,
                                                       const std::string& where);
void h5_write_int_attribute(hid_t obj, const std::string& name, int64_t value,
                            const std::string& where);
void h5_write_string_attribute(hid_t obj, const std::string& name, const std::string& value,
                               const std::string& where);
void h5_write_string_list_attribute(hid_t obj, const std::string& name,
                                    const std::vector<std::string>& values,
                                    const std::string& where);

}  // namespace umbra

// UMBRA_H5(call, context...): evaluates an HDF5 call returning herr_t/hid_t/htri_t/ssize_t and
// throws umbra::Error(context + ": " + HDF5 error stack) when it is negative. Returns the value.
#define UMBRA_H5(call, ...)                                                                     \
  ([&]() {                                                                                      \
    auto umbra_h5_result_ = (call);                                                             \
    if (umbra_h5_result_ < 0) ::umbra::detail::hdf5_fail(::umbra::detail::concat(__VA_ARGS__)); \
    return umbra_h5_result_;                                                                    \
  }())
