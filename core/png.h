// PNG files (libpng): 8-bit images in and out, and image grids of model samples.
//
// Pixel layout everywhere here is HWC, row-major, 8 bits per channel: byte (y, x, c) sits at
// pixels[(y * width + x) * channels + c]. Channels: 1 = gray, 2 = gray + alpha, 3 = RGB,
// 4 = RGBA. Errors (unreadable file, not a PNG, truncated or corrupt data, libpng's own
// complaints) throw umbra::Error naming the file. Thread-safety: no shared state; concurrent
// calls on different files are safe.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace umbra {

struct PngImage {
  int64_t height = 0;
  int64_t width = 0;
  int64_t channels = 0;         // 1, 2, 3 or 4 (see above)
  std::vector<uint8_t> pixels;  // height * width * channels bytes, HWC
};

// Largest image read_png accepts (width * height * channels after expansion to 8 bits); larger
// headers are rejected before any allocation.
constexpr uint64_t kPngMaxBytes = uint64_t{1} << 30;

// Writes an 8-bit PNG (gray, gray+alpha, RGB or RGBA by `channels`) from `height * width *
// channels` HWC bytes; height, width >= 1. Atomic: temporary name, fsync, rename, so `path` is
// either the old file or the complete new one.
void write_png(const std::string& path, const uint8_t* hwc, int64_t height, int64_t width,
               int64_t channels);

// Reads any PNG (palette, gray, gray+alpha, RGB, RGBA; 1-16 bits; interlaced or not) as 8-bit
// HWC. Palette images become RGB (RGBA with a transparency chunk), gray below 8 bits is scaled to
// 8 bits, 16-bit samples keep their high byte.
PngImage read_png(const std::string& path);

// Lays out N images as a grid, like torchvision.utils.make_grid(padding=padding, pad_value=0):
// min(nrow, N) images per row, ceil(N / min(nrow, N)) rows, `padding` black pixels around and
// between the tiles. Image i sits in grid row i / nrow, column i % nrow, with its top-left pixel
// at (padding + row * (H + padding), padding + col * (W + padding)).
//   images: [N, C, H, W], N >= 1, C = 1 (gray) or 3 (RGB), on any device, either
//     - floating point in model space (core/pixels.h): byte = clamp(floor((v + 1) * 128), 0, 255),
//       i.e. -1 -> 0, 0 -> 128, 1 -> 255, NaN -> 128; or
//     - uint8 in [0, 255], used as is.
// Returns uint8 [C, N_rows * (H + padding) + padding, ncol * (W + padding) + padding] on the CPU.
torch::Tensor make_image_grid(const torch::Tensor& images, int64_t nrow, int64_t padding = 2);

// make_image_grid written as a PNG (gray for C = 1, RGB for C = 3).
void save_image_grid(const std::string& path, const torch::Tensor& images, int64_t nrow,
                     int64_t padding = 2);

}  // namespace umbra
