// Autoencoder (models/autoencoder.h) and its likelihood evaluation (models/elbo.h): shapes for
// 28 and 32 working sizes, option validation, the closed-form KL against a Monte-Carlo estimate,
// ELBO against an importance-sampled log-likelihood (IWAE), and the bits/dim convention against
// a density whose bits/dim is known exactly.
#include "models/autoencoder.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>

#include "core/check.h"
#include "models/elbo.h"
#include "tiny_models.h"

namespace umbra {
namespace {

using testing::tiny_autoencoder_options;

TEST(Autoencoder, ShapesFor28And32) {
  torch::manual_seed(0);
  for (int64_t sample_size : {28, 32}) {
    Autoencoder ae(tiny_autoencoder_options(sample_size));
    const int64_t h = sample_size / 4;
    EXPECT_EQ(ae->latent_shape(), (std::vector<int64_t>{4, h, h}));
    const auto x = torch::rand({3, 1, 28, 28}) * 2 - 1;
    const Posterior q = ae->encode(x);
    EXPECT_EQ(q.mean.sizes(), (std::vector<int64_t>{3, 4, h, h}));
    EXPECT_EQ(q.logvar.sizes(), q.mean.sizes());
    const auto out = ae->forward(x, torch::randn({3, 4, h, h}));
    EXPECT_EQ(out.reconstruction.sizes(), x.sizes());
    EXPECT_EQ(out.loss.sizes(), (std::vector<int64_t>{3}));
    EXPECT_TRUE(torch::allclose(out.loss, out.nll + out.kl));
  }
}

TEST(Autoencoder, OtherConfigurations) {
  torch::manual_seed(1);
  // Two levels (f = 2), RGB, more blocks and heads, and a 3-level model at 16x16.
  AutoencoderOptions o = tiny_autoencoder_options(32);
  o.in_channels = 3;
  o.image_size = 30;
  o.channel_mult = {1, 2};
  o.num_res_blocks = 2;
  o.num_heads = 4;
  o.beta = 0.5;
  Autoencoder ae(o);
  const auto x = torch::rand({2, 3, 30, 30}) * 2 - 1;
  const auto out = ae->forward(x, torch::randn({2, 4, 16, 16}));
  EXPECT_EQ(out.reconstruction.sizes(), x.sizes());
  EXPECT_TRUE(torch::allclose(out.loss, out.nll + 0.5 * out.kl));
  // Only the 4x4 mid block and up/down paths change with the level count.
  AutoencoderOptions small = tiny_autoencoder_options(16);
  small.image_size = 16;
  Autoencoder ae16(small);
  EXPECT_EQ(ae16->decode(torch::randn({1, 4, 4, 4})).sizes(), (std::vector<int64_t>{1, 1, 16, 16}));
}

TEST(Autoencoder, ValidatesOptionsAndInputs) {
  AutoencoderOptions o = tiny_autoencoder_options(30);  // 30 is not a multiple of f = 4
  EXPECT_THROW(Autoencoder{o}, Error);
  o = tiny_autoencoder_options(32);
  o.norm_num_groups = 3;
  EXPECT_THROW(Autoencoder{o}, Error);
  o = tiny_autoencoder_options(24);  // smaller than the 28x28 images
  EXPECT_THROW(Autoencoder{o}, Error);
  Autoencoder ae(tiny_autoencoder_options(32));
  EXPECT_THROW(ae->encode(torch::zeros({1, 1, 32, 32})), Error);
  EXPECT_THROW(ae->decode(torch::zeros({1, 4, 7, 7})), Error);
}

TEST(Autoencoder, PaddingIsBlackAndNotPartOfTheLikelihood) {
  torch::manual_seed(2);
  Autoencoder ae(tiny_autoencoder_options(32));
  ae->eval();
  torch::NoGradGuard no_grad;
  const auto x = torch::rand({1, 1, 28, 28}) * 2 - 1;
  // encode(x) equals encoding the explicitly padded image with a 32x32 working size.
  AutoencoderOptions full = tiny_autoencoder_options(32);
  full.image_size = 32;
  Autoencoder ae32(full);
  for (size_t i = 0; i < ae->parameters().size(); ++i) {
    ae32->parameters()[i].copy_(ae->parameters()[i]);
  }
  const auto padded = torch::constant_pad_nd(x, {2, 2, 2, 2}, -1.0);
  EXPECT_TRUE(torch::allclose(ae->encode(x).mean, ae32->encode(padded).mean, 1e-5, 1e-5));
  const auto z = torch::randn({1, 4, 8, 8});
  EXPECT_TRUE(torch::allclose(ae->decode(z), ae32->decode(z).slice(2, 2, 30).slice(3, 2, 30)));
}

// KL(N(μ, σ²) || N(0, 1)) by Monte Carlo: E_q[log q(z) − log p(z)] over many reparameterised draws.
TEST(Autoencoder, ClosedFormKLMatchesMonteCarlo) {
  torch::manual_seed(3);
  const auto mean = torch::randn({2, 4, 3, 3}, torch::kFloat64);
  const auto logvar = torch::randn({2, 4, 3, 3}, torch::kFloat64) * 0.7;
  const Posterior q{mean, logvar};
  const auto closed = q.kl();
  const int64_t n = 200000;
  const auto eps = torch::randn({n, 2, 4, 3, 3}, torch::kFloat64);
  const auto z = mean + torch::exp(0.5 * logvar) * eps;
  const auto log_q = -0.5 * (eps.pow(2) + logvar + std::log(2 * M_PI));
  const auto log_p = -0.5 * (z.pow(2) + std::log(2 * M_PI));
  const auto per_draw = (log_q - log_p).flatten(2).sum(2);  // [n, 2]
  const auto mc = per_draw.mean(0);
  const auto stderr_ = per_draw.std(0) / std::sqrt(static_cast<double>(n));
  for (int64_t i = 0; i < 2; ++i) {
    EXPECT_NEAR(mc[i].item<double>(), closed[i].item<double>(), 5 * stderr_[i].item<double>())
        << "sample " << i;
  }
  // log_prob agrees with the same density.
  const auto z0 = z[0];
  const auto lq = q.log_prob(z0);
  EXPECT_TRUE(torch::allclose(lq, log_q[0].flatten(1).sum(1)));
}

// ELBO <= log p(x); the IWAE estimate with K samples is a tighter lower bound that converges to
// log p(x), so ELBO <= IWAE_K. With K = 1 IWAE is an unbiased estimate of the ELBO itself.
TEST(Autoencoder, ElboBelowImportanceSampledLogLikelihood) {
  torch::manual_seed(4);
  AutoencoderOptions o = tiny_autoencoder_options(28);
  o.logvar_init = -2.0;
  Autoencoder ae(o);
  testing::perturb_parameters(*ae, 0.02);
  ae->eval();
  at::Generator gen = at::detail::createCPUGenerator(11);
  const auto pixels = torch::randint(0, 256, {3, 1, 28, 28}, torch::kUInt8);
  const auto v = pixels_to_model(pixels);

  const auto elbo = -negative_elbo_nats(*ae, v, 400, gen);
  const auto iwae = iwae_log_likelihood(*ae, v, 1000, gen, 250);
  // K = 1 IWAE terms: their mean estimates the ELBO.
  std::vector<torch::Tensor> singles;
  for (int k = 0; k < 200; ++k) singles.push_back(iwae_log_likelihood(*ae, v, 1, gen));
  const auto single = torch::stack(singles);  // [200, 3]
  const auto single_mean = single.mean(0);
  const auto single_se = single.std(0) / std::sqrt(200.0);
  for (int64_t i = 0; i < 3; ++i) {
    const double e = elbo[i].item<double>(), w = iwae[i].item<double>();
    EXPECT_LT(e, w) << "sample " << i << ": ELBO " << e << " IWAE " << w;
    EXPECT_NEAR(single_mean[i].item<double>(), e,
                5 * single_se[i].item<double>() + 1e-3 * std::abs(e))
        << "sample " << i;
  }
}

TEST(Elbo, PixelConventionRoundTrips) {
  const auto pixels = torch::arange(256, torch::kLong).to(torch::kUInt8).view({1, 1, 16, 16});
  const auto v = pixels_to_model(pixels);
  EXPECT_GE(v.min().item<double>(), -1.0);
  EXPECT_LT(v.max().item<double>(), 1.0);
  EXPECT_TRUE(torch::equal(model_to_pixels(v), pixels));
  at::Generator gen = at::detail::createCPUGenerator(5);
  const auto d = dequantize_pixels(pixels, gen);
  EXPECT_TRUE(torch::equal(model_to_pixels(d), pixels));  // u stays inside its pixel's bin
}

// The uniform density on [−1, 1)^D (−log p_v = D ln 2) is the uniform distribution over the 256
// levels after the change of variables: exactly 8 bits/dim and D ln 256 nats/image.
TEST(Elbo, BitsPerDimConventionOnTheUniformDensity) {
  const int64_t d = 784;
  EXPECT_NEAR(model_nats_to_bits_per_dim(d * std::log(2.0), d), 8.0, 1e-12);
  EXPECT_NEAR(model_nats_to_image_nats(d * std::log(2.0), d), d * std::log(256.0), 1e-9);
}

TEST(Elbo, DequantizedElboIsConsistent) {
  torch::manual_seed(6);
  Autoencoder ae(tiny_autoencoder_options(32));
  ae->eval();
  const auto pixels = torch::randint(0, 256, {2, 1, 28, 28}, torch::kUInt8);
  at::Generator g1 = at::detail::createCPUGenerator(9), g2 = at::detail::createCPUGenerator(9);
  const auto r = negative_elbo_dequantized(*ae, pixels, 2, g1);
  // Same draws by hand: u, then the latent noise.
  const auto v = dequantize_pixels(pixels, g2);
  const auto nelbo = negative_elbo_nats(*ae, v, 2, g2);
  for (int64_t i = 0; i < 2; ++i) {
    EXPECT_NEAR(r.bits_per_dim[i].item<double>(),
                model_nats_to_bits_per_dim(nelbo[i].item<double>(), 784), 1e-9);
  }
}

}  // namespace
}  // namespace umbra
