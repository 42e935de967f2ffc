#include "audit/memorization.h"

#include <algorithm>
#include <map>
#include <numeric>

#include "core/check.h"
#include "core/png.h"

namespace umbra {
namespace {

// 3x5 bitmap digits, one row per entry, bit 2 = left column.
constexpr uint8_t kDigits[10][5] = {
    {7, 5, 5, 5, 7}, {2, 6, 2, 2, 7}, {7, 1, 7, 4, 7}, {7, 1, 7, 1, 7}, {5, 5, 7, 1, 1},
    {7, 4, 7, 1, 7}, {7, 4, 7, 5, 7}, {7, 1, 1, 1, 1}, {7, 5, 7, 5, 7}, {7, 5, 7, 1, 7},
};

nlohmann::json side_json(const MemorizationScores& s) {
  return {{"count", s.num_queries()}, {"flagged", s.num_flagged()}, {"flag_rate", s.flag_rate()}};
}

}  // namespace

int64_t MemorizationScores::num_flagged() const {
  return flagged.defined() ? flagged.sum().item<int64_t>() : 0;
}

double MemorizationScores::flag_rate() const {
  const int64_t n = score.defined() ? num_queries() : 0;
  return n == 0 ? 0.0 : static_cast<double>(num_flagged()) / static_cast<double>(n);
}

MemorizationScores carlini_scores(const KnnResult& knn, double alpha) {
  UMBRA_CHECK(alpha > 0, "carlini_scores: alpha must be > 0, got ", alpha);
  UMBRA_CHECK(knn.distance.defined() && knn.distance.dim() == 2 && knn.k() >= 1,
              "carlini_scores: expected a [Q, k] k-NN result");
  const torch::Tensor d = knn.distance.to(torch::kFloat64);
  UMBRA_CHECK(torch::isfinite(d).all().item<bool>(),
              "carlini_scores: some queries have fewer than k = ", knn.k(),
              " neighbours; the training set must hold at least k images");
  MemorizationScores s;
  s.nearest_distance = d.select(1, 0).contiguous();
  s.mean_knn_distance = d.mean(1);
  s.nearest_id = knn.id.select(1, 0).contiguous();
  // 0 / 0 (k identical copies at distance 0) counts as r = 0: the query is a copy.
  const torch::Tensor denom = s.mean_knn_distance * alpha;
  s.score = torch::where(denom > 0, s.nearest_distance / denom.clamp_min(1e-300),
                         torch::zeros_like(denom));
  s.flagged = s.score < 1.0;
  return s;
}

nlohmann::json MemorizationReport::to_json(int64_t worst) const {
  nlohmann::json rows = nlohmann::json::array();
  for (int64_t i : worst_queries(generated, worst)) {
    rows.push_back({{"index", i},
                    {"score", generated.score[i].item<double>()},
                    {"nearest_id", generated.nearest_id[i].item<int64_t>()},
                    {"nearest_distance", generated.nearest_distance[i].item<double>()}});
  }
  // Which training images the flagged samples copy, most copied first (ties by id).
  std::map<int64_t, int64_t> copies_of;
  for (int64_t i = 0; i < generated.num_queries(); ++i) {
    if (generated.flagged[i].item<bool>()) ++copies_of[generated.nearest_id[i].item<int64_t>()];
  }
  std::vector<std::pair<int64_t, int64_t>> by_count(copies_of.begin(), copies_of.end());
  std::stable_sort(by_count.begin(), by_count.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  nlohmann::json copied = nlohmann::json::array();
  for (const auto& [id, count] : by_count)
    copied.push_back({{"id", id}, {"flagged_samples", count}});
  nlohmann::json generated_json = side_json(generated);
  generated_json["copied_training_ids"] = copied;
  return {{"k", options.k},
          {"alpha", options.alpha},
          {"metric", knn_metric_name(options.metric)},
          {"generated", generated_json},
          {"heldout", side_json(heldout)},
          {"worst", rows}};
}

MemorizationReport memorization_check(const torch::Tensor& generated, const torch::Tensor& heldout,
                                      const torch::Tensor& training,
                                      const torch::Tensor& training_ids,
                                      const CarliniOptions& options, Communicator* comm) {
  KnnOptions knn;
  knn.k = options.k;
  knn.metric = options.metric;
  knn.tile = options.tile;
  auto search = [&](const torch::Tensor& queries) {
    return comm ? knn_search_sharded(*comm, queries, training, training_ids, knn)
                : knn_search(queries, training, training_ids, knn);
  };
  MemorizationReport report;
  report.options = options;
  report.generated = carlini_scores(search(generated), options.alpha);
  report.heldout = carlini_scores(search(heldout), options.alpha);
  return report;
}

std::vector<int64_t> worst_queries(const MemorizationScores& scores, int64_t count) {
  const int64_t n = scores.score.defined() ? scores.num_queries() : 0;
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  const torch::Tensor s = scores.score.to(torch::kFloat64).contiguous();
  const double* v = n > 0 ? s.data_ptr<double>() : nullptr;
  std::stable_sort(order.begin(), order.end(), [v](int64_t a, int64_t b) { return v[a] < v[b]; });
  order.resize(std::min<int64_t>(std::max<int64_t>(count, 0), n));
  return order;
}

torch::Tensor redacted_tile(int64_t id, int64_t channels, int64_t height, int64_t width) {
  UMBRA_CHECK(channels >= 1 && height >= 1 && width >= 1, "redacted_tile: bad tile shape ",
              channels, "x", height, "x", width);
  torch::Tensor tile = torch::zeros({channels, height, width}, torch::kFloat32);
  const std::string text = std::to_string(id);
  const int64_t len = static_cast<int64_t>(text.size());
  // Largest scale s at which the digits (3s wide, s apart, 5s tall, lines s apart) fit with a
  // one-pixel margin; lines wrap when one line is too wide.
  int64_t scale = 0, per_line = 0, lines = 0;
  for (int64_t s = std::max<int64_t>(1, std::min(height, width) / 6); s >= 1 && scale == 0; --s) {
    const int64_t fit = (width - 2 + s) / (4 * s);
    if (fit < 1) continue;
    const int64_t n_lines = (len + fit - 1) / fit;
    if (n_lines * 6 * s - s <= height - 2) scale = s, per_line = fit, lines = n_lines;
  }
  if (scale == 0) return tile;  // too small for even one digit: plain grey
  auto a = tile.accessor<float, 3>();
  const int64_t text_h = lines * 6 * scale - scale;
  const int64_t y_top = (height - text_h) / 2;
  for (int64_t line = 0; line < lines; ++line) {
    const int64_t first = line * per_line;
    const int64_t count = std::min(per_line, len - first);
    const int64_t x_left = (width - (count * 4 * scale - scale)) / 2;
    for (int64_t c = 0; c < count; ++c) {
      const uint8_t* glyph = kDigits[text[first + c] - '0'];
      for (int64_t gy = 0; gy < 5 * scale; ++gy) {
        for (int64_t gx = 0; gx < 3 * scale; ++gx) {
          if (!((glyph[gy / scale] >> (2 - gx / scale)) & 1)) continue;
          const int64_t y = y_top + line * 6 * scale + gy, x = x_left + c * 4 * scale + gx;
          for (int64_t ch = 0; ch < channels; ++ch) a[ch][y][x] = 1.0f;
        }
      }
    }
  }
  return tile;
}

std::vector<int64_t> write_worst_pairs(const std::string& path, const torch::Tensor& generated,
                                       const MemorizationScores& scores, int64_t count,
                                       bool include_training_images,
                                       const TrainingImageLookup& lookup, int64_t pairs_per_row) {
  UMBRA_CHECK(generated.dim() == 4 && generated.size(0) == scores.num_queries(),
              "write_worst_pairs: generated must be [Q, C, H, W] with Q = ", scores.num_queries(),
              ", got ", generated.sizes());
  UMBRA_CHECK(pairs_per_row >= 1, "write_worst_pairs: pairs_per_row must be >= 1");
  const std::vector<int64_t> worst = worst_queries(scores, count);
  UMBRA_CHECK(!worst.empty(), "write_worst_pairs: ", path, ": no generated images to show");
  const int64_t c = generated.size(1), h = generated.size(2), w = generated.size(3);
  std::vector<int64_t> ids;
  for (int64_t i : worst) ids.push_back(scores.nearest_id[i].item<int64_t>());
  torch::Tensor training;
  if (include_training_images) {
    UMBRA_CHECK(static_cast<bool>(lookup),
                "write_worst_pairs: include_training_images needs a training image lookup");
    training = lookup(ids).to(torch::kFloat32).cpu();
    UMBRA_CHECK(training.dim() == 4 && training.size(0) == static_cast<int64_t>(ids.size()) &&
                    training.size(1) == c && training.size(2) == h && training.size(3) == w,
                "write_worst_pairs: the training lookup returned ", training.sizes(),
                ", expected [", ids.size(), ", ", c, ", ", h, ", ", w, "]");
  }
  std::vector<torch::Tensor> tiles;
  for (size_t j = 0; j < worst.size(); ++j) {
    tiles.push_back(generated[worst[j]].to(torch::kFloat32).cpu());
    tiles.push_back(include_training_images ? training[j] : redacted_tile(ids[j], c, h, w));
  }
  save_image_grid(path, torch::stack(tiles), 2 * pairs_per_row);
  return worst;
}

}  // namespace umbra
