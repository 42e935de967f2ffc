// Samplers (models/samplers.h): shapes and determinism, classifier-free guidance against a
// reference loop written here from the formulas, and DDIM(S = T, η = 1) against DDPM both draw by
// draw (same seed) and in distribution (independent seeds, two-sample tests on every coordinate).
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "core/check.h"
#include "models/samplers.h"
#include "tiny_models.h"

namespace umbra {
namespace {

PriorOptions stats_prior_options() {
  PriorOptions o;
  o.channels = 8;
  o.channel_mult = {1, 2};
  o.num_res_blocks = 1;
  o.attention_resolutions = {2};
  o.num_heads = 2;
  o.norm_num_groups = 4;
  o.dropout = 0.0;
  o.num_classes = 3;
  return o;
}

// A tiny random UNet on 2x4x4 latents. T = 100 keeps the DDPM tests fast where the number of
// steps does not matter; the DDIM-vs-DDPM tests use T = 1000.
struct Fixture {
  UNet net{nullptr};
  NoiseSchedule schedule;
  std::vector<int64_t> shape{2, 4, 4};
  explicit Fixture(PriorOptions o = stats_prior_options(), int64_t num_timesteps = 100,
                   uint64_t seed = 0)
      : schedule(BetaSchedule::kLinear, num_timesteps, 1e-4, 0.02 * 1000.0 / num_timesteps) {
    torch::manual_seed(seed);
    net = UNet(o, 2);
    testing::perturb_parameters(*net, 0.05);
  }
  torch::Tensor sample(const SamplerOptions& so, int64_t n, const torch::Tensor& labels,
                       uint64_t seed, PredictionType type = PredictionType::kEpsilon) {
    return sample_latents(*net, schedule, type, so, n, shape, labels, seed);
  }
};

SamplerOptions ddim(int64_t steps, double eta, double w = 1.0) {
  SamplerOptions o;
  o.sampler = "ddim";
  o.num_inference_steps = steps;
  o.eta = eta;
  o.guidance_scale = w;
  return o;
}

SamplerOptions ddpm(int64_t steps, double w = 1.0) {
  SamplerOptions o;
  o.sampler = "ddpm";
  o.num_inference_steps = steps;
  o.guidance_scale = w;
  return o;
}

TEST(Samplers, ShapesAndDeterminism) {
  Fixture f;
  const auto labels = torch::tensor({0, 1, 2, 3, 0}, torch::kLong);  // 3 = null class
  for (const SamplerOptions& so : {ddim(10, 0.0), ddim(10, 0.7, 2.5), ddpm(10, 1.5)}) {
    const auto a = f.sample(so, 5, labels, 42);
    EXPECT_EQ(a.sizes(), (std::vector<int64_t>{5, 2, 4, 4}));
    EXPECT_TRUE(torch::isfinite(a).all().item<bool>());
    EXPECT_TRUE(torch::equal(a, f.sample(so, 5, labels, 42))) << so.sampler;
    EXPECT_FALSE(torch::allclose(a, f.sample(so, 5, labels, 43))) << so.sampler;
  }
  // Unconditional = every label the null class (equal up to the rounding of a 2B-batch forward).
  EXPECT_TRUE(torch::allclose(f.sample(ddim(8, 0.5, 3.0), 3, {}, 1),
                              f.sample(ddim(8, 0.5, 3.0), 3, torch::full({3}, 3, torch::kLong), 1),
                              1e-4, 1e-4));
  // v-prediction models sample too.
  EXPECT_TRUE(
      torch::isfinite(f.sample(ddim(5, 0.0, 2.0), 2, labels.slice(0, 0, 2), 3, PredictionType::kV))
          .all()
          .item<bool>());
}

TEST(Samplers, UsesEvalModeAndRestoresTheMode) {
  PriorOptions o = stats_prior_options();
  o.dropout = 0.5;
  Fixture f(o);
  f.net->eval();
  const auto labels = torch::tensor({1, 2}, torch::kLong);
  const auto in_eval = f.sample(ddim(6, 0.0), 2, labels, 9);
  f.net->train();
  EXPECT_TRUE(torch::equal(in_eval, f.sample(ddim(6, 0.0), 2, labels, 9)));
  EXPECT_TRUE(f.net->is_training());
}

TEST(Samplers, RejectsBadRequests) {
  Fixture f;
  EXPECT_THROW(f.sample(ddim(0, 0.0), 2, {}, 1), Error);
  EXPECT_THROW(f.sample(ddim(5, 1.5), 2, {}, 1), Error);
  EXPECT_THROW(f.sample(ddim(5, 0.0), 2, torch::tensor({1}, torch::kLong), 1), Error);
  SamplerOptions bad = ddim(5, 0.0);
  bad.sampler = "euler";
  EXPECT_THROW(f.sample(bad, 2, {}, 1), Error);
  EXPECT_THROW(sample_latents(*f.net, f.schedule, PredictionType::kEpsilon, ddim(5, 0.0), 2,
                              {3, 4, 4}, {}, 1),
               Error);
}

// DDIM written out from Song et al. with separate conditional/unconditional forwards and the
// sampler's documented noise order; `guide` combines (cond, uncond) outputs.
torch::Tensor reference_ddim(Fixture& f, int64_t steps, double eta, const torch::Tensor& labels,
                             uint64_t seed, double w, bool plain_conditional) {
  torch::NoGradGuard no_grad;
  f.net->eval();
  at::Generator gen = at::detail::createCPUGenerator(seed);
  const int64_t n = labels.size(0);
  torch::Tensor x = torch::randn({n, 2, 4, 4}, gen, torch::kFloat32);
  const auto ts = sampling_timesteps(f.schedule.num_timesteps(), steps);
  const auto null = torch::full_like(labels, 3);
  for (size_t i = 0; i < ts.size(); ++i) {
    const auto t = torch::full({n}, ts[i], torch::kLong);
    torch::Tensor eps;
    if (plain_conditional) {
      eps = f.net->forward(x, t, labels);
    } else {
      const auto ec = f.net->forward(x, t, labels);
      const auto eu = f.net->forward(x, t, null);
      eps = eu + w * (ec - eu);
    }
    const double ab = f.schedule.alpha_cumprod(ts[i]);
    const double ab_prev = f.schedule.alpha_cumprod(i + 1 < ts.size() ? ts[i + 1] : -1);
    const auto x0 = (x - std::sqrt(1 - ab) * eps) / std::sqrt(ab);
    const double sigma = eta * std::sqrt((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev));
    x = std::sqrt(ab_prev) * x0 + std::sqrt(1 - ab_prev - sigma * sigma) * eps;
    if (sigma > 0) x = x + sigma * torch::randn({n, 2, 4, 4}, gen, torch::kFloat32);
  }
  return x;
}

TEST(Samplers, GuidanceScaleOneIsConditionalSampling) {
  Fixture f;
  const auto labels = torch::tensor({0, 1, 2, 1}, torch::kLong);
  const auto guided = f.sample(ddim(12, 0.3, 1.0), 4, labels, 5);
  EXPECT_TRUE(torch::equal(guided, reference_ddim(f, 12, 0.3, labels, 5, 1.0, true)));
}

TEST(Samplers, GuidanceCombinesConditionalAndUnconditional) {
  Fixture f;
  const auto labels = torch::tensor({0, 1, 2, 1}, torch::kLong);
  // The 2B-batched guided output equals the combination of two separate forwards.
  torch::NoGradGuard no_grad;
  f.net->eval();
  const auto x = torch::randn({4, 2, 4, 4});
  const auto t = torch::tensor({5, 400, 700, 999}, torch::kLong);
  const auto ec = f.net->forward(x, t, labels);
  const auto eu = f.net->forward(x, t, torch::full_like(labels, 3));
  EXPECT_TRUE(torch::allclose(guided_model_output(*f.net, x, t, labels, 3.0), eu + 3.0 * (ec - eu),
                              1e-5, 1e-5));
  EXPECT_TRUE(torch::equal(guided_model_output(*f.net, x, t, labels, 0.0), eu));
  // Whole sampling runs agree with the reference loop.
  const auto guided = f.sample(ddim(12, 0.3, 3.0), 4, labels, 5);
  const auto ref = reference_ddim(f, 12, 0.3, labels, 5, 3.0, false);
  EXPECT_LE((guided - ref).abs().max().item<double>(), 1e-3);
  EXPECT_GT((guided - f.sample(ddim(12, 0.3, 1.0), 4, labels, 5)).abs().max().item<double>(), 1e-2);
}

// With η = 1 and every timestep, DDIM's update is algebraically DDPM's ancestral step with the
// posterior variance β̃_t, and both draw their noise in the same order: the same seed gives the
// same samples up to float rounding.
TEST(Samplers, DdimWithAllStepsAndEtaOneIsDdpmDrawByDraw) {
  Fixture f(stats_prior_options(), 1000);
  const auto labels = torch::tensor({0, 1, 2, 3, 2, 1}, torch::kLong);
  const auto a = f.sample(ddpm(1000, 2.0), 6, labels, 17);
  const auto b = f.sample(ddim(1000, 1.0, 2.0), 6, labels, 17);
  const double diff = (a - b).abs().max().item<double>();
  std::printf("DDPM vs DDIM(S=T, eta=1), same seed: max abs diff %.3g (max |x| %.3g)\n", diff,
              a.abs().max().item<double>());
  EXPECT_LE(diff, 1e-3 * (1.0 + a.abs().max().item<double>()));
}

// Respaced DDPM (S < T, β = 1 − ᾱ_t/ᾱ_prev) is the same update as DDIM with η = 1 on the same
// steps, and it really takes S steps: fewer steps give different samples.
TEST(Samplers, RespacedDdpmIsDdimWithEtaOneOnTheSameSteps) {
  Fixture f(stats_prior_options(), 1000);
  const auto labels = torch::tensor({0, 1, 2, 3}, torch::kLong);
  const auto a = f.sample(ddpm(25, 1.5), 4, labels, 8);
  const auto b = f.sample(ddim(25, 1.0, 1.5), 4, labels, 8);
  EXPECT_LE((a - b).abs().max().item<double>(), 1e-4 * (1.0 + a.abs().max().item<double>()));
  EXPECT_GT((a - f.sample(ddpm(50, 1.5), 4, labels, 8)).abs().max().item<double>(), 1e-2);
}

struct Moments {
  torch::Tensor mean, var, var_se;  // per coordinate
};
Moments moments(const torch::Tensor& samples) {  // [N, D] float64
  const double n = static_cast<double>(samples.size(0));
  Moments m;
  m.mean = samples.mean(0);
  const auto c = samples - m.mean;
  m.var = c.pow(2).mean(0) * n / (n - 1);
  // Standard error of the sample variance from the fourth central moment (no normality assumed).
  m.var_se = torch::sqrt((c.pow(4).mean(0) - c.pow(2).mean(0).pow(2)) / n);
  return m;
}

// Independent draws from DDPM and DDIM(S = T = 1000, η = 1): for every coordinate of the latent,
// a two-sample z-test on the means and one on the variances. 2 x 32 tests at |z| < 4.5 give a
// false alarm probability below 0.05 %; a systematic difference of 0.28 std gives |z| ≈ 4.5.
// (Attention only in the mid block keeps 3 x 1000 forwards of a batch of 500 affordable.)
TEST(Samplers, DdimWithAllStepsAndEtaOneMatchesDdpmStatistics) {
  PriorOptions o = stats_prior_options();
  o.attention_resolutions = {};
  Fixture f(o, 1000);
  const int64_t n = 500;
  const auto labels = torch::arange(n, torch::kLong) % 4;  // classes 0..2 and unconditional
  const auto p = f.sample(ddpm(1000), n, labels, 1001).flatten(1).to(torch::kFloat64);
  const auto q = f.sample(ddim(1000, 1.0), n, labels, 2002).flatten(1).to(torch::kFloat64);
  const Moments mp = moments(p), mq = moments(q);
  const auto z_mean = (mp.mean - mq.mean) / torch::sqrt((mp.var + mq.var) / static_cast<double>(n));
  const auto z_var = (mp.var - mq.var) / torch::sqrt(mp.var_se.pow(2) + mq.var_se.pow(2));
  std::printf("DDPM vs DDIM(S=T, eta=1), n=%lld: max |z| means %.2f, variances %.2f\n",
              static_cast<long long>(n), z_mean.abs().max().item<double>(),
              z_var.abs().max().item<double>());
  EXPECT_LT(z_mean.abs().max().item<double>(), 4.5) << z_mean;
  EXPECT_LT(z_var.abs().max().item<double>(), 4.5) << z_var;
  // The test has power: DDIM with η = 0 (deterministic given x_T) is a different distribution.
  const auto d = f.sample(ddim(1000, 0.0), n, labels, 3003).flatten(1).to(torch::kFloat64);
  const Moments md = moments(d);
  const auto z_var_d = (mp.var - md.var) / torch::sqrt(mp.var_se.pow(2) + md.var_se.pow(2));
  const auto z_mean_d =
      (mp.mean - md.mean) / torch::sqrt((mp.var + md.var) / static_cast<double>(n));
  std::printf("DDPM vs DDIM(eta=0): max |z| means %.2f, variances %.2f\n",
              z_mean_d.abs().max().item<double>(), z_var_d.abs().max().item<double>());
  EXPECT_GT(std::max(z_var_d.abs().max().item<double>(), z_mean_d.abs().max().item<double>()), 4.5);
}

TEST(Samplers, DecodeLatentsIsOneCall) {
  torch::manual_seed(3);
  Autoencoder ae(testing::tiny_autoencoder_options(28));
  const auto z = torch::randn({2, 4, 7, 7});
  const auto images = decode_latents(*ae, z * 2.0, 2.0);
  EXPECT_EQ(images.sizes(), (std::vector<int64_t>{2, 1, 28, 28}));
  EXPECT_LE(images.abs().max().item<double>(), 1.0);
  torch::NoGradGuard no_grad;
  ae->eval();
  EXPECT_TRUE(torch::allclose(images, ae->decode(z).clamp(-1, 1), 1e-5, 1e-5));
}

}  // namespace
}  // namespace umbra
