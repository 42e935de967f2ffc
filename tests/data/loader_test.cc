// The prefetching loader: values against a plain LibTorch reference (scale, pad, flip), the
// sampler's batches per rank, workers, prefetch (no stall for a slow consumer), errors from
// workers, finite runs, resume, and DataOptions through the config system.
#include "data/loader.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "core/config.h"
#include "core/pixels.h"
#include "data_test_util.h"

namespace umbra {
namespace {

using namespace test_util;

class LoaderTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    write_synthetic_dataset(*dir_ / "ds", tiny_meta(1, 28, 28, 10), 1000, 100, 300);
    DataOptions o;
    o.path = *dir_ / "ds";
    split_ = new std::shared_ptr<const SplitData>(Loader::load(o, "train"));
  }
  static void TearDownTestSuite() {
    delete split_;
    delete dir_;
  }
  // The reference: gather uint8 images, scale with LibTorch ops (float32 arithmetic, so values
  // may differ from the loader's table by one ulp).
  static torch::Tensor reference(const std::vector<int64_t>& positions) {
    const SplitData& s = **split_;
    auto all = torch::from_blob(const_cast<uint8_t*>(s.images.data()), {s.count(), 1, 28, 28},
                                torch::kUInt8);
    auto idx = torch::tensor(positions, torch::kInt64);
    return (all.index_select(0, idx).to(torch::kFloat32) + 0.5) / 128.0 - 1.0;
  }
  DataOptions options() const {
    DataOptions o;
    o.path = *dir_ / "ds";
    return o;
  }
  static TempDir* dir_;
  static std::shared_ptr<const SplitData>* split_;
};
TempDir* LoaderTest::dir_ = nullptr;
std::shared_ptr<const SplitData>* LoaderTest::split_ = nullptr;

TEST_F(LoaderTest, ValuesShapesLabelsAndIdsPerRank) {
  auto sampler = std::make_shared<EpochSampler>(1000, 64, 9);
  for (int rank : {0, 2}) {
    LoaderSpec spec{rank, 3, {9, 0, 0}, 0, 20};
    Loader loader(*split_, sampler, options(), spec);
    int64_t steps = 0;
    while (auto b = loader.next()) {
      const auto pos = sampler->rank_batch(b->epoch, b->step, rank, 3);
      ASSERT_EQ(b->images.sizes(),
                (std::vector<int64_t>{static_cast<int64_t>(pos.size()), 1, 28, 28}));
      EXPECT_EQ(b->images.dtype(), torch::kFloat32);
      EXPECT_GE(b->images.min().item<float>(), -1.0f);
      EXPECT_LE(b->images.max().item<float>(), 1.0f);
      EXPECT_TRUE(torch::allclose(b->images, reference(pos), 0, 1e-6));
      for (size_t k = 0; k < pos.size(); ++k) {
        EXPECT_EQ(b->ids[k].item<int64_t>(), (*split_)->ids[pos[k]]);
        EXPECT_EQ(b->labels[k].item<int64_t>(), (*split_)->labels[pos[k]]);
      }
      EXPECT_EQ(b->global_step, steps);
      ++steps;
    }
    EXPECT_EQ(steps, 20);  // 15 steps per epoch: crossed into epoch 1
  }
}

TEST_F(LoaderTest, PadTo32CentresWithMinusOne) {
  auto sampler = std::make_shared<EpochSampler>(1000, 16, 1);
  DataOptions o = options();
  o.pad_to_32 = true;
  Loader loader(*split_, sampler, o, LoaderSpec{0, 1, {1, 0, 0}, 0, 1});
  const Batch b = *loader.next();
  ASSERT_EQ(b.images.sizes(), (std::vector<int64_t>{16, 1, 32, 32}));
  const auto ref = torch::constant_pad_nd(reference(sampler->global_batch(0, 0)), {2, 2, 2, 2}, -1);
  EXPECT_TRUE(torch::allclose(b.images, ref, 0, 1e-6));
  EXPECT_TRUE(
      torch::equal(b.images.index({torch::indexing::Slice(), 0, 0}), -torch::ones({16, 32})));
}

TEST_F(LoaderTest, FlipsAreDeterministicPerSeedStepAndId) {
  auto sampler = std::make_shared<EpochSampler>(1000, 100, 4);
  DataOptions o = options();
  o.hflip = true;
  o.workers = 3;
  Loader a(*split_, sampler, o, LoaderSpec{0, 1, {4, 0, 0}, 0, 12});
  Loader b(*split_, sampler, o, LoaderSpec{0, 1, {4, 0, 0}, 0, 12});
  int64_t flipped = 0, total = 0;
  while (auto x = a.next()) {
    const Batch y = *b.next();
    EXPECT_TRUE(torch::equal(x->images, y.images));
    const auto pos = sampler->global_batch(x->epoch, x->step);
    const auto plain = reference(pos);
    for (size_t k = 0; k < pos.size(); ++k) {
      const bool f = flips(4, x->global_step, (*split_)->ids[pos[k]]);
      const auto want = f ? plain[k].flip({2}) : plain[k];
      ASSERT_TRUE(torch::allclose(x->images[k], want, 0, 1e-6))
          << "step " << x->global_step << " k " << k;
      flipped += f;
      ++total;
    }
  }
  EXPECT_NEAR(static_cast<double>(flipped) / total, 0.5, 5 * std::sqrt(0.25 / total));
  EXPECT_NE(flips(4, 0, 17) + flips(4, 1, 17) + flips(4, 2, 17) + flips(4, 3, 17) +
                flips(4, 4, 17) + flips(4, 5, 17),
            0);  // not constant over steps
}

TEST_F(LoaderTest, QueueStaysAheadOfASlowConsumer) {
  auto sampler = std::make_shared<EpochSampler>(1000, 128, 2);
  DataOptions o = options();
  o.prefetch = 3;
  Loader loader(*split_, sampler, o, LoaderSpec{0, 1, {2, 0, 0}, 0, 15});
  loader.next();  // the first step may wait for the worker to start
  const double after_first = loader.stall_seconds();
  while (loader.next()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const double stall = loader.stall_seconds() - after_first;
  std::printf("stall over 14 steps with a 20 ms consumer: %.6f s (first step %.6f s)\n", stall,
              after_first);
  EXPECT_LT(stall, 0.005);
}

// A sampler that fails at one step, to see the error cross from the worker to the consumer.
class FailingSampler : public EpochSampler {
 public:
  using EpochSampler::EpochSampler;
  std::vector<int64_t> global_batch(int64_t epoch, int64_t step) const override {
    UMBRA_CHECK(step != 3, "test sampler: step 3 is unreadable");
    return EpochSampler::global_batch(epoch, step);
  }
};

TEST_F(LoaderTest, WorkerErrorsReachTheConsumer) {
  auto sampler = std::make_shared<FailingSampler>(1000, 10, 0);
  DataOptions o = options();
  o.workers = 2;
  Loader loader(*split_, sampler, o, LoaderSpec{});
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(loader.next().has_value());
  expect_error([&] { loader.next(); }, {"step 3 is unreadable"});
  expect_error([&] { loader.next(); }, {"step 3 is unreadable"});  // stays failed
  EXPECT_EQ(loader.state().step, 3);
}

TEST_F(LoaderTest, ShutdownWhileWorkersAreBlocked) {
  auto sampler = std::make_shared<EpochSampler>(1000, 10, 0);
  DataOptions o = options();
  o.workers = 4;
  for (int i = 0; i < 5; ++i) {
    Loader loader(*split_, sampler, o, LoaderSpec{});
    if (i % 2) loader.next();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

TEST_F(LoaderTest, ResumeFromStateAndPoissonMicroBatches) {
  auto sampler = std::make_shared<PoissonSampler>(1000, 0.05, 8);
  const LoaderSpec spec{1, 2, {8, 0, 0}, 7, 30};
  std::vector<std::vector<int64_t>> ids_per_step;
  SamplerState saved;
  {
    Loader loader(*split_, sampler, options(), spec);
    std::vector<int64_t> step_ids;
    int64_t steps = 0;
    while (auto b = loader.next()) {
      EXPECT_LE(b->size(), 7);
      for (int64_t k = 0; k < b->size(); ++k) step_ids.push_back(b->ids[k].item<int64_t>());
      if (!b->last_of_step()) {
        EXPECT_EQ(loader.state().step, b->step);  // mid-step: resume repeats the step
        continue;
      }
      std::vector<int64_t> want;
      for (int64_t p : sampler->rank_batch(b->epoch, b->step, 1, 2))
        want.push_back((*split_)->ids[p]);
      EXPECT_EQ(step_ids, want);
      ids_per_step.push_back(step_ids);
      step_ids.clear();
      if (++steps == 13) saved = loader.state();
    }
    EXPECT_EQ(steps, 30);
  }
  EXPECT_EQ(sampler->global_step(saved.epoch, saved.step), 13);
  LoaderSpec resume = spec;
  resume.start = saved;
  resume.num_steps = 17;
  Loader loader(*split_, sampler, options(), resume);
  std::vector<int64_t> step_ids;
  size_t step = 13;
  while (auto b = loader.next()) {
    for (int64_t k = 0; k < b->size(); ++k) step_ids.push_back(b->ids[k].item<int64_t>());
    if (b->last_of_step()) {
      EXPECT_EQ(step_ids, ids_per_step[step++]);
      step_ids.clear();
    }
  }
  EXPECT_EQ(step, 30u);
}

TEST_F(LoaderTest, BadOptions) {
  expect_error([] { Loader::load(DataOptions{}, "train"); }, {"data.path: required"});
  auto wrong = std::make_shared<EpochSampler>(999, 10, 0);
  expect_error([&] { Loader(*split_, wrong, options(), LoaderSpec{}); },
               {"sampler covers 999 samples", "holds 1000"});
  DatasetMeta big = tiny_meta(1, 40, 40, 2);
  expect_error(
      [&] {
        decoded_size(big, DecodeOptions{true, false, 0});
      },
      {"data.pad_to_32", "40x40"});
}

struct WithData {
  DataOptions data;
  template <class V>
  void visit(V& v) {
    v.section("data", data);
  }
};

TEST(DataOptions, BindsFromConfig) {
  Config cfg = Config::from_string("data:\n  path: /x/y\n  hflip: true\n", "test.yaml",
                                   {"data.prefetch=6", "data.pad_to_32=true"});
  WithData w;
  bind_options(cfg, w);
  cfg.finish();
  EXPECT_EQ(w.data.path, "/x/y");
  EXPECT_TRUE(w.data.hflip);
  EXPECT_TRUE(w.data.pad_to_32);
  EXPECT_EQ(w.data.prefetch, 6);
  EXPECT_EQ(w.data.workers, 1);
  Config bad = Config::from_string("data:\n  prefetch: 1\n", "test.yaml");
  WithData v;
  EXPECT_THROW(bind_options(bad, v), Error);
}

}  // namespace
}  // namespace umbra
