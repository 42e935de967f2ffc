// The DP-SGD step's gradient (trainer/dp_step.h) on one process: sigma = 0 and C = infinity
// reproduce the non-private gradient across micro-batches; clipping bounds every sample; the
// noise of an empty step has standard deviation sigma*C/(q*N) and is reproducible per step.
#include "trainer/dp_step.h"

#include <gtest/gtest.h>

#include <cmath>

#include "comm/single_communicator.h"
#include "tests/trainer/dp_test_model.h"

namespace umbra {
namespace {

using namespace dp_test;

PrivacyOptions dp_options(double max_grad_norm) {
  PrivacyOptions o;
  o.enabled = true;
  o.max_grad_norm = max_grad_norm;
  return o;
}

std::vector<torch::Tensor> grads_of(const std::vector<std::pair<std::string, torch::Tensor>>& ps) {
  std::vector<torch::Tensor> out;
  // Parameters the loss does not reach (e.g. the decoder's log-variance) have no gradient.
  for (const auto& p : ps) {
    out.push_back(p.second.grad().defined() ? p.second.grad().clone()
                                            : torch::zeros_like(p.second));
  }
  return out;
}

TEST(DpStep, NoNoiseNoClippingEqualsNonPrivateGradientOverMicroBatches) {
  Autoencoder model = tiny_autoencoder(3);
  const auto params = trainable(*model);
  const torch::Tensor x = images(6, 4);
  const double expected_batch = 8.0;

  for (auto& p : params) p.second.mutable_grad() = torch::Tensor();
  (per_sample_loss(model, x).sum() / expected_batch).backward();
  const auto reference = grads_of(params);

  SingleCommunicator comm;
  GradientSyncOptions so;
  so.use_hooks = false;
  GradientSync sync(comm, params, so);
  {
    DpGradient dp(*model, params, dp_options(1e12), 1, 0.0, expected_batch, 7, 0);
    dp.begin_step();
    for (int64_t b = 0; b < 6; b += 4) {  // micro-batches of 4 and 2
      const auto chunk = x.slice(0, b, std::min<int64_t>(6, b + 4));
      dp.accumulate(per_sample_loss(model, chunk), chunk.size(0));
    }
    const DpStepStats stats = dp.finish(sync, 0);
    EXPECT_EQ(stats.samples, 6);
    EXPECT_EQ(stats.clipped, 0);
  }
  EXPECT_LE(relative_error(grads_of(params), reference), 1e-4);
}

TEST(DpStep, EverySampleContributesAtMostC) {
  Autoencoder model = tiny_autoencoder(3);
  const auto params = trainable(*model);
  const torch::Tensor x = images(5, 5);
  SingleCommunicator comm;
  GradientSyncOptions so;
  so.use_hooks = false;
  GradientSync sync(comm, params, so);
  const double c = 1e-4;
  DpGradient dp(*model, params, dp_options(c), 1, 0.0, 1.0, 7, 0);
  dp.begin_step();
  dp.accumulate(per_sample_loss(model, x), 5);
  const DpStepStats stats = dp.finish(sync, 0);
  EXPECT_EQ(stats.clipped, 5);
  double sq = 0;
  for (const auto& g : grads_of(params)) sq += g.pow(2).sum().item<double>();
  EXPECT_LE(std::sqrt(sq), 5 * c * (1 + 1e-5));
  EXPECT_GT(std::sqrt(sq), 0.5 * c);  // the samples are not all orthogonal/cancelling
}

TEST(DpStep, EmptyStepIsNoiseWithStdSigmaCOverExpectedBatch) {
  Autoencoder model = tiny_autoencoder(3);
  const auto params = trainable(*model);
  SingleCommunicator comm;
  GradientSyncOptions so;
  so.use_hooks = false;
  GradientSync sync(comm, params, so);
  const double sigma = 2.0, c = 0.5, qn = 10.0;
  DpGradient dp(*model, params, dp_options(c), 1, sigma, qn, 11, 0);
  EXPECT_DOUBLE_EQ(dp.noise_std(), sigma * c);

  dp.begin_step();
  dp.finish(sync, 3);
  std::vector<torch::Tensor> flat;
  for (const auto& g : grads_of(params)) flat.push_back(g.flatten());
  const torch::Tensor all = torch::cat(flat).to(torch::kFloat64);
  const double n = static_cast<double>(all.numel());
  ASSERT_GT(n, 10000);
  const double expected = sigma * c / qn;
  // std of a sample std ~ expected / sqrt(2n): 5 of those is far inside 3%.
  EXPECT_NEAR(all.std().item<double>(), expected, 0.03 * expected);
  EXPECT_NEAR(all.mean().item<double>(), 0.0, 5 * expected / std::sqrt(n));

  // The same step's noise again, and a different step's.
  dp.begin_step();
  dp.finish(sync, 3);
  std::vector<torch::Tensor> again;
  for (const auto& g : grads_of(params)) again.push_back(g.flatten());
  EXPECT_TRUE(torch::equal(torch::cat(again).to(torch::kFloat64), all));
  dp.begin_step();
  dp.finish(sync, 4);
  std::vector<torch::Tensor> other;
  for (const auto& g : grads_of(params)) other.push_back(g.flatten());
  EXPECT_FALSE(torch::equal(torch::cat(other).to(torch::kFloat64), all));
}

TEST(DpStep, RefusesBatchNorm) {
  torch::nn::Sequential net(torch::nn::Conv2d(1, 2, 3), torch::nn::BatchNorm2d(2));
  std::vector<std::pair<std::string, torch::Tensor>> params;
  for (const auto& kv : net->named_parameters()) params.emplace_back(kv.key(), kv.value());
  try {
    DpGradient dp(*net, params, dp_options(1.0), 1, 1.0, 4.0, 1, 0);
    FAIL() << "BatchNorm accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("BatchNorm"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace umbra
