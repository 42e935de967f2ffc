#include "audit/canary_audit.h"

#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "audit/canary_bound.h"
#include "audit/text_file.h"
#include "core/check.h"

namespace fs = std::filesystem;

namespace umbra {
namespace {

constexpr double kBeta = 0.05;  // 95% confidence

std::string fmt(double v, const char* f = "%.3f") {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

}  // namespace

std::optional<RunCanaries> load_run_canaries(const std::string& run_dir, const CanaryOptions& o,
                                             const DatasetMeta& meta, const SplitData& test) {
  if (!o.enabled()) return std::nullopt;
  const std::string path = run_dir + "/canaries.json";
  UMBRA_CHECK(fs::is_regular_file(path), run_dir,
              "/config.yaml sets data.canaries.count = ", o.count, " but ", path,
              " (the trainer's record of them) is missing: the run was not trained with these "
              "canaries");
  nlohmann::json record;
  try {
    record = nlohmann::json::parse(read_text_file(path));
  } catch (const nlohmann::json::exception& e) {
    UMBRA_FAIL(path, ": not valid JSON: ", e.what());
  }
  RunCanaries c;
  c.options = o;
  c.canaries = make_canaries(o, meta, &test);
  c.included = canary_inclusion(static_cast<uint64_t>(o.seed), o.count);
  const int64_t included = std::count(c.included.begin(), c.included.end(), true);
  const bool agrees = record.is_object() && record.value("count", int64_t{-1}) == o.count &&
                      record.value("kind", std::string()) == o.kind &&
                      record.value("seed", int64_t{-2}) == o.seed &&
                      record.value("included", int64_t{-1}) == included;
  UMBRA_CHECK(agrees, path, ": records ", record.dump(), " but ", run_dir,
              "/config.yaml's data.canaries (count ", o.count, ", kind ", o.kind,
              ") with its seed gives ", included,
              " included canaries; the configuration was changed after training");
  return c;
}

std::vector<SplitData> canary_reference_views(const SplitData& canaries) {
  const DatasetMeta& meta = canaries.meta;
  const int64_t n = canaries.count();
  UMBRA_CHECK(static_cast<int64_t>(canaries.images.size()) == n * meta.image_bytes(),
              "canary views: ", canaries.images.size(), " bytes for ", n, " images of ",
              meta.image_bytes());
  // [N, C, H, W] view of the bytes; the transforms act on the last two dimensions.
  const torch::Tensor images =
      torch::from_blob(const_cast<uint8_t*>(canaries.images.data()),
                       {n, meta.channels, meta.height, meta.width}, torch::kUInt8);
  const torch::Tensor vflip = images.flip({2});
  std::vector<torch::Tensor> views = {vflip, images.flip({2, 3})};  // vertical flip, 180 degrees
  if (meta.height == meta.width) {
    const torch::Tensor t = images.transpose(2, 3);
    views.push_back(t);               // reflection in the main diagonal
    views.push_back(t.flip({2, 3}));  // reflection in the anti-diagonal
    views.push_back(t.flip({3}));     // rotation by 90 degrees (clockwise)
    views.push_back(t.flip({2}));     // rotation by 270 degrees
  }
  std::vector<SplitData> out;
  for (const torch::Tensor& v : views) {
    SplitData s = canaries;
    const torch::Tensor c = v.contiguous();
    std::memcpy(s.images.data(), c.data_ptr<uint8_t>(), s.images.size());
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<double> calibrated_canary_losses(const std::vector<double>& losses,
                                             const std::vector<std::vector<double>>& view_losses) {
  UMBRA_CHECK(!view_losses.empty(), "calibrated canary losses: no reference views");
  std::vector<double> out(losses.size());
  for (size_t j = 0; j < losses.size(); ++j) {
    double mean = 0;
    for (const std::vector<double>& v : view_losses) {
      UMBRA_CHECK(v.size() == losses.size(), "calibrated canary losses: ", v.size(),
                  " view losses for ", losses.size(), " canaries");
      mean += v[j];
    }
    out[j] = losses[j] - mean / static_cast<double>(view_losses.size());
  }
  return out;
}

int64_t default_canary_guesses(int64_t m) {
  return std::min<int64_t>(m, std::max<int64_t>(10, m / 5));
}

nlohmann::json canary_summary(const RunCanaries& c, const std::vector<double>& losses,
                              int64_t guesses, const RunPrivacy& privacy,
                              const std::string& score) {
  const int64_t m = c.options.count;
  UMBRA_CHECK(static_cast<int64_t>(losses.size()) == m, "canary audit: ", losses.size(),
              " scores for ", m, " canaries");
  const int64_t r = guesses > 0 ? guesses : default_canary_guesses(m);
  UMBRA_USAGE_CHECK(r <= m, "--canary-guesses ", guesses, ": the run has only ", m,
                    " canaries to guess");
  const int64_t k_in = r / 2, k_out = r - k_in;
  std::vector<double> scores(losses.size());
  std::transform(losses.begin(), losses.end(), scores.begin(), [](double l) { return -l; });
  const double delta = privacy.dp ? privacy.delta : 0.0;
  const CanaryAudit a = audit_canaries(scores, c.included, k_in, k_out, kBeta, delta);
  const int64_t included = std::count(c.included.begin(), c.included.end(), true);

  nlohmann::json j = a.to_json();
  j["present"] = true;
  j["kind"] = c.options.kind;
  j["m"] = m;
  j["included"] = included;
  j["k_in"] = k_in;
  j["k_out"] = k_out;
  j["confidence"] = 1 - kBeta;
  j["score"] = score;
  j["accountant_epsilon"] = privacy.dp ? nlohmann::json(privacy.epsilon) : nlohmann::json(nullptr);
  j["why"] = std::to_string(m) + " '" + c.options.kind + "' canaries, " + std::to_string(included) +
             " included; " + std::to_string(r) + " guesses (" + std::to_string(k_in) + " IN, " +
             std::to_string(k_out) + " OUT) by " + score + ", " + std::to_string(a.guesses.v) +
             " correct: epsilon >= " + fmt(a.epsilon_lower_bound) + " at 95% confidence (ceiling " +
             fmt(a.epsilon_ceiling) + " for " + std::to_string(r) + " guesses); " +
             (privacy.dp ? "accountant epsilon " + fmt(privacy.epsilon)
                         : std::string("not a DP run: no accountant epsilon to compare"));
  return j;
}

nlohmann::json no_canaries_summary() {
  return {{"present", false},
          {"why",
           "this run records no canaries (data.canaries): the one-run empirical epsilon lower "
           "bound needs them"}};
}

}  // namespace umbra
