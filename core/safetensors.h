// safetensors I/O (https://github.com/huggingface/safetensors, format spec):
//   8-byte little-endian u64 N | N bytes of JSON header | raw little-endian tensor data.
// The header maps tensor name -> {"dtype", "shape", "data_offsets": [begin, end)} (offsets relative
// to the start of the data section) plus an optional "__metadata__" map of string -> string.
// Weights leave Umbra in this format so Python can load them without LibTorch (DESIGN.md §8).
//
// Thread-safety: the functions share no state; concurrent calls on different paths are safe.
#pragma once

#include <torch/torch.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

namespace umbra {

using TensorMap = std::map<std::string, torch::Tensor>;
using Metadata = std::map<std::string, std::string>;

struct SafetensorsFile {
  TensorMap tensors;  // contiguous CPU tensors owning their memory
  Metadata metadata;
};

// Limits applied when reading (the spec's reference implementation caps the header at 100 MB).
constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;
constexpr size_t kSafetensorsMaxRank = 64;

// Writes atomically (temporary name in the same directory, fsync, rename). Tensors may live on
// any device and have any layout; they are copied to contiguous CPU memory. Supported dtypes:
// F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL. Tensor data is laid out in name order; the header is
// padded with spaces to a multiple of 8 bytes so the data section is 8-byte aligned.
// Throws umbra::Error naming the path (and tensor) on an unsupported dtype, an undefined tensor,
// the reserved name "__metadata__", or an I/O failure; the destination is untouched on failure.
void save_safetensors(const std::string& path, const TensorMap& tensors,
                      const Metadata& metadata = {});

// Reads and validates everything: header length against the file size (and the cap above), JSON
// syntax, an object at the top level, no duplicate names, each entry's dtype/shape/data_offsets of
// the right JSON types, known dtypes, shapes of at most kSafetensorsMaxRank non-negative dims,
// data_offsets[1] - data_offsets[0] == numel * itemsize (overflow-checked), offsets inside the data
// section, entries contiguous and non-overlapping and covering the whole data section, BOOL bytes
// 0 or 1, "__metadata__" a map of string -> string.
// Any violation throws umbra::Error naming the path, the tensor and what was expected.
SafetensorsFile load_safetensors(const std::string& path);

// The same validation on an in-memory image of a file (used by the fuzzer and the tests);
// `origin` names the source in error messages. Never reads outside [data, data + size).
SafetensorsFile parse_safetensors(const std::string& origin, const uint8_t* data, size_t size);

}  // namespace umbra
