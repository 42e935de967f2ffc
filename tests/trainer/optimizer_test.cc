#include "trainer/optimizer.h"

#include <gtest/gtest.h>

#include "core/check.h"

namespace umbra {
namespace {

// Our AdamW must follow torch::optim::AdamW exactly (same update formula, same order).
TEST(Optimizer, AdamWMatchesLibTorch) {
  torch::manual_seed(0);
  auto a = torch::randn({5, 3}).requires_grad_(true);
  auto b = a.detach().clone().requires_grad_(true);
  OptimizerOptions o;
  o.lr = 1e-2;
  o.weight_decay = 0.1;
  Optimizer ours({{"a", a}}, o);
  torch::optim::AdamW ref({b}, torch::optim::AdamWOptions(o.lr).weight_decay(o.weight_decay));
  for (int step = 0; step < 20; ++step) {
    const auto target = torch::randn({5, 3});
    ours.zero_grad();
    ref.zero_grad();
    ((a - target).pow(2).sum()).backward();
    ((b - target).pow(2).sum()).backward();
    ours.step(o.lr);
    ref.step();
  }
  EXPECT_LT((a - b).abs().max().item<double>(), 1e-6);
}

TEST(Optimizer, StateRoundTripIsBitExact) {
  torch::manual_seed(1);
  auto make = [] { return torch::randn({4}).requires_grad_(true); };
  auto p = make();
  auto q = p.detach().clone().requires_grad_(true);
  OptimizerOptions o;
  Optimizer first({{"p", p}}, o);
  auto run = [](Optimizer& opt, torch::Tensor& x, int steps, int seed) {
    for (int s = 0; s < steps; ++s) {
      torch::manual_seed(seed + s);
      opt.zero_grad();
      (x * torch::randn({4})).sum().backward();
      opt.step(1e-2);
    }
  };
  run(first, p, 5, 100);
  // Continue in a fresh optimizer from the saved state.
  Optimizer second({{"q", q}}, o);
  {
    torch::NoGradGuard g;
    q.copy_(p);
  }
  TensorMap state;
  for (const auto& kv : first.state()) {
    std::string k = kv.first;
    if (k != "step") k = k.substr(0, 2) + "q";
    state[k] = kv.second.clone();
  }
  second.load_state(state);
  run(first, p, 5, 200);
  run(second, q, 5, 200);
  EXPECT_TRUE(torch::equal(p, q));
}

TEST(Optimizer, LoadStateNamesMissingEntry) {
  auto p = torch::zeros({2}).requires_grad_(true);
  Optimizer opt({{"layer.weight", p}}, OptimizerOptions{});
  TensorMap bad{{"step", torch::tensor({int64_t{3}})}};
  try {
    opt.load_state(bad);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layer.weight"), std::string::npos) << e.what();
  }
}

TEST(Optimizer, WarmupThenCosine) {
  OptimizerOptions o;
  o.lr = 1.0;
  o.warmup_steps = 10;
  o.min_lr_ratio = 0.1;
  EXPECT_DOUBLE_EQ(learning_rate(o, 0, 110), 0.1);
  EXPECT_DOUBLE_EQ(learning_rate(o, 9, 110), 1.0);
  EXPECT_DOUBLE_EQ(learning_rate(o, 10, 110), 1.0);
  EXPECT_NEAR(learning_rate(o, 60, 110), 0.55, 1e-12);
  EXPECT_NEAR(learning_rate(o, 110, 110), 0.1, 1e-12);
}

}  // namespace
}  // namespace umbra
