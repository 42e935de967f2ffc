// Turning sample positions of an in-memory split into model-ready tensors.
//
// uint8 pixel x becomes (x + 0.5) / 128 - 1, the centre of its bin (core/pixels.h). pad_to_32
// centres each image in a 32x32 canvas filled with -1, the value the autoencoder pads with
// (models/autoencoder.h; padding is not data): top = (32 - H) / 2, left = (32 - W) / 2. hflip
// mirrors sample `id` at global step `step` iff rng_uniform(seed, rng_stream(kAugment, step), id) <
// 0.5 - a pure function, so every rank and every resumed run flips the same images.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "data/dataset.h"

namespace umbra {

struct Batch {
  torch::Tensor images;         // float32 [B, C, H', W'] in [-1, 1] (H' = W' = 32 with pad_to_32)
  torch::Tensor labels;         // int64 [B]
  torch::Tensor ids;            // int64 [B], global sample ids
  int64_t epoch = 0, step = 0;  // sampler position of the step this batch belongs to
  int64_t global_step = 0;      // epoch * steps_per_epoch + step
  int64_t micro_index = 0;      // physical micro-batch micro_index of micro_count of the step
  int64_t micro_count = 1;

  int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
  bool last_of_step() const { return micro_index + 1 == micro_count; }
};

struct DecodeOptions {
  bool pad_to_32 = false;
  bool hflip = false;
  uint64_t seed = 0;  // flip stream seed (the sampler's)
};

// Output height/width for a split under these options; throws when pad_to_32 is asked for
// images larger than 32x32.
std::pair<int64_t, int64_t> decoded_size(const DatasetMeta& meta, const DecodeOptions& options);

// Whether sample `id` is flipped at `global_step` (see above).
bool flips(uint64_t seed, int64_t global_step, int64_t id);

// Builds images/labels/ids for `positions` (fields other than the tensors are left default).
// Thread-safe: reads `split` only.
Batch decode_batch(const SplitData& split, const std::vector<int64_t>& positions,
                   int64_t global_step, const DecodeOptions& options);

}  // namespace umbra
