#include "audit/memorization.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "audit_test_util.h"
#include "core/check.h"
#include "core/png.h"

namespace umbra {
namespace {

using audit_test::fmnist_test;
using audit_test::fmnist_train;

KnnResult rows(std::vector<std::vector<double>> d) {
  const int64_t q = static_cast<int64_t>(d.size()), k = static_cast<int64_t>(d[0].size());
  KnnResult r{torch::empty({q, k}, torch::kFloat64), torch::zeros({q, k}, torch::kInt64)};
  for (int64_t i = 0; i < q; ++i) {
    for (int64_t j = 0; j < k; ++j) r.distance[i][j] = d[i][j];
  }
  return r;
}

// r = d1 / (alpha * mean d), computed by hand.
TEST(Memorization, ScoreByHand) {
  // (Binary fractions, so that r = 1 is exactly 1 and not flagged.)
  const MemorizationScores s = carlini_scores(rows({{0.25, 0.5, 0.75},   // 0.25 / 0.25 = 1
                                                    {0.05, 0.2, 0.35},   // 0.05 / 0.1 = 0.5
                                                    {0.4, 0.4, 0.4},     // 0.4 / 0.2 = 2
                                                    {0.0, 0.0, 0.0}}));  // k copies: r = 0
  EXPECT_NEAR(s.score[0].item<double>(), 1.0, 1e-12);
  EXPECT_NEAR(s.score[1].item<double>(), 0.5, 1e-12);
  EXPECT_NEAR(s.score[2].item<double>(), 2.0, 1e-12);
  EXPECT_EQ(s.score[3].item<double>(), 0.0);
  EXPECT_FALSE(s.flagged[0].item<bool>());  // flagged only when r < 1
  EXPECT_TRUE(s.flagged[1].item<bool>());
  EXPECT_FALSE(s.flagged[2].item<bool>());
  EXPECT_TRUE(s.flagged[3].item<bool>());
  EXPECT_EQ(s.num_flagged(), 2);
  EXPECT_DOUBLE_EQ(s.flag_rate(), 0.5);
  EXPECT_NEAR(carlini_scores(rows({{0.25, 0.5, 0.75}}), 0.25).score[0].item<double>(), 2.0, 1e-12);
  KnnResult padded = rows({{0.1, 0.2}});
  padded.distance[0][1] = std::numeric_limits<double>::infinity();
  EXPECT_THROW(carlini_scores(padded), Error);
}

// The acceptance test of DESIGN.md §9 on real Fashion-MNIST: a "generated" set made of exact and
// lightly noised copies of training images plus fresh held-out images. Every copy is flagged and
// traced to its source; the fresh images are flagged no more often than the null (held-out images
// scored the same way) allows.
class MemorizationOnFashionMnist : public ::testing::TestWithParam<KnnMetric> {};

TEST_P(MemorizationOnFashionMnist, FlagsCopiesNotFreshImages) {
  const int64_t n_train = 10000;
  const torch::Tensor train = fmnist_train().images.narrow(0, 0, n_train);
  const torch::Tensor ids = torch::arange(n_train, torch::kInt64);
  torch::manual_seed(5);
  const torch::Tensor sources = torch::randperm(n_train, torch::kInt64).narrow(0, 0, 100);
  const torch::Tensor exact = train.index_select(0, sources.narrow(0, 0, 50));
  const torch::Tensor base = train.index_select(0, sources.narrow(0, 50, 50));
  const torch::Tensor noisy = (base + 0.04 * torch::randn_like(base)).clamp(-1, 1);
  const torch::Tensor fresh = fmnist_test().images.narrow(0, 5000, 1000);
  const torch::Tensor generated = torch::cat({exact, noisy, fresh});
  const torch::Tensor heldout = fmnist_test().images.narrow(0, 0, 2000);

  CarliniOptions options;
  options.metric = GetParam();
  const MemorizationReport report = memorization_check(generated, heldout, train, ids, options);
  const MemorizationScores& g = report.generated;
  for (int64_t i = 0; i < 100; ++i) {
    EXPECT_TRUE(g.flagged[i].item<bool>())
        << "copy " << i << " score " << g.score[i].item<double>();
    EXPECT_EQ(g.nearest_id[i].item<int64_t>(), sources[i].item<int64_t>());
  }
  for (int64_t i = 0; i < 50; ++i) EXPECT_EQ(g.nearest_distance[i].item<double>(), 0.0);

  // Fresh images vs the null: a one-sided binomial check at ~3 standard deviations.
  const int64_t fresh_flagged = g.flagged.narrow(0, 100, 1000).sum().item<int64_t>();
  const double null_rate = report.null_flag_rate();
  const double allowed = 1000 * null_rate + 3 * std::sqrt(1000 * null_rate * (1 - null_rate)) + 3;
  std::printf(
      "[ metric %s ] null flag rate %.4f (%lld / %lld held-out), fresh flagged %lld / 1000\n",
      knn_metric_name(GetParam()), null_rate, static_cast<long long>(report.heldout.num_flagged()),
      static_cast<long long>(report.heldout.num_queries()), static_cast<long long>(fresh_flagged));
  EXPECT_LE(static_cast<double>(fresh_flagged), allowed);
  EXPECT_LT(null_rate, 0.05);

  const nlohmann::json j = report.to_json(5);
  EXPECT_EQ(j["generated"]["count"].get<int64_t>(), 1100);
  EXPECT_GE(j["generated"]["flagged"].get<int64_t>(), 100);
  EXPECT_EQ(j["worst"].size(), 5u);
  EXPECT_EQ(j["worst"][0]["score"].get<double>(), 0.0);
}

INSTANTIATE_TEST_SUITE_P(Metrics, MemorizationOnFashionMnist,
                         ::testing::Values(KnnMetric::kRms, KnnMetric::kTiledRms),
                         [](const auto& info) { return std::string(knn_metric_name(info.param)); });

int64_t white_pixels(const torch::Tensor& tile) { return tile[0].eq(1.0).sum().item<int64_t>(); }

TEST(Memorization, RedactedTileShowsTheId) {
  // Glyph "8" has 13 lit cells and "1" has 8; a 28 x 28 tile draws one digit at scale 4.
  EXPECT_EQ(white_pixels(redacted_tile(8, 1, 28, 28)), 13 * 16);
  EXPECT_EQ(white_pixels(redacted_tile(1, 1, 28, 28)), 8 * 16);
  // 123456: digits 1..6 have 8 + 11 + 11 + 9 + 11 + 12 lit cells; scale 2 fits as two lines of
  // three digits (3 * 8 - 2 = 22 px wide, 2 * 12 - 2 = 22 px tall inside the 26 px margin).
  const torch::Tensor t = redacted_tile(123456, 3, 28, 28);
  EXPECT_EQ(t.sizes(), torch::IntArrayRef({3, 28, 28}));
  EXPECT_EQ(white_pixels(t), (8 + 11 + 11 + 9 + 11 + 12) * 4);
  // Too narrow for two lines at scale 2: 12 digits at scale 1 on 3 lines of 5 (19 px).
  EXPECT_EQ(white_pixels(redacted_tile(111111111111, 1, 21, 21)), 12 * 8);
  EXPECT_TRUE(torch::equal(t[0], t[2]));
  // Everything that is not a digit is mid-grey.
  EXPECT_EQ(t.eq(0).sum().item<int64_t>() + 3 * white_pixels(t), 3 * 28 * 28);
}

TEST(Memorization, WorstPairsGridRedactsTrainingImages) {
  const auto dir = audit_test::temp_dir("pairs");
  const torch::Tensor train = fmnist_train().images.narrow(0, 0, 2000);
  const torch::Tensor generated =
      torch::cat({fmnist_test().images.narrow(0, 0, 10), train.narrow(0, 7, 1)});
  const MemorizationScores scores =
      carlini_scores(knn_search(generated, train, torch::arange(2000, torch::kInt64)));
  auto lookup = [&](const std::vector<int64_t>& ids) {
    return train.index_select(0, torch::tensor(ids, torch::kInt64));
  };
  const std::string redacted = (dir / "redacted.png").string();
  const std::string full = (dir / "full.png").string();
  const auto order = write_worst_pairs(redacted, generated, scores, 3, false, nullptr, 4);
  ASSERT_EQ(order.size(), 3u);
  EXPECT_EQ(order[0], 10);  // the planted copy is the worst
  write_worst_pairs(full, generated, scores, 3, true, lookup, 4);

  // Grid: 6 tiles in one row of 8 columns -> 6 tiles wide (make_image_grid uses min(nrow, N)).
  const PngImage a = read_png(redacted), b = read_png(full);
  EXPECT_EQ(a.height, 28 + 4);
  EXPECT_EQ(a.width, 6 * 30 + 2);
  // Tile 1 (the training side of the first pair): redacted = grey + id 7; full = training image 7.
  auto tile_bytes = [](const PngImage& img, int col) {
    std::vector<uint8_t> out;
    for (int y = 0; y < 28; ++y) {
      for (int x = 0; x < 28; ++x)
        out.push_back(img.pixels[(2 + y) * img.width + 2 + col * 30 + x]);
    }
    return out;
  };
  const torch::Tensor expect_redacted =
      make_image_grid(redacted_tile(7, 1, 28, 28).unsqueeze(0), 1, 0);
  const torch::Tensor expect_full = make_image_grid(train.narrow(0, 7, 1), 1, 0);
  const auto ra = tile_bytes(a, 1), rb = tile_bytes(b, 1);
  EXPECT_TRUE(std::equal(ra.begin(), ra.end(), expect_redacted.data_ptr<uint8_t>()));
  EXPECT_TRUE(std::equal(rb.begin(), rb.end(), expect_full.data_ptr<uint8_t>()));
  EXPECT_EQ(tile_bytes(a, 0), tile_bytes(b, 0));  // generated side identical
  EXPECT_THROW(write_worst_pairs(full, generated, scores, 3, true, nullptr), Error);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace umbra
