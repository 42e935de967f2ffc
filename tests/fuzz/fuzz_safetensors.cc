// libFuzzer target: the safetensors reader on arbitrary bytes. Rejecting the input with
// umbra::Error is the expected outcome for almost every input; anything else that escapes
// (another exception, an ASan report, a crash, a hang) is a bug.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "core/check.h"
#include "core/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const umbra::SafetensorsFile file = umbra::parse_safetensors("fuzz-input", data, size);
    // What was accepted must be self-consistent: every tensor owns exactly numel * itemsize
    // readable bytes (ASan flags an over-read) and the sizes add up to at most the input.
    size_t total = 0;
    uint8_t fold = 0;
    for (const auto& item : file.tensors) {
      const torch::Tensor& t = item.second;
      if (!t.is_contiguous() || !t.device().is_cpu()) __builtin_trap();
      const size_t nbytes = static_cast<size_t>(t.numel()) * t.element_size();
      const auto* bytes = static_cast<const uint8_t*>(t.data_ptr());
      for (size_t i = 0; i < nbytes; ++i) fold ^= bytes[i];
      total += nbytes;
    }
    if (total > size) __builtin_trap();
    __asm__ volatile("" : : "r"(fold) : "memory");  // keep the reads
  } catch (const umbra::Error&) {
  }
  return 0;
}
