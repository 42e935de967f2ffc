// libFuzzer target: the HDF5 shard reader on arbitrary bytes. HDF5 needs a file name, so each
// input is written to a per-process temporary file first. Rejecting the input with umbra::Error
// is the expected outcome; any other exception, an ASan report, a crash or a hang is a bug
// (in Umbra's validation, or in libhdf5 itself when the stack shows only H5* frames).
// Known libhdf5 1.10.8 findings (not fixable here; datasets are protected by checking each
// shard's SHA-256 against the manifest before libhdf5 opens it, see data/dataset.h):
// heap-buffer-overflow in attribute-message decoding under H5Aexists, memcpy overlap in
// H5HG_read for variable-length strings (Umbra now refuses vlen strings), leaks on failed
// H5Fopen, and malloc of absurd sizes from corrupt object headers (HDF5 handles the NULL: run
// with ASAN_OPTIONS=allocator_may_return_null=1 and -detect_leaks=0 to see past these).
// fuzz-deps: umbra_data
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include "core/check.h"
#include "data/shard.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/umbra-fuzz-shard-" + std::to_string(::getpid()) + ".h5";
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) __builtin_trap();
  if (size > 0 && std::fwrite(data, 1, size, f) != size) __builtin_trap();
  std::fclose(f);
  try {
    const umbra::ShardData shard = umbra::read_shard(path);
    // Accepted shards must be self-consistent.
    if (shard.images.size() != static_cast<size_t>(shard.count() * shard.meta.image_bytes()) ||
        shard.ids.size() != shard.labels.size())
      __builtin_trap();
    for (int64_t label : shard.labels)
      if (label < 0 || label >= shard.meta.num_classes()) __builtin_trap();
  } catch (const umbra::Error&) {
  }
  return 0;
}
