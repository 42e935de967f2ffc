// libFuzzer target: the IDX parser (gzip or raw) on arbitrary bytes, as images and as labels.
// Rejecting the input with umbra::Error is the expected outcome; anything else is a bug.
// fuzz-deps: umbra_data
#include <cstddef>
#include <cstdint>

#include "core/check.h"
#include "data/idx.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> decoded;
  try {
    decoded = umbra::maybe_gunzip(data, size, "fuzz-input");
  } catch (const umbra::Error&) {
    return 0;
  }
  for (uint32_t magic : {umbra::kIdxImagesMagic, umbra::kIdxLabelsMagic}) {
    try {
      const umbra::IdxArray a =
          umbra::parse_idx(decoded.data(), decoded.size(), magic, "fuzz-input");
      uint64_t n = 1;
      for (int64_t d : a.dims) n *= static_cast<uint64_t>(d);
      if (a.dims.size() != (magic & 0xff) || n != a.data.size()) __builtin_trap();
    } catch (const umbra::Error&) {
    }
  }
  return 0;
}
