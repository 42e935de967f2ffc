#include "core/png.h"

#include <png.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>

#include "core/check.h"
#include "core/pixels.h"

namespace umbra {
namespace {

// libpng reports errors by calling on_error, which must not return; it records the message and
// longjmps back to the setjmp in the calling helper. The helpers below that call setjmp hold only
// trivially destructible locals, so the longjmp skips no C++ destructor; every C++ object (file
// handles, buffers, the libpng structs' owner) lives in their callers.
struct PngErrorState {
  char message[256] = {0};
};

void on_error(png_structp png, png_const_charp message) {
  auto* state = static_cast<PngErrorState*>(png_get_error_ptr(png));
  std::snprintf(state->message, sizeof(state->message), "%s", message);
  png_longjmp(png, 1);
}

void on_warning(png_structp, png_const_charp) {}  // benign (e.g. odd colour profiles)

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using FilePtr = std::unique_ptr<std::FILE, FileCloser>;

// ---- writing ----

bool encode(std::FILE* f, png_bytep* rows, png_uint_32 height, png_uint_32 width, int color_type,
            PngErrorState* state) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, state, on_error, on_warning);
  if (png == nullptr) {
    std::snprintf(state->message, sizeof(state->message), "png_create_write_struct failed");
    return false;
  }
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_write_struct(&png, nullptr);
    std::snprintf(state->message, sizeof(state->message), "png_create_info_struct failed");
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return false;
  }
  png_init_io(png, f);
  png_set_IHDR(png, info, width, height, 8, color_type, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  png_write_image(png, rows);
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return true;
}

int color_type_for(int64_t channels) {
  switch (channels) {
    case 1:
      return PNG_COLOR_TYPE_GRAY;
    case 2:
      return PNG_COLOR_TYPE_GRAY_ALPHA;
    case 3:
      return PNG_COLOR_TYPE_RGB;
    default:
      return PNG_COLOR_TYPE_RGB_ALPHA;
  }
}

// ---- reading ----

struct ReadState {
  PngErrorState error;  // first member: libpng's error pointer
  std::FILE* file = nullptr;
  png_structp png = nullptr;
  png_infop info = nullptr;
};

void read_data(png_structp png, png_bytep out, size_t count) {
  auto* state = static_cast<ReadState*>(png_get_io_ptr(png));
  if (std::fread(out, 1, count, state->file) != count) {
    png_error(png,
              std::ferror(state->file) ? "read error" : "unexpected end of file (truncated PNG)");
  }
}

// Reads the header and sets up expansion to 8-bit gray/gray+alpha/RGB/RGBA.
bool read_info(ReadState* s, png_uint_32* height, png_uint_32* width, int* channels,
               size_t* row_bytes) {
  if (setjmp(png_jmpbuf(s->png))) return false;
  png_set_read_fn(s->png, s, read_data);
  png_set_sig_bytes(s->png, 8);
  png_read_info(s->png, s->info);
  png_set_expand(s->png);
  png_set_strip_16(s->png);
  png_set_interlace_handling(s->png);
  png_read_update_info(s->png, s->info);
  *height = png_get_image_height(s->png, s->info);
  *width = png_get_image_width(s->png, s->info);
  *channels = png_get_channels(s->png, s->info);
  *row_bytes = png_get_rowbytes(s->png, s->info);
  return true;
}

bool read_rows(ReadState* s, png_bytep* rows) {
  if (setjmp(png_jmpbuf(s->png))) return false;
  png_read_image(s->png, rows);
  png_read_end(s->png, nullptr);
  return true;
}

// ---- grids ----

torch::Tensor to_bytes(const torch::Tensor& images, const std::string& what) {
  if (images.scalar_type() == torch::kByte) return images.detach().to(torch::kCPU);
  UMBRA_CHECK(images.is_floating_point(), what, ": expected float images in [-1, 1] or uint8, got ",
              images.scalar_type());
  torch::NoGradGuard no_grad;
  // NaN is drawn as 0 (mid gray) rather than left to an undefined float -> uint8 cast.
  return model_to_pixels(images).to(torch::kCPU);
}

torch::Tensor grid_of(const torch::Tensor& images, int64_t nrow, int64_t padding,
                      const std::string& what) {
  UMBRA_CHECK(images.defined() && images.dim() == 4, what, ": expected images [N, C, H, W], got ",
              images.defined() ? c10::str(images.sizes()) : std::string("an undefined tensor"));
  const int64_t n = images.size(0), c = images.size(1), h = images.size(2), w = images.size(3);
  UMBRA_CHECK(n >= 1 && h >= 1 && w >= 1, what, ": expected at least one non-empty image, got ",
              images.sizes());
  UMBRA_CHECK(c == 1 || c == 3, what, ": expected 1 (gray) or 3 (RGB) channels, got ", c);
  UMBRA_CHECK(nrow >= 1, what, ": expected nrow >= 1, got ", nrow);
  UMBRA_CHECK(padding >= 0, what, ": expected padding >= 0, got ", padding);
  const torch::Tensor bytes = to_bytes(images, what);
  const int64_t ncol = std::min(nrow, n);
  const int64_t rows = (n + ncol - 1) / ncol;
  torch::Tensor grid = torch::zeros(
      {c, rows * (h + padding) + padding, ncol * (w + padding) + padding}, torch::kByte);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t y = padding + (i / ncol) * (h + padding);
    const int64_t x = padding + (i % ncol) * (w + padding);
    grid.narrow(1, y, h).narrow(2, x, w).copy_(bytes[i]);
  }
  return grid;
}

}  // namespace

void write_png(const std::string& path, const uint8_t* hwc, int64_t height, int64_t width,
               int64_t channels) {
  constexpr int64_t kMaxSide = std::numeric_limits<int32_t>::max();  // PNG's own limit
  UMBRA_CHECK(height >= 1 && width >= 1 && height <= kMaxSide && width <= kMaxSide, path,
              ": expected an image of 1..", kMaxSide, " pixels per side, got ", height, "x", width);
  UMBRA_CHECK(channels >= 1 && channels <= 4, path, ": expected 1 to 4 channels, got ", channels);
  UMBRA_CHECK(hwc != nullptr, path, ": no pixel data");

  std::vector<png_bytep> rows(static_cast<size_t>(height));
  for (int64_t y = 0; y < height; ++y) {
    rows[y] = const_cast<png_bytep>(hwc + y * width * channels);
  }
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  FilePtr f(std::fopen(tmp.c_str(), "wb"));
  UMBRA_CHECK(f != nullptr, path, ": cannot create temporary file '", tmp,
              "': ", std::strerror(errno));
  PngErrorState state;
  bool ok = encode(f.get(), rows.data(), static_cast<png_uint_32>(height),
                   static_cast<png_uint_32>(width), color_type_for(channels), &state);
  std::string failure = ok ? "" : std::string("libpng: ") + state.message;
  if (ok && (std::fflush(f.get()) != 0 || ::fsync(::fileno(f.get())) != 0)) {
    ok = false;
    failure = std::string("flush to '") + tmp + "' failed: " + std::strerror(errno);
  }
  const int close_rc = std::fclose(f.release());
  if (ok && close_rc != 0) {
    ok = false;
    failure = std::string("close of '") + tmp + "' failed: " + std::strerror(errno);
  }
  if (ok && std::rename(tmp.c_str(), path.c_str()) != 0) {
    ok = false;
    failure = std::string("rename from '") + tmp + "' failed: " + std::strerror(errno);
  }
  if (!ok) {
    std::remove(tmp.c_str());
    UMBRA_FAIL(path, ": cannot write PNG: ", failure);
  }
}

PngImage read_png(const std::string& path) {
  FilePtr f(std::fopen(path.c_str(), "rb"));
  UMBRA_CHECK(f != nullptr, path, ": cannot open for reading: ", std::strerror(errno));
  png_byte signature[8] = {0};
  const size_t got = std::fread(signature, 1, sizeof(signature), f.get());
  UMBRA_CHECK(got == sizeof(signature) && png_sig_cmp(signature, 0, sizeof(signature)) == 0, path,
              ": not a PNG file (expected the 8-byte PNG signature at the start)");

  ReadState s;
  s.file = f.get();
  s.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &s.error, on_error, on_warning);
  UMBRA_CHECK(s.png != nullptr, path, ": png_create_read_struct failed");
  s.info = png_create_info_struct(s.png);
  struct Destroy {
    ReadState* s;
    ~Destroy() { png_destroy_read_struct(&s->png, s->info ? &s->info : nullptr, nullptr); }
  } destroy{&s};
  UMBRA_CHECK(s.info != nullptr, path, ": png_create_info_struct failed");

  png_uint_32 height = 0, width = 0;
  int channels = 0;
  size_t row_bytes = 0;
  UMBRA_CHECK(read_info(&s, &height, &width, &channels, &row_bytes), path,
              ": not a valid PNG: ", s.error.message);
  const uint64_t total = uint64_t{height} * width * static_cast<uint64_t>(channels);
  UMBRA_CHECK(total <= kPngMaxBytes, path, ": image of ", width, "x", height, "x", channels,
              " bytes exceeds the limit of ", kPngMaxBytes, " bytes");
  UMBRA_ASSERT(row_bytes == uint64_t{width} * channels, "libpng row size ", row_bytes,
               " for 8-bit width ", width, " x ", channels);

  PngImage image;
  image.height = height;
  image.width = width;
  image.channels = channels;
  image.pixels.resize(total);
  std::vector<png_bytep> rows(height);
  for (png_uint_32 y = 0; y < height; ++y) rows[y] = image.pixels.data() + y * row_bytes;
  UMBRA_CHECK(read_rows(&s, rows.data()), path, ": not a valid PNG: ", s.error.message);
  return image;
}

torch::Tensor make_image_grid(const torch::Tensor& images, int64_t nrow, int64_t padding) {
  return grid_of(images, nrow, padding, "make_image_grid");
}

void save_image_grid(const std::string& path, const torch::Tensor& images, int64_t nrow,
                     int64_t padding) {
  const torch::Tensor grid = grid_of(images, nrow, padding, path).permute({1, 2, 0}).contiguous();
  write_png(path, grid.data_ptr<uint8_t>(), grid.size(0), grid.size(1), grid.size(2));
}

}  // namespace umbra
