// Canaries (data/canaries.h): pure functions of (seed, j), distinct, high-contrast and far from
// real Fashion-MNIST images (ood); relabelled held-out images with a wrong label (relabel); ids
// outside the data range; inclusion coins; the augmented split; bad options.
#include "data/canaries.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <set>

#include "core/rng.h"
#include "data/idx.h"
#include "data_test_util.h"

namespace umbra {
namespace {

using test_util::expect_error;

SplitData synthetic_split(const DatasetMeta& meta, int64_t first_id, int64_t n) {
  const test_util::Synthetic s = test_util::synthetic(meta, first_id, n);
  SplitData out;
  out.dir = "synthetic";
  out.split = "test";
  out.meta = meta;
  out.images = s.images;
  out.labels = s.labels;
  out.ids = s.ids;
  return out;
}

CanaryOptions options(int64_t count, const std::string& kind, int64_t seed) {
  CanaryOptions o;
  o.count = count;
  o.kind = kind;
  o.seed = seed;
  return o;
}

TEST(Canaries, OodArePureFunctionsOfSeedAndIndex) {
  const DatasetMeta meta = test_util::tiny_meta(1, 28, 28, 10);
  const CanaryOptions o = options(50, "ood", 1234);
  const SplitData all = make_canaries(o, meta, nullptr);
  ASSERT_EQ(all.count(), 50);
  EXPECT_EQ(all.images.size(), 50u * 784u);
  for (int64_t j : {0, 7, 49}) {
    const Canary c = make_canary(o, meta, nullptr, j);
    EXPECT_EQ(c.image, std::vector<uint8_t>(all.image(j), all.image(j) + 784)) << j;
    EXPECT_EQ(c.label, all.labels[j]);
    EXPECT_EQ(c.id, kCanaryIdBase + j);
    EXPECT_EQ(all.ids[j], kCanaryIdBase + j);
  }
  // The same canary j whatever m is; another seed gives other canaries.
  EXPECT_EQ(make_canary(options(10, "ood", 1234), meta, nullptr, 7).image,
            make_canary(o, meta, nullptr, 7).image);
  EXPECT_NE(make_canary(options(50, "ood", 1235), meta, nullptr, 7).image,
            make_canary(o, meta, nullptr, 7).image);
}

TEST(Canaries, OodAreDistinctHighContrastWithSpreadLabels) {
  const DatasetMeta meta = test_util::tiny_meta(1, 28, 28, 10);
  const SplitData all = make_canaries(options(500, "ood", 99), meta, nullptr);
  std::set<std::vector<uint8_t>> images;
  std::set<int64_t> labels;
  for (int64_t j = 0; j < all.count(); ++j) {
    const std::vector<uint8_t> img(all.image(j), all.image(j) + 784);
    images.insert(img);
    labels.insert(all.labels[j]);
    ASSERT_GE(all.labels[j], 0);
    ASSERT_LT(all.labels[j], 10);
    const auto [lo, hi] = std::minmax_element(img.begin(), img.end());
    EXPECT_GE(*hi - *lo, 96) << "canary " << j << " is low-contrast";
  }
  EXPECT_EQ(images.size(), 500u);  // pairwise distinct
  EXPECT_EQ(labels.size(), 10u);   // random labels reach every class
}

TEST(Canaries, ColourImagesGetAColourPerChannel) {
  const DatasetMeta meta = test_util::tiny_meta(3, 32, 32, 10);
  const Canary c = make_canary(options(3, "ood", 5), meta, nullptr, 2);
  ASSERT_EQ(c.image.size(), 3u * 32u * 32u);
  EXPECT_NE(std::vector<uint8_t>(c.image.begin(), c.image.begin() + 1024),
            std::vector<uint8_t>(c.image.begin() + 1024, c.image.begin() + 2048));
}

// Every ood canary is farther (per-pixel RMS) from its nearest of 10,000 real Fashion-MNIST
// training images than 95% of real test images are from theirs.
TEST(Canaries, OodAreFarFromFashionMnist) {
  const std::string dir = kFashionMnistDir;
  const IdxImages train =
      read_idx_pair(dir + "/train-images-idx3-ubyte.gz", dir + "/train-labels-idx1-ubyte.gz");
  const IdxImages test =
      read_idx_pair(dir + "/t10k-images-idx3-ubyte.gz", dir + "/t10k-labels-idx1-ubyte.gz");
  auto as_rows = [](const uint8_t* p, int64_t n) {
    return torch::from_blob(const_cast<uint8_t*>(p), {n, 784}, torch::kUInt8)
        .to(torch::kFloat32)
        .div(255.0);
  };
  const torch::Tensor ref = as_rows(train.images.data(), 10000);
  auto nearest_rms = [&](const torch::Tensor& q) {
    const torch::Tensor d2 =
        q.pow(2).sum(1, true) + ref.pow(2).sum(1).unsqueeze(0) - 2 * q.matmul(ref.t());
    return std::get<0>(d2.clamp_min(0).min(1)).div(784).sqrt();
  };
  const torch::Tensor real = nearest_rms(as_rows(test.images.data(), 500));
  const double real_q95 = real.quantile(0.95).item<double>();
  const DatasetMeta meta = test_util::tiny_meta(1, 28, 28, 10);
  const SplitData c = make_canaries(options(200, "ood", 3), meta, nullptr);
  const torch::Tensor canary = nearest_rms(as_rows(c.images.data(), 200));
  std::printf(
      "nearest-training RMS: real test images 95%% <= %.3f; canaries min %.3f median %.3f\n",
      real_q95, canary.min().item<double>(), canary.median().item<double>());
  EXPECT_GT(canary.min().item<double>(), real_q95);
}

TEST(Canaries, RelabelTakesSpreadTestImagesWithAWrongLabel) {
  const DatasetMeta meta = test_util::tiny_meta(1, 4, 5, 3);
  const SplitData test = synthetic_split(meta, 1000, 90);
  const CanaryOptions o = options(30, "relabel", 17);
  const SplitData c = make_canaries(o, meta, &test);
  ASSERT_EQ(c.count(), 30);
  std::set<int64_t> wrong_by;
  for (int64_t j = 0; j < 30; ++j) {
    const int64_t position = j * 90 / 30;
    EXPECT_EQ(std::vector<uint8_t>(c.image(j), c.image(j) + 20),
              std::vector<uint8_t>(test.image(position), test.image(position) + 20));
    EXPECT_NE(c.labels[j], test.labels[position]) << j;
    EXPECT_GE(c.labels[j], 0);
    EXPECT_LT(c.labels[j], 3);
    EXPECT_EQ(c.ids[j], kCanaryIdBase + j);
    wrong_by.insert((c.labels[j] - test.labels[position] + 3) % 3);
  }
  EXPECT_EQ(wrong_by, (std::set<int64_t>{1, 2}));  // both wrong labels occur
  // Deterministic: the same again.
  EXPECT_EQ(make_canaries(o, meta, &test).labels, c.labels);
  // canary_test_positions names exactly the test images the canaries took (the audit keeps them
  // out of its held-out sets); ood canaries take none.
  const std::vector<int64_t> taken = canary_test_positions(o, test.count());
  ASSERT_EQ(taken.size(), 30u);
  for (int64_t j = 0; j < 30; ++j) {
    EXPECT_EQ(std::vector<uint8_t>(c.image(j), c.image(j) + 20),
              std::vector<uint8_t>(test.image(taken[j]), test.image(taken[j]) + 20));
  }
  EXPECT_TRUE(canary_test_positions(options(30, "ood", 17), test.count()).empty());
  // heldout_test_positions is the rest of the test split, ascending.
  const std::vector<int64_t> heldout = heldout_test_positions(o, test.count());
  EXPECT_EQ(static_cast<int64_t>(heldout.size()), test.count() - 30);
  EXPECT_TRUE(std::is_sorted(heldout.begin(), heldout.end()));
  std::vector<int64_t> all(heldout);
  all.insert(all.end(), taken.begin(), taken.end());
  std::sort(all.begin(), all.end());
  for (int64_t i = 0; i < test.count(); ++i) EXPECT_EQ(all[static_cast<size_t>(i)], i);
  EXPECT_EQ(static_cast<int64_t>(heldout_test_positions(options(30, "ood", 17), 7).size()), 7);
}

TEST(Canaries, InclusionCoinsAndTheAugmentedSplit) {
  const DatasetMeta meta = test_util::tiny_meta(1, 4, 5, 3);
  const SplitData train = synthetic_split(meta, 0, 40);
  const CanaryOptions o = options(400, "ood", 77);
  const SplitData c = make_canaries(o, meta, nullptr);
  const std::vector<bool> in = canary_inclusion(77, 400);
  for (int64_t j = 0; j < 400; ++j) {
    EXPECT_EQ(in[j], rng_uniform(77, rng_stream(RngStream::kCanary, 0), j) < 0.5);
  }
  const int64_t included = std::count(in.begin(), in.end(), true);
  EXPECT_NEAR(included, 200, 40);  // ~Binomial(400, 1/2): sd 10
  const SplitData aug = with_canaries(train, c, in);
  ASSERT_EQ(aug.count(), 40 + included);
  EXPECT_EQ(std::vector<uint8_t>(aug.images.begin(), aug.images.begin() + 40 * 20), train.images);
  int64_t k = 40;
  for (int64_t j = 0; j < 400; ++j) {
    if (!in[j]) continue;
    EXPECT_EQ(aug.ids[k], kCanaryIdBase + j);
    EXPECT_EQ(aug.labels[k], c.labels[j]);
    EXPECT_EQ(std::vector<uint8_t>(aug.image(k), aug.image(k) + 20),
              std::vector<uint8_t>(c.image(j), c.image(j) + 20));
    ++k;
  }
  // Training ids inside the canary range are refused.
  SplitData clash = train;
  clash.ids[3] = kCanaryIdBase + 5;
  expect_error([&] { with_canaries(clash, c, in); }, {"sample id", "canary id range"});
}

TEST(Canaries, BadOptions) {
  const DatasetMeta meta = test_util::tiny_meta(1, 4, 5, 3);
  const SplitData test = synthetic_split(meta, 1000, 20);
  expect_error([&] { make_canaries(options(5, "blue", 1), meta, nullptr); },
               {"data.canaries.kind", "ood or relabel", "blue"});
  expect_error([&] { make_canaries(options(-1, "ood", 1), meta, nullptr); },
               {"data.canaries.count", "-1"});
  expect_error([&] { make_canaries(options(5, "ood", -1), meta, nullptr); },
               {"data.canaries.seed", "set explicitly"});
  expect_error([&] { make_canaries(options(21, "relabel", 1), meta, &test); },
               {"data.canaries.count 21", "only 20"});
  expect_error([&] { make_canaries(options(2, "relabel", 1), meta, nullptr); },
               {"relabel", "no 'test' split"});
  const DatasetMeta one_class = test_util::tiny_meta(1, 4, 5, 1);
  expect_error([&] { make_canaries(options(2, "relabel", 1), one_class, &test); },
               {"relabel", "at least 2 classes"});
  expect_error([&] { make_canary(options(2, "ood", 1), meta, nullptr, 2); }, {"canary 2 of 2"});
  EXPECT_NO_THROW(options(0, "ood", -1).validate());  // no canaries: no seed needed
}

}  // namespace
}  // namespace umbra
