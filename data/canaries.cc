#include "data/canaries.h"

#include <algorithm>
#include <cmath>

#include "core/check.h"
#include "core/rng.h"

namespace umbra {
namespace {

constexpr int64_t kMinContrast = 96;  // grey levels between the background and every shape

// Draws of canary j: successive counters of its own stream.
class CanaryDraws {
 public:
  CanaryDraws(uint64_t seed, int64_t j)
      : seed_(seed), stream_(rng_stream(RngStream::kCanary, 1 + static_cast<uint64_t>(j))) {}
  int64_t below(int64_t n) {
    return static_cast<int64_t>(rng_below(seed_, stream_, counter_++, static_cast<uint64_t>(n)));
  }
  // A grey level at least kMinContrast away from `background` (on the 0..255 circle, which for
  // a spread of 64 levels past the minimum is also the distance on the line).
  uint8_t contrasting(uint8_t background) {
    return static_cast<uint8_t>((background + kMinContrast + below(64)) % 256);
  }

 private:
  uint64_t seed_, stream_;
  uint64_t counter_ = 0;
};

void fill_rect(std::vector<uint8_t>& plane, int64_t h, int64_t w, int64_t y0, int64_t x0,
               int64_t y1, int64_t x1, uint8_t value) {
  for (int64_t y = std::max<int64_t>(0, y0); y < std::min(h, y1); ++y)
    for (int64_t x = std::max<int64_t>(0, x0); x < std::min(w, x1); ++x) plane[y * w + x] = value;
}

// A 3-pixel-wide straight stroke from (ya, xa) to (yb, xb).
void stroke(std::vector<uint8_t>& plane, int64_t h, int64_t w, int64_t ya, int64_t xa, int64_t yb,
            int64_t xb, uint8_t value) {
  const int64_t steps = std::max({std::abs(yb - ya), std::abs(xb - xa), int64_t{1}});
  for (int64_t s = 0; s <= steps; ++s) {
    const int64_t y = ya + (yb - ya) * s / steps, x = xa + (xb - xa) * s / steps;
    fill_rect(plane, h, w, y - 1, x - 1, y + 2, x + 2, value);
  }
}

std::vector<uint8_t> ood_image(const DatasetMeta& meta, CanaryDraws& d) {
  const int64_t c = meta.channels, h = meta.height, w = meta.width;
  // One geometry for all channels; grey levels drawn per channel (colour when C = 3).
  struct Shape {
    bool rect;
    int64_t y0, x0, y1, x1;
  };
  std::vector<Shape> shapes;
  const int64_t rects = 3 + d.below(4), strokes = 1 + d.below(3);
  for (int64_t i = 0; i < rects; ++i) {
    const int64_t y0 = d.below(h), x0 = d.below(w);
    const int64_t rh = std::max<int64_t>(2, h / 8) + d.below(std::max<int64_t>(1, h / 2));
    const int64_t rw = std::max<int64_t>(2, w / 8) + d.below(std::max<int64_t>(1, w / 2));
    shapes.push_back({true, y0, x0, y0 + rh, x0 + rw});
  }
  for (int64_t i = 0; i < strokes; ++i) {
    shapes.push_back({false, d.below(h), d.below(w), d.below(h), d.below(w)});
  }
  std::vector<uint8_t> image;
  image.reserve(static_cast<size_t>(meta.image_bytes()));
  for (int64_t ch = 0; ch < c; ++ch) {
    // A mid-grey background (48..207): Fashion-MNIST backgrounds are black.
    const uint8_t background = static_cast<uint8_t>(48 + d.below(160));
    std::vector<uint8_t> plane(static_cast<size_t>(h * w), background);
    for (const Shape& s : shapes) {
      const uint8_t v = d.contrasting(background);
      if (s.rect) {
        fill_rect(plane, h, w, s.y0, s.x0, s.y1, s.x1, v);
      } else {
        stroke(plane, h, w, s.y0, s.x0, s.y1, s.x1, v);
      }
    }
    image.insert(image.end(), plane.begin(), plane.end());
  }
  return image;
}

int64_t relabel_position(int64_t j, int64_t test_count, int64_t m) { return j * test_count / m; }

void check_fits(const CanaryOptions& o, const DatasetMeta& meta, const SplitData* test) {
  o.validate();
  UMBRA_CHECK(meta.num_classes() >= 1 && meta.image_bytes() > 0,
              "data.canaries: the dataset has no classes or empty images");
  if (o.kind == "relabel") {
    UMBRA_CHECK(meta.num_classes() >= 2, "data.canaries.kind 'relabel': needs at least 2 classes, ",
                "the dataset has ", meta.num_classes());
    UMBRA_CHECK(test != nullptr && test->count() > 0,
                "data.canaries.kind 'relabel': the dataset has no 'test' split to take canaries "
                "from");
    UMBRA_CHECK(o.count <= test->count(), "data.canaries.count ", o.count,
                ": kind 'relabel' takes one held-out test image per canary, but the test split "
                "has only ",
                test->count(), " images");
    UMBRA_CHECK(test->meta.image_bytes() == meta.image_bytes(),
                "data.canaries.kind 'relabel': test images are ", test->meta.channels, "x",
                test->meta.height, "x", test->meta.width, ", training images ", meta.channels, "x",
                meta.height, "x", meta.width);
  }
}

Canary canary_unchecked(const CanaryOptions& o, const DatasetMeta& meta, const SplitData* test,
                        int64_t j) {
  CanaryDraws d(static_cast<uint64_t>(o.seed), j);
  Canary canary;
  canary.id = kCanaryIdBase + j;
  if (o.kind == "ood") {
    canary.image = ood_image(meta, d);
    canary.label = d.below(meta.num_classes());
  } else {
    const int64_t position = relabel_position(j, test->count(), o.count);
    const uint8_t* p = test->image(position);
    canary.image.assign(p, p + meta.image_bytes());
    const int64_t k = meta.num_classes();
    canary.label = (test->labels[position] + 1 + d.below(k - 1)) % k;
  }
  return canary;
}

}  // namespace

void CanaryOptions::validate() const {
  UMBRA_CHECK(count >= 0 && count <= kMaxCanaries, "config key 'data.canaries.count': expected 0..",
              kMaxCanaries, ", got ", count);
  UMBRA_CHECK(kind == "ood" || kind == "relabel",
              "config key 'data.canaries.kind': expected ood or relabel, got '", kind, "'");
  UMBRA_CHECK(count == 0 || seed >= 0, "config key 'data.canaries.seed': data.canaries.count is ",
              count,
              ", so the sealed inclusion seed must be set explicitly (an integer >= 0, kept "
              "secret until the audit), got ",
              seed);
}

Canary make_canary(const CanaryOptions& options, const DatasetMeta& meta, const SplitData* test,
                   int64_t j) {
  check_fits(options, meta, test);
  UMBRA_CHECK(j >= 0 && j < options.count, "canary ", j, " of ", options.count, " requested");
  return canary_unchecked(options, meta, test, j);
}

std::vector<int64_t> canary_test_positions(const CanaryOptions& options, int64_t test_count) {
  std::vector<int64_t> out;
  if (options.kind != "relabel" || options.count <= 0 || test_count <= 0) return out;
  for (int64_t j = 0; j < options.count && j < test_count; ++j) {
    out.push_back(relabel_position(j, test_count, options.count));
  }
  return out;
}

std::vector<int64_t> heldout_test_positions(const CanaryOptions& options, int64_t test_count) {
  const std::vector<int64_t> taken = canary_test_positions(options, test_count);  // ascending
  std::vector<int64_t> out;
  auto next = taken.begin();
  for (int64_t i = 0; i < test_count; ++i) {
    if (next != taken.end() && *next == i) {
      ++next;
    } else {
      out.push_back(i);
    }
  }
  return out;
}

SplitData make_canaries(const CanaryOptions& options, const DatasetMeta& meta,
                        const SplitData* test) {
  check_fits(options, meta, test);
  SplitData out;
  out.split = "canaries";
  out.meta = meta;
  out.images.reserve(static_cast<size_t>(options.count * meta.image_bytes()));
  for (int64_t j = 0; j < options.count; ++j) {
    const Canary c = canary_unchecked(options, meta, test, j);
    out.images.insert(out.images.end(), c.image.begin(), c.image.end());
    out.labels.push_back(c.label);
    out.ids.push_back(c.id);
  }
  return out;
}

std::vector<bool> canary_inclusion(uint64_t seed, int64_t m) {
  UMBRA_CHECK(m >= 0, "canary_inclusion: count must be >= 0, got ", m);
  std::vector<bool> included(static_cast<size_t>(m));
  const uint64_t stream = rng_stream(RngStream::kCanary, 0);
  for (int64_t j = 0; j < m; ++j) {
    included[j] = rng_uniform(seed, stream, static_cast<uint64_t>(j)) < 0.5;
  }
  return included;
}

SplitData with_canaries(const SplitData& train, const SplitData& canaries,
                        const std::vector<bool>& included) {
  UMBRA_CHECK(static_cast<int64_t>(included.size()) == canaries.count(),
              "with_canaries: ", canaries.count(), " canaries but ", included.size(),
              " inclusion coins");
  UMBRA_CHECK(canaries.meta.image_bytes() == train.meta.image_bytes(),
              "with_canaries: canary images do not have the training images' shape");
  for (int64_t id : train.ids) {
    UMBRA_CHECK(id < kCanaryIdBase, train.dir, " (", train.split, "): sample id ", id,
                " lies in the canary id range (>= ", kCanaryIdBase,
                "); canaries cannot be added to this dataset");
  }
  SplitData out = train;
  const int64_t bytes = train.meta.image_bytes();
  for (int64_t j = 0; j < canaries.count(); ++j) {
    if (!included[j]) continue;
    out.images.insert(out.images.end(), canaries.image(j), canaries.image(j) + bytes);
    out.labels.push_back(canaries.labels[j]);
    out.ids.push_back(canaries.ids[j]);
  }
  return out;
}

}  // namespace umbra
