#include "data/batch.h"

#include <array>

#include "core/check.h"
#include "core/pixels.h"
#include "core/rng.h"

namespace umbra {
namespace {

constexpr int64_t kPadSide = 32;

const std::array<float, 256>& pixel_table() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int v = 0; v < 256; ++v) t[v] = pixel_to_model_value(static_cast<uint8_t>(v));
    return t;
  }();
  return table;
}

}  // namespace

std::pair<int64_t, int64_t> decoded_size(const DatasetMeta& meta, const DecodeOptions& options) {
  if (!options.pad_to_32) return {meta.height, meta.width};
  UMBRA_CHECK(meta.height <= kPadSide && meta.width <= kPadSide, "data.pad_to_32: images are ",
              meta.height, "x", meta.width, ", larger than 32x32; turn pad_to_32 off");
  return {kPadSide, kPadSide};
}

bool flips(uint64_t seed, int64_t global_step, int64_t id) {
  return rng_uniform(seed, rng_stream(RngStream::kAugment, static_cast<uint64_t>(global_step)),
                     static_cast<uint64_t>(id)) < 0.5;
}

Batch decode_batch(const SplitData& split, const std::vector<int64_t>& positions,
                   int64_t global_step, const DecodeOptions& options) {
  const DatasetMeta& meta = split.meta;
  const auto [out_h, out_w] = decoded_size(meta, options);
  const int64_t n = static_cast<int64_t>(positions.size());
  const int64_t c = meta.channels, h = meta.height, w = meta.width;
  const int64_t top = (out_h - h) / 2, left = (out_w - w) / 2;
  const bool padded = out_h != h || out_w != w;
  Batch b;
  b.images = torch::empty({n, c, out_h, out_w}, torch::kFloat32);
  b.labels = torch::empty({n}, torch::kInt64);
  b.ids = torch::empty({n}, torch::kInt64);
  float* dst = b.images.data_ptr<float>();
  int64_t* labels = b.labels.data_ptr<int64_t>();
  int64_t* ids = b.ids.data_ptr<int64_t>();
  const auto& table = pixel_table();
  if (padded) std::fill(dst, dst + n * c * out_h * out_w, -1.0f);
  for (int64_t k = 0; k < n; ++k) {
    const int64_t pos = positions[k];
    UMBRA_ASSERT(pos >= 0 && pos < split.count(), "position ", pos, " outside the split");
    labels[k] = split.labels[pos];
    ids[k] = split.ids[pos];
    const bool flip = options.hflip && flips(options.seed, global_step, ids[k]);
    const uint8_t* src = split.image(pos);
    for (int64_t ch = 0; ch < c; ++ch) {
      float* plane = dst + (k * c + ch) * out_h * out_w;
      for (int64_t y = 0; y < h; ++y) {
        const uint8_t* row = src + (ch * h + y) * w;
        float* out = plane + (top + y) * out_w + left;
        if (flip) {
          for (int64_t x = 0; x < w; ++x) out[x] = table[row[w - 1 - x]];
        } else {
          for (int64_t x = 0; x < w; ++x) out[x] = table[row[x]];
        }
      }
    }
  }
  return b;
}

}  // namespace umbra
