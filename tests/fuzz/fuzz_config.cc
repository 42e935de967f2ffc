// libFuzzer target: the config loader (YAML text + dotted overrides) bound to a small options
// struct with every supported field type, constraints and a nested section.
//
// Input layout: YAML text, then optionally a NUL byte followed by newline-separated overrides
// ("a.b=value"). umbra::Error (and its UsageError) is the expected rejection. An input that is
// accepted must also survive the round trip the trainer relies on: the resolved YAML written by
// options_to_yaml must load and bind again to identical values; a failure there aborts.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/check.h"
#include "core/config.h"

namespace {

struct InnerOptions {
  double learning_rate = 1e-4;
  int64_t steps = 100;
  std::vector<int64_t> sizes = {1, 2};
  template <class V>
  void visit(V& v) {
    v("learning_rate", learning_rate, "Learning rate", umbra::AtLeast{0});
    v("steps", steps, "Steps", umbra::InRange{0, 1e12});
    v("sizes", sizes, "Sizes");
  }
};

struct FuzzOptions {
  bool enabled = false;
  int count = 3;
  double scale = 1.5;
  std::string mode = "rdp";
  std::string name = "run";
  std::vector<std::string> tags;
  std::vector<double> weights = {0.5};
  InnerOptions inner;
  template <class V>
  void visit(V& v) {
    v("enabled", enabled, "Enabled");
    v("count", count, "Count");
    v("scale", scale, "Scale");
    v("mode", mode, "Mode", umbra::OneOf{"rdp", "prv"});
    v("name", name, "Name");
    v("tags", tags, "Tags");
    v("weights", weights, "Weights");
    v.section("inner", inner);
  }
};

// The first field whose value differs, or "" when all are equal.
std::string first_difference(const FuzzOptions& a, const FuzzOptions& b) {
  if (a.enabled != b.enabled) return "enabled";
  if (a.count != b.count) return "count";
  if (!(a.scale == b.scale || (a.scale != a.scale && b.scale != b.scale))) return "scale";
  if (a.mode != b.mode) return "mode";
  if (a.name != b.name) return "name";
  if (a.tags != b.tags) return "tags";
  if (a.weights != b.weights) return "weights";
  if (a.inner.learning_rate != b.inner.learning_rate) return "inner.learning_rate";
  if (a.inner.steps != b.inner.steps) return "inner.steps";
  if (a.inner.sizes != b.inner.sizes) return "inner.sizes";
  return "";
}

[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_config: %s\n%s\n", what, detail.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string yaml = input.substr(0, nul);
  std::vector<std::string> overrides;
  if (nul != std::string::npos) {
    size_t start = nul + 1;
    while (start <= input.size()) {
      const size_t end = std::min(input.find('\n', start), input.size());
      overrides.push_back(input.substr(start, end - start));
      start = end + 1;
    }
  }

  FuzzOptions opts;
  try {
    umbra::Config cfg = umbra::Config::from_string(yaml, "fuzz.yaml", overrides);
    umbra::bind_options(cfg, opts);
    cfg.finish();
  } catch (const umbra::Error&) {
    return 0;
  }

  const std::string resolved = umbra::options_to_yaml(opts);
  FuzzOptions again;
  try {
    umbra::Config cfg = umbra::Config::from_string(resolved, "resolved.yaml");
    umbra::bind_options(cfg, again);
    cfg.finish();
  } catch (const umbra::Error& e) {
    fail("the resolved config does not load again", resolved + "error: " + e.what());
  }
  const std::string field = first_difference(opts, again);
  if (!field.empty()) {
    fail(("the resolved config loads to a different value of '" + field + "'").c_str(),
         "first:\n" + resolved + "second:\n" + umbra::options_to_yaml(again));
  }
  return 0;
}
