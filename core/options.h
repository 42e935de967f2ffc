// Options declared once (STYLE.md "Options structs with defaults, declared once").
//
// Each layer owns a plain struct with defaults and a visit() that names every field once:
//
//   struct LoaderOptions {
//     int64_t prefetch = 4;
//     bool hflip = false;
//     template <class V> void visit(V& v) {
//       v("prefetch", prefetch, "Batches prepared ahead by the loader thread", AtLeast{1});
//       v("hflip", hflip, "Random horizontal flips (deterministic in seed, step, sample id)");
//     }
//   };
//
// That one visit() drives parsing from a Config (type checks, ranges, choices, unknown keys),
// the resolved YAML written to the run directory, and the markdown of configs/README.md.
// Sections nest with v.section("name", sub_struct). Supported field types: bool, int, int64_t,
// double, std::string, std::vector<std::string>, std::vector<double>, std::vector<int64_t>.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>
#include <vector>

namespace umbra {

// Optional constraints passed after the help text.
struct AtLeast {
  double min;
};
struct InRange {
  double min, max;  // inclusive
};
struct OneOf {
  std::vector<std::string> choices;
  OneOf(std::initializer_list<std::string> c) : choices(c) {}
};

}  // namespace umbra
