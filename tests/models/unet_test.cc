// UNet (models/unet.h) shapes and conditioning, and the diffusion loss (models/diffusion_loss.h)
// against its definition.
#include "models/unet.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include "core/check.h"
#include "core/config.h"
#include "models/diffusion_loss.h"
#include "tiny_models.h"

namespace umbra {
namespace {

using testing::tiny_prior_options;

TEST(UNet, ShapesForLatentSizes) {
  torch::manual_seed(0);
  struct Case {
    std::vector<int64_t> mult;
    std::vector<int64_t> attention;
    int64_t size;
  };
  for (const Case& c : {Case{{1, 2}, {2}, 8}, Case{{1, 2}, {1, 2}, 7}, Case{{1, 2, 2}, {4}, 7},
                        Case{{1, 2, 2}, {4}, 8}, Case{{1}, {}, 5}}) {
    PriorOptions o = tiny_prior_options(10);
    o.channel_mult = c.mult;
    o.attention_resolutions = c.attention;
    UNet net(o, 4);
    const auto x = torch::randn({2, 4, c.size, c.size});
    const auto out = net->forward(x, torch::tensor({0, 999}, torch::kLong),
                                  torch::tensor({3, 10}, torch::kLong));
    EXPECT_EQ(out.sizes(), x.sizes()) << c.size;
  }
}

TEST(UNet, ConditioningChangesTheOutput) {
  torch::manual_seed(1);
  UNet net(tiny_prior_options(5), 4);
  net->eval();
  const auto x = torch::randn({2, 4, 8, 8});
  const auto t = torch::tensor({10, 10}, torch::kLong);
  const auto a = net->forward(x, t, torch::tensor({1, 1}, torch::kLong));
  const auto b = net->forward(x, t, torch::tensor({2, 2}, torch::kLong));
  EXPECT_FALSE(torch::allclose(a, b));
  // No labels = the null class.
  EXPECT_TRUE(
      torch::allclose(net->forward(x, t), net->forward(x, t, torch::tensor({5, 5}, torch::kLong))));
  EXPECT_FALSE(torch::allclose(a, net->forward(x, torch::tensor({11, 11}, torch::kLong),
                                               torch::tensor({1, 1}, torch::kLong))));
  EXPECT_THROW(net->forward(x, t, torch::tensor({1, 6}, torch::kLong)), Error);
  EXPECT_THROW(net->forward(torch::randn({2, 3, 8, 8}), t), Error);

  UNet uncond(tiny_prior_options(0), 4);
  EXPECT_EQ(uncond->forward(x, t).sizes(), x.sizes());
  EXPECT_THROW(uncond->forward(x, t, torch::tensor({1, 1}, torch::kLong)), Error);
}

TEST(UNet, ValidatesOptions) {
  PriorOptions o = tiny_prior_options(10);
  o.attention_resolutions = {3};
  EXPECT_THROW(UNet(o, 4), Error);
  o = tiny_prior_options(10);
  o.num_heads = 3;
  EXPECT_THROW(UNet(o, 4), Error);
  o = tiny_prior_options(10);
  o.norm_num_groups = 5;
  EXPECT_THROW(UNet(o, 4), Error);
}

TEST(PriorOptions, BindFromConfig) {
  Config cfg = Config::from_string(
      "prior:\n  channels: 32\n  channel_mult: [1, 2]\n  prediction_type: v_prediction\n", "test",
      {"prior.num_classes=0"});
  PriorOptions o;
  detail::BindVisitor v(cfg, "prior.");
  o.visit(v);
  cfg.finish();
  EXPECT_EQ(o.channels, 32);
  EXPECT_EQ(o.channel_mult, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(o.prediction_type, "v_prediction");
  EXPECT_EQ(o.num_classes, 0);
  Config bad = Config::from_string("prior:\n  beta_schedule: quadratic\n", "test");
  PriorOptions o2;
  detail::BindVisitor v2(bad, "prior.");
  EXPECT_THROW(o2.visit(v2), Error);
}

TEST(DiffusionLoss, MatchesDefinition) {
  torch::manual_seed(2);
  UNet net(tiny_prior_options(3), 4);
  net->eval();
  const NoiseSchedule s(BetaSchedule::kCosine, 1000);
  const auto x0 = torch::randn({3, 4, 7, 7});
  const auto noise = torch::randn({3, 4, 7, 7});
  const auto t = torch::tensor({50, 100, 300}, torch::kLong);
  const auto y = torch::tensor({0, 1, 3}, torch::kLong);
  for (auto type : {PredictionType::kEpsilon, PredictionType::kV}) {
    const auto loss = diffusion_loss(*net, s, type, x0, y, t, noise);
    ASSERT_EQ(loss.sizes(), (std::vector<int64_t>{3}));
    const auto xt = s.q_sample(x0, noise, t);
    const auto target = type == PredictionType::kEpsilon ? noise : s.v_from_eps_x0(noise, x0, t);
    const auto out = net->forward(xt, t, y);
    for (int i = 0; i < 3; ++i) {
      EXPECT_NEAR(loss[i].item<double>(), (out[i] - target[i]).pow(2).mean().item<double>(), 1e-6);
    }
  }
}

TEST(DiffusionLoss, TrainingLossIsSeededAndDropsLabels) {
  torch::manual_seed(3);
  UNet net(tiny_prior_options(3), 4);
  net->eval();
  const NoiseSchedule s(BetaSchedule::kLinear, 1000);
  const auto x0 = torch::randn({4, 4, 8, 8});
  const auto y = torch::tensor({0, 1, 2, 1}, torch::kLong);
  at::Generator g1 = at::detail::createCPUGenerator(5), g2 = at::detail::createCPUGenerator(5);
  const auto a = diffusion_training_loss(*net, s, PredictionType::kEpsilon, x0, y, g1);
  const auto b = diffusion_training_loss(*net, s, PredictionType::kEpsilon, x0, y, g2);
  EXPECT_TRUE(torch::equal(a, b));
  // The random entry point is the explicit one on the drawn inputs.
  at::Generator g3 = at::detail::createCPUGenerator(5);
  const auto in = draw_diffusion_inputs(s, x0, y, 3, 0.1, g3);
  EXPECT_TRUE(torch::equal(
      a, diffusion_loss(*net, s, PredictionType::kEpsilon, x0, in.labels, in.t, in.noise)));

  // Label dropout: about `prob` of the labels become the null class, the others are unchanged.
  at::Generator g = at::detail::createCPUGenerator(7);
  const auto labels = torch::arange(20000, torch::kLong) % 3;
  const auto dropped = drop_labels(labels, 3, 0.1, g);
  const auto is_null = dropped.eq(3);
  const double rate = is_null.to(torch::kFloat64).mean().item<double>();
  EXPECT_NEAR(rate, 0.1, 5 * std::sqrt(0.1 * 0.9 / 20000));
  EXPECT_TRUE(torch::equal(dropped.masked_select(~is_null), labels.masked_select(~is_null)));
}

}  // namespace
}  // namespace umbra
