// The clipping engine on whole models (the autoencoder and the UNet of models/), against the
// slow reference; flat and per-layer clipping, clip counts, micro-batch accumulation, C = ∞ vs
// the non-private gradient, and the refusals.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <limits>
#include <string>

#include "core/check.h"
#include "models/autoencoder.h"
#include "models/diffusion_loss.h"
#include "models/noise_schedule.h"
#include "models/unet.h"
#include "privacy/dp_linear.h"
#include "privacy/dp_noise.h"
#include "tests/privacy/clipping_harness.h"

namespace umbra {
namespace {

using testing::expect_matches_reference;
using testing::relative_error;
using testing::RowLosses;

constexpr double kInf = std::numeric_limits<double>::infinity();

AutoencoderOptions small_autoencoder() {
  AutoencoderOptions o;
  o.in_channels = 1;
  o.image_size = 10;
  o.sample_size = 12;  // padded, so the crop is exercised too
  o.channels = 8;
  o.channel_mult = {1, 2};
  o.num_res_blocks = 1;
  o.z_channels = 2;
  o.norm_num_groups = 4;
  o.num_heads = 2;
  o.dropout = 0.0;
  return o;
}

PriorOptions small_prior() {
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

void perturb(torch::nn::Module& m, double scale) {
  torch::NoGradGuard no_grad;
  for (auto& p : m.parameters()) p.add_(torch::randn_like(p) * scale);
}

// Autoencoder rows: sample i's image repeated K times, each row with its own latent noise.
struct AutoencoderRows {
  AutoencoderRows(int64_t samples, int64_t k, const AutoencoderOptions& o) {
    x = (torch::rand({samples, o.in_channels, o.image_size, o.image_size}) * 2 - 1)
            .repeat_interleave(k, 0);
    const int64_t h = o.sample_size / 2;
    noise = torch::randn({samples * k, o.z_channels, h, h});
  }
  RowLosses losses(Autoencoder& model) const {
    return [&model, x = x, noise = noise](int64_t b, int64_t e) {
      return model->forward(x.slice(0, b, e), noise.slice(0, b, e)).loss;
    };
  }
  torch::Tensor x, noise;
};

// UNet rows: latent and label of sample i repeated K times, each row its own (t, noise).
struct UNetRows {
  UNetRows(int64_t samples, int64_t k, int64_t num_classes)
      : schedule(BetaSchedule::kLinear, 1000) {
    x0 = torch::randn({samples, 2, 8, 8}).repeat_interleave(k, 0);
    labels = torch::randint(0, num_classes + 1, {samples}, torch::kLong).repeat_interleave(k);
    t = torch::randint(0, 1000, {samples * k}, torch::kLong);
    noise = torch::randn_like(x0);
  }
  RowLosses losses(UNet& model) const {
    return [&model, this](int64_t b, int64_t e) {
      return diffusion_loss(*model, schedule, PredictionType::kEpsilon, x0.slice(0, b, e),
                            labels.slice(0, b, e), t.slice(0, b, e), noise.slice(0, b, e));
    };
  }
  NoiseSchedule schedule;
  torch::Tensor x0, labels, t, noise;
};

const NormPolicy::Force kForces[] = {NormPolicy::Force::kAuto, NormPolicy::Force::kGhost,
                                     NormPolicy::Force::kGhostPixel, NormPolicy::Force::kDirect};

TEST(Clipping, AutoencoderMatchesReference) {
  torch::manual_seed(100);
  Autoencoder model(small_autoencoder());
  perturb(*model, 0.05);
  for (int64_t k : {1, 3}) {
    const AutoencoderRows rows(5, k, model->options());
    for (auto force : kForces) {
      SCOPED_TRACE("K=" + std::to_string(k) + " force=" + std::to_string(static_cast<int>(force)));
      ClippingOptions options;
      options.policy.force = force;
      const auto plan = expect_matches_reference(*model, rows.losses(model), 5, k, options);
      EXPECT_EQ(plan.size(), PerSampleClipper(*model, options).layer_names().size());
    }
  }
}

TEST(Clipping, UNetMatchesReference) {
  torch::manual_seed(200);
  UNet model(small_prior(), 2);
  perturb(*model, 0.05);
  for (int64_t k : {1, 3}) {
    const UNetRows rows(5, k, model->num_classes());
    for (auto force : kForces) {
      SCOPED_TRACE("K=" + std::to_string(k) + " force=" + std::to_string(static_cast<int>(force)));
      ClippingOptions options;
      options.policy.force = force;
      expect_matches_reference(*model, rows.losses(model), 5, k, options);
    }
  }
}

TEST(Clipping, PerLayerDefaultAndGivenThresholds) {
  torch::manual_seed(300);
  Autoencoder model(small_autoencoder());
  perturb(*model, 0.05);
  const AutoencoderRows rows(5, 2, model->options());
  ClippingOptions options;
  options.per_layer = true;
  expect_matches_reference(*model, rows.losses(model), 5, 2, options);

  size_t l = 0;
  {
    PerSampleClipper probe(*model, options);
    l = probe.layer_names().size();
    EXPECT_NEAR(probe.sensitivity(), options.max_grad_norm, 1e-12);
    for (double c : probe.layer_thresholds()) {
      EXPECT_NEAR(c, options.max_grad_norm / std::sqrt(static_cast<double>(l)), 1e-12);
    }
  }
  // Given thresholds: alternate small and large so that some layers clip and others do not.
  ClippingOptions given = options;
  for (size_t i = 0; i < l; ++i) given.layer_max_grad_norms.push_back(i % 2 ? 1e-3 : 10.0);
  const ReferenceClipResult ref = testing::run_reference(*model, rows.losses(model), 5, 2, given);
  const auto run = testing::run_engine(*model, rows.losses(model), 5, 2, given);
  EXPECT_EQ(run.stats.num_clipped, ref.num_clipped);
  testing::expect_same_sums(*model, run.grads, ref.clipped_sum, 1e-4);
  double expected = 0;
  for (double c : given.layer_max_grad_norms) expected += c * c;
  EXPECT_NEAR(PerSampleClipper(*model, given).sensitivity(), std::sqrt(expected), 1e-12);
}

// A clipper owns the model's gradient callbacks while it lives: a second one on the same model
// is refused (it would silently take the callbacks from the first), and a constructor that
// throws leaves no callback behind that points at it.
TEST(Clipping, OneLiveClipperPerModel) {
  torch::manual_seed(310);
  Autoencoder model(small_autoencoder());
  const AutoencoderRows rows(3, 1, model->options());
  ClippingOptions options;
  {
    PerSampleClipper first(*model, options);
    try {
      PerSampleClipper second(*model, options);
      FAIL() << "expected an error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("already belongs to a live per-sample clipper"),
                std::string::npos)
          << e.what();
    }
  }
  ClippingOptions bad = options;
  bad.per_layer = true;
  bad.layer_max_grad_norms = {1.0};  // not one per layer
  EXPECT_THROW(PerSampleClipper(*model, bad), Error);
  // Nothing was left behind: a new clipper works and matches the reference.
  expect_matches_reference(*model, rows.losses(model), 3, 1, options);
}

// σ = 0 and C = ∞: the DP step's gradient is the ordinary gradient of the summed loss.
void expect_non_private_gradient(torch::nn::Module& model, const RowLosses& losses, int64_t samples,
                                 int64_t k) {
  testing::clear_grads(model);
  set_dp_mode(model, false);
  losses(0, samples * k).sum().backward();
  std::vector<torch::Tensor> expected;
  for (auto& p : model.parameters()) expected.push_back(p.grad().clone());
  ClippingOptions options;
  options.max_grad_norm = kInf;
  const auto run = testing::run_engine(model, losses, samples, k, options);
  EXPECT_EQ(run.stats.num_clipped, 0);
  std::vector<torch::Tensor> noisy = run.grads;
  EXPECT_TRUE(GaussianNoise(0.0, 1.0, false, 7).add(noisy, 0, 0));
  testing::expect_same_sums(model, noisy, expected, 1e-5);
}

TEST(Clipping, InfiniteNormReproducesNonPrivateGradient) {
  torch::manual_seed(400);
  Autoencoder ae(small_autoencoder());
  perturb(*ae, 0.05);
  const AutoencoderRows ae_rows(6, 2, ae->options());
  expect_non_private_gradient(*ae, ae_rows.losses(ae), 6, 2);

  UNet unet(small_prior(), 2);
  perturb(*unet, 0.05);
  const UNetRows unet_rows(6, 3, unet->num_classes());
  expect_non_private_gradient(*unet, unet_rows.losses(unet), 6, 3);
}

TEST(Clipping, MicroBatchesAccumulate) {
  torch::manual_seed(500);
  UNet model(small_prior(), 2);
  perturb(*model, 0.05);
  const int64_t k = 2;
  const UNetRows rows(6, k, model->num_classes());
  const RowLosses all = rows.losses(model);
  ClippingOptions options;
  options.noise_multiplicity = k;
  options.max_grad_norm = 0.5;
  const ReferenceClipResult ref = testing::run_reference(*model, all, 6, k, options);

  testing::clear_grads(*model);
  set_dp_mode(*model, true);
  PerSampleClipper clipper(*model, options);
  int64_t clipped = 0;
  for (int64_t first : {0, 4}) {  // micro-batches of 4 and 2 samples
    const int64_t n = first == 0 ? 4 : 2;
    all(first * k, (first + n) * k).sum().backward();
    clipped += clipper.clip_and_accumulate(n).num_clipped;
  }
  EXPECT_EQ(clipper.clip_and_accumulate(0).num_samples, 0);  // an empty micro-batch changes nothing
  set_dp_mode(*model, false);
  EXPECT_EQ(clipped, ref.num_clipped);
  std::vector<torch::Tensor> sums;
  for (const auto& p : model->parameters()) sums.push_back(p.grad());
  testing::expect_same_sums(*model, sums, ref.clipped_sum, 1e-4);
}

TEST(Clipping, CountsClippedSamples) {
  torch::manual_seed(600);
  Autoencoder model(small_autoencoder());
  const AutoencoderRows rows(6, 1, model->options());
  ClippingOptions huge;
  huge.max_grad_norm = 1e12;
  EXPECT_EQ(testing::run_engine(*model, rows.losses(model), 6, 1, huge).stats.num_clipped, 0);
  ClippingOptions tiny;
  tiny.max_grad_norm = 1e-9;
  const auto run = testing::run_engine(*model, rows.losses(model), 6, 1, tiny);
  EXPECT_EQ(run.stats.num_clipped, 6);
  // Every clipped g_i has norm C: the sum has norm at most B·C.
  double total = 0;
  for (const auto& g : run.grads) total += g.to(torch::kDouble).pow(2).sum().item<double>();
  EXPECT_LE(std::sqrt(total), 6 * 1e-9 * (1 + 1e-5));
}

struct WithPlainLinear : torch::nn::Module {
  WithPlainLinear() {
    ok = register_module("ok", DPLinear(3, 3));
    plain = register_module("plain", torch::nn::Linear(3, 3));
  }
  DPLinear ok{nullptr};
  torch::nn::Linear plain{nullptr};
};

struct WithBatchNorm : torch::nn::Module {
  WithBatchNorm() {
    ok = register_module("ok", DPLinear(3, 3));
    bn = register_module("bn",
                         torch::nn::BatchNorm1d(torch::nn::BatchNorm1dOptions(3).affine(false)));
  }
  DPLinear ok{nullptr};
  torch::nn::BatchNorm1d bn{nullptr};
};

std::string construction_error(torch::nn::Module& model, const ClippingOptions& options = {}) {
  try {
    PerSampleClipper clipper(model, options);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Clipping, RefusesLayersWithoutPerSampleRule) {
  WithPlainLinear plain;
  EXPECT_NE(construction_error(plain).find("'plain'"), std::string::npos);
  WithBatchNorm bn;
  const std::string why = construction_error(bn);
  EXPECT_NE(why.find("'bn'"), std::string::npos) << why;
  EXPECT_NE(why.find("BatchNorm"), std::string::npos) << why;
}

TEST(Clipping, RefusesBadOptions) {
  DPLinear layer(2, 2);
  ClippingOptions zero;
  zero.max_grad_norm = 0.0;
  EXPECT_NE(construction_error(*layer, zero).find("max_grad_norm"), std::string::npos);
  ClippingOptions wrong_count;
  wrong_count.per_layer = true;
  wrong_count.layer_max_grad_norms = {1.0, 2.0};
  EXPECT_NE(construction_error(*layer, wrong_count).find("thresholds"), std::string::npos);
}

}  // namespace
}  // namespace umbra
