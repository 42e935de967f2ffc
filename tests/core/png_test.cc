// PNG: round trips through libpng, and an independent decoder/encoder written from the PNG spec
// in Python (zlib + struct only, below) in both directions; bad files; image-grid geometry and
// pixel values against the make_grid definition in png.h.
#include "core/png.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "core/check.h"
#include "core/sha256.h"

namespace umbra {
namespace {

using nlohmann::json;

// `decode FILE`: prints {"height", "width", "channels", "sha256"} of the 8-bit, non-interlaced
// PNG's pixels (HWC), checking every chunk CRC. `encode DIR`: writes PNGs that exercise read_png's
// conversions and prints, per file, the 8-bit HWC pixels the spec says they hold.
const char* kPythonPng = R"PY(
import hashlib, json, struct, sys, zlib
SIG = b"\x89PNG\r\n\x1a\n"

def chunks(blob):
    assert blob[:8] == SIG, "bad signature"
    pos = 8
    while pos < len(blob):
        (n,) = struct.unpack(">I", blob[pos:pos + 4])
        kind, data = blob[pos + 4:pos + 8], blob[pos + 8:pos + 8 + n]
        (crc,) = struct.unpack(">I", blob[pos + 8 + n:pos + 12 + n])
        assert zlib.crc32(kind + data) & 0xFFFFFFFF == crc, "bad CRC"
        yield kind, data
        pos += 12 + n

def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)

def decode(path):
    idat, kinds = b"", []
    for kind, data in chunks(open(path, "rb").read()):
        kinds.append(kind)
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", data)
        elif kind == b"IDAT":
            idat += data
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and depth == 8 and interlace == 0
    ch = {0: 1, 4: 2, 2: 3, 6: 4}[ctype]
    raw, stride = zlib.decompress(idat), w * ch
    out, prev = bytearray(), bytearray(stride)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - ch] if i >= ch else 0
            c = prev[i - ch] if i >= ch else 0
            b = prev[i]
            pred = [0, a, b, (a + b) // 2, paeth(a, b, c)][f]
            line[i] = (line[i] + pred) & 255
        out += line
        prev = line
    print(json.dumps({"height": h, "width": w, "channels": ch,
                      "sha256": hashlib.sha256(bytes(out)).hexdigest()}))

def write(path, w, h, depth, ctype, rows, extra=()):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + r for r in rows)
    with open(path, "wb") as f:
        f.write(SIG + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 0)))
        for kind, data in extra:
            f.write(chunk(kind, data))
        f.write(chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))

def encode(d):
    expected = {}
    # 8-bit palette with transparency for the first two entries -> RGBA.
    pal = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (10, 20, 30)]
    alpha = [0, 128]
    idx = [[0, 1, 2], [3, 2, 1]]
    write(d + "/palette.png", 3, 2, 8, 3, [bytes(r) for r in idx],
          [(b"PLTE", bytes(sum(pal, ()))), (b"tRNS", bytes(alpha))])
    expected["palette.png"] = [3, 2, 4, [v for r in idx for i in r
                                         for v in pal[i] + ((alpha + [255] * 4)[i],)]]
    # 16-bit gray -> the high byte of each sample.
    g16 = [[0x0102, 0xFFFF], [0x8000, 0x7FFF], [0x00FF, 0x1234]]
    write(d + "/gray16.png", 2, 3, 16, 0, [b"".join(struct.pack(">H", v) for v in r) for r in g16])
    expected["gray16.png"] = [2, 3, 1, [v >> 8 for r in g16 for v in r]]
    # 1-bit gray, 9 pixels per row (rows padded to whole bytes) -> 0 or 255.
    bits = [[1, 0, 1, 1, 0, 0, 1, 0, 1], [0, 1, 0, 0, 1, 1, 0, 1, 0]]
    def pack(r):
        r = r + [0] * 7
        return bytes(sum(b << (7 - j) for j, b in enumerate(r[i:i + 8])) for i in range(0, 9, 8))
    write(d + "/gray1.png", 9, 2, 1, 0, [pack(r) for r in bits])
    expected["gray1.png"] = [9, 2, 1, [255 * b for r in bits for b in r]]
    # 8-bit gray + alpha, as is.
    ga = [[1, 2, 3, 4], [250, 251, 252, 253]]
    write(d + "/gray_alpha.png", 2, 2, 8, 4, [bytes(r) for r in ga])
    expected["gray_alpha.png"] = [2, 2, 2, [v for r in ga for v in r]]
    print(json.dumps(expected))

if sys.argv[1] == "decode":
    decode(sys.argv[2])
else:
    encode(sys.argv[2])
)PY";

class Png : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/umbra_png_test_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    std::ofstream(dir_ + "/png_ref.py") << kPythonPng;
  }
  void TearDown() override { std::system(("rm -rf '" + dir_ + "'").c_str()); }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  json python(const std::string& args) {
    const std::string command =
        std::string(UMBRA_PYTHON) + " " + path("png_ref.py") + " " + args + " 2>&1";
    std::string out;
    FILE* p = popen(command.c_str(), "r");
    EXPECT_NE(p, nullptr);
    if (p == nullptr) return json();
    char buf[4096];
    size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
    EXPECT_EQ(pclose(p), 0) << out;
    return json::parse(out, nullptr, /*allow_exceptions=*/false);
  }
  std::string dir_;
};

std::vector<uint8_t> pattern(size_t n, uint32_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) {
    seed = seed * 1664525u + 1013904223u;
    v[i] = static_cast<uint8_t>(seed >> 24);
  }
  return v;
}

TEST_F(Png, RoundTripAndIndependentDecoder) {
  for (int64_t channels : {1, 2, 3, 4}) {
    SCOPED_TRACE(channels);
    const int64_t h = 13, w = 7;
    const std::vector<uint8_t> pixels = pattern(h * w * channels, channels);
    const std::string file = path("rt" + std::to_string(channels) + ".png");
    write_png(file, pixels.data(), h, w, channels);

    const PngImage image = read_png(file);
    EXPECT_EQ(image.height, h);
    EXPECT_EQ(image.width, w);
    EXPECT_EQ(image.channels, channels);
    EXPECT_EQ(image.pixels, pixels);

    const json py = python("decode " + file);
    EXPECT_EQ(py.value("height", -1), h);
    EXPECT_EQ(py.value("width", -1), w);
    EXPECT_EQ(py.value("channels", -1), channels);
    EXPECT_EQ(py.value("sha256", ""), sha256_hex(pixels.data(), pixels.size()));
  }
}

TEST_F(Png, ReadsPaletteSixteenBitLowBitAndGrayAlphaFromIndependentEncoder) {
  const json expected = python("encode " + dir_);
  ASSERT_TRUE(expected.is_object());
  ASSERT_EQ(expected.size(), 4u);
  for (const auto& item : expected.items()) {
    SCOPED_TRACE(item.key());
    const PngImage image = read_png(path(item.key()));
    EXPECT_EQ(image.width, item.value()[0].get<int64_t>());
    EXPECT_EQ(image.height, item.value()[1].get<int64_t>());
    EXPECT_EQ(image.channels, item.value()[2].get<int64_t>());
    EXPECT_EQ(image.pixels, item.value()[3].get<std::vector<uint8_t>>());
  }
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("unexpected exception type: ") + e.what();
  }
  return "no exception";
}

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << (haystack)

std::string slurp(const std::string& file) {
  std::stringstream s;
  s << std::ifstream(file, std::ios::binary).rdbuf();
  return s.str();
}

TEST_F(Png, NotAPngOrMissing) {
  const std::string text = path("notes.png");
  std::ofstream(text) << "this is a text file, not an image\n";
  std::string msg = error_of([&] { read_png(text); });
  EXPECT_CONTAINS(msg, text);
  EXPECT_CONTAINS(msg, "not a PNG");

  const std::string empty = path("empty.png");
  std::ofstream{empty};
  EXPECT_CONTAINS(error_of([&] { read_png(empty); }), empty);

  const std::string missing = path("missing.png");
  msg = error_of([&] { read_png(missing); });
  EXPECT_CONTAINS(msg, missing);
  EXPECT_CONTAINS(msg, "cannot open");
}

TEST_F(Png, TruncatedOrCorrupted) {
  const std::vector<uint8_t> pixels = pattern(32 * 32 * 3, 9);
  const std::string good = path("good.png");
  write_png(good, pixels.data(), 32, 32, 3);
  const std::string bytes = slurp(good);

  // Every prefix longer than the signature fails cleanly, naming the file.
  for (size_t n = 8; n < bytes.size(); n += 13) {
    SCOPED_TRACE(n);
    const std::string cut = path("cut.png");
    std::ofstream(cut, std::ios::binary) << bytes.substr(0, n);
    const std::string msg = error_of([&] { read_png(cut); });
    EXPECT_CONTAINS(msg, cut);
    EXPECT_CONTAINS(msg, "not a valid PNG");
  }
  const std::string cut = path("half.png");
  std::ofstream(cut, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  EXPECT_CONTAINS(error_of([&] { read_png(cut); }), "truncated");

  // A flipped bit in the header breaks its chunk CRC; one inside the compressed image data is
  // caught by zlib's own check or the IDAT CRC, whichever libpng reaches first.
  std::string flipped = bytes;
  flipped[17] ^= 0x10;  // width, inside IHDR
  const std::string bad = path("flipped.png");
  std::ofstream(bad, std::ios::binary) << flipped;
  std::string msg = error_of([&] { read_png(bad); });
  EXPECT_CONTAINS(msg, bad);
  EXPECT_CONTAINS(msg, "CRC");
  flipped = bytes;
  flipped[bytes.size() / 2] ^= 0x10;
  std::ofstream(bad, std::ios::binary) << flipped;
  msg = error_of([&] { read_png(bad); });
  EXPECT_CONTAINS(msg, bad);
  EXPECT_CONTAINS(msg, "not a valid PNG");
}

TEST_F(Png, WriteRejectsBadArgumentsAndKeepsOldFile) {
  const std::string file = path("keep.png");
  const std::vector<uint8_t> pixels = pattern(4 * 4, 1);
  write_png(file, pixels.data(), 4, 4, 1);
  EXPECT_CONTAINS(error_of([&] { write_png(file, pixels.data(), 4, 4, 5); }), file);
  EXPECT_CONTAINS(error_of([&] { write_png(file, pixels.data(), 0, 4, 1); }), file);
  EXPECT_EQ(read_png(file).pixels, pixels);
  const std::string nowhere = path("no/such/dir/x.png");
  EXPECT_CONTAINS(error_of([&] { write_png(nowhere, pixels.data(), 4, 4, 1); }), nowhere);
}

// ---- grids ----

// The byte png.h promises for a float value v in [-1, 1] (clamped outside).
uint8_t expected_byte(double v) {
  return static_cast<uint8_t>(std::min(255.0, std::max(0.0, std::floor((v + 1) * 128))));
}

TEST_F(Png, GridGeometryFiveImagesThreePerRow) {
  const int64_t n = 5, c = 3, h = 4, w = 6, pad = 2;
  const torch::Tensor images = torch::rand({n, c, h, w}) * 2 - 1;
  const std::string file = path("grid.png");
  save_image_grid(file, images, /*nrow=*/3, pad);
  const PngImage image = read_png(file);
  // 2 rows of 3 columns: height 2 * (4 + 2) + 2, width 3 * (6 + 2) + 2.
  EXPECT_EQ(image.height, 14);
  EXPECT_EQ(image.width, 26);
  EXPECT_EQ(image.channels, 3);

  const torch::Tensor grid = make_image_grid(images, 3, pad);
  EXPECT_EQ(grid.sizes(), (std::vector<int64_t>{3, 14, 26}));
  EXPECT_EQ(grid.scalar_type(), torch::kByte);
  // The PNG holds the grid in HWC order.
  const torch::Tensor hwc = grid.permute({1, 2, 0}).contiguous();
  EXPECT_EQ(std::vector<uint8_t>(hwc.data_ptr<uint8_t>(), hwc.data_ptr<uint8_t>() + hwc.numel()),
            image.pixels);

  // nrow larger than N: a single row of N images.
  EXPECT_EQ(make_image_grid(images, 8, pad).sizes(),
            (std::vector<int64_t>{3, 4 + 2 * 2, 5 * 8 + 2}));
  // No padding: tiles touch.
  EXPECT_EQ(make_image_grid(images, 2, 0).sizes(), (std::vector<int64_t>{3, 3 * 4, 2 * 6}));
}

TEST_F(Png, GridPixelValuesOfKnownTiles) {
  const int64_t n = 5, h = 4, w = 6, pad = 2;
  // Tile i is constant except image 4, which holds a ramp over its pixels and channels.
  const std::vector<double> levels = {-1.0, -0.5, 0.0, 0.5, 1.5};
  torch::Tensor images = torch::empty({n, 3, h, w});
  for (int64_t i = 0; i < n; ++i) images[i].fill_(levels[i]);
  const torch::Tensor ramp = torch::linspace(-1.2, 1.2, 3 * h * w).reshape({3, h, w});
  images[4].copy_(ramp);

  const torch::Tensor grid = make_image_grid(images, 3, pad);
  auto at = [&](int64_t ch, int64_t y, int64_t x) { return grid[ch][y][x].item<uint8_t>(); };
  // Constant tiles 0..3 at (row, col) = (i / 3, i % 3).
  for (int64_t i = 0; i < 4; ++i) {
    const int64_t y0 = pad + (i / 3) * (h + pad), x0 = pad + (i % 3) * (w + pad);
    for (int64_t ch = 0; ch < 3; ++ch) {
      for (int64_t y = 0; y < h; ++y) {
        for (int64_t x = 0; x < w; ++x) {
          ASSERT_EQ(at(ch, y0 + y, x0 + x), expected_byte(levels[i])) << i;
        }
      }
    }
  }
  EXPECT_EQ(expected_byte(-1.0), 0);
  EXPECT_EQ(expected_byte(0.0), 128);
  EXPECT_EQ(expected_byte(0.5), 192);  // floor(1.5 * 128)
  // Tile 4 sits in row 1, column 1: top-left pixel at (2 + 6, 2 + 8).
  for (int64_t ch = 0; ch < 3; ++ch) {
    for (int64_t y = 0; y < h; ++y) {
      for (int64_t x = 0; x < w; ++x) {
        ASSERT_EQ(at(ch, 8 + y, 10 + x), expected_byte(ramp[ch][y][x].item<float>()))
            << ch << " " << y << " " << x;
      }
    }
  }
  // Padding and the empty sixth slot (row 1, column 2) are black.
  for (int64_t ch = 0; ch < 3; ++ch) {
    for (int64_t x = 0; x < grid.size(2); ++x) {
      ASSERT_EQ(at(ch, 0, x), 0);
      ASSERT_EQ(at(ch, 1, x), 0);
      ASSERT_EQ(at(ch, 6, x), 0);
      ASSERT_EQ(at(ch, 13, x), 0);
    }
    for (int64_t y = 8; y < 12; ++y) {
      for (int64_t x = 18; x < 24; ++x) ASSERT_EQ(at(ch, y, x), 0);
    }
  }
}

TEST_F(Png, GridFromUint8GrayAndNan) {
  const torch::Tensor bytes = torch::randint(0, 256, {3, 1, 5, 5}, torch::kByte);
  const std::string file = path("gray.png");
  save_image_grid(file, bytes, 2, 1);
  const PngImage image = read_png(file);
  EXPECT_EQ(image.channels, 1);
  EXPECT_EQ(image.height, 2 * 6 + 1);
  EXPECT_EQ(image.width, 2 * 6 + 1);
  // Image 2 (row 1, column 0) at (1 + 6, 1), bytes used as they are.
  for (int64_t y = 0; y < 5; ++y) {
    for (int64_t x = 0; x < 5; ++x) {
      ASSERT_EQ(image.pixels[(7 + y) * image.width + 1 + x], bytes[2][0][y][x].item<uint8_t>());
    }
  }
  const torch::Tensor nan = torch::full({1, 1, 2, 2}, std::nan(""));
  EXPECT_TRUE(torch::equal(make_image_grid(nan, 1, 0), torch::full({1, 2, 2}, 128, torch::kByte)));
}

TEST_F(Png, GridRejectsBadShapesAndTypes) {
  const std::string file = path("bad_grid.png");
  std::string msg = error_of([&] { save_image_grid(file, torch::zeros({3, 4, 4}), 2); });
  EXPECT_CONTAINS(msg, file);
  EXPECT_CONTAINS(msg, "[N, C, H, W]");
  EXPECT_CONTAINS(error_of([&] {
                    save_image_grid(file, torch::zeros({2, 2, 4, 4}), 2);
                  }),
                  "1 (gray) or 3 (RGB)");
  EXPECT_CONTAINS(error_of([&] {
                    save_image_grid(file, torch::zeros({2, 3, 4, 4}, torch::kInt), 2);
                  }),
                  "expected float images");
  EXPECT_CONTAINS(error_of([&] {
                    save_image_grid(file, torch::zeros({2, 3, 4, 4}), 0);
                  }),
                  "nrow >= 1");
  EXPECT_CONTAINS(error_of([&] {
                    save_image_grid(file, torch::zeros({0, 3, 4, 4}), 2);
                  }),
                  "at least one");
}

}  // namespace
}  // namespace umbra
