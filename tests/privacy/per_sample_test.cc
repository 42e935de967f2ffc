// Per-sample norms and clipped sums of each DP primitive alone, every norm method, K = 1 and
// K = 3, against the slow reference (one backward pass per sample).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "core/check.h"
#include "privacy/dp_conv2d.h"
#include "privacy/dp_embedding.h"
#include "privacy/dp_group_norm.h"
#include "privacy/dp_linear.h"
#include "privacy/dp_parameter.h"
#include "privacy/per_sample_grad.h"
#include "tests/privacy/clipping_harness.h"

namespace umbra {
namespace {

using testing::expect_matches_reference;
using testing::RowLosses;

constexpr int64_t kSamples = 6;

// A model holding one primitive under the name "layer".
template <class Layer>
struct Single : torch::nn::Module {
  explicit Single(Layer l) : layer(register_module("layer", l)) {}
  Layer layer;
};

const std::vector<NormPolicy::Force> kForces = {
    NormPolicy::Force::kAuto, NormPolicy::Force::kGhost, NormPolicy::Force::kGhostPixel,
    NormPolicy::Force::kDirect, NormPolicy::Force::kDirectKeep};

std::string force_name(NormPolicy::Force f) {
  switch (f) {
    case NormPolicy::Force::kAuto:
      return "auto";
    case NormPolicy::Force::kGhost:
      return "ghost";
    case NormPolicy::Force::kGhostPixel:
      return "ghost-pixel";
    case NormPolicy::Force::kDirect:
      return "direct";
    case NormPolicy::Force::kDirectKeep:
      return "direct+keep";
  }
  return "?";
}

// Runs the comparison for K in {1, 3} and every forced method; `make_losses(k)` builds the rows.
template <class Model>
void check_all(Model& model, const std::function<RowLosses(int64_t)>& make_losses,
               bool matrix_layer, int64_t chunk_bytes = int64_t{32} << 20) {
  for (int64_t k : {1, 3}) {
    const RowLosses losses = make_losses(k);
    for (NormPolicy::Force force : kForces) {
      // Conv2d's direct methods at K = 1: the grouped call (default) and one call per sample.
      for (bool grouped : {true, false}) {
        SCOPED_TRACE("K=" + std::to_string(k) + " method=" + force_name(force) +
                     (grouped ? " grouped" : " per-sample calls"));
        ClippingOptions options;
        options.policy.force = force;
        options.policy.chunk_bytes = chunk_bytes;
        options.policy.grouped_conv = grouped;
        const auto plan = expect_matches_reference(model, losses, kSamples, k, options);
        ASSERT_EQ(plan.size(), 1u);
        if (matrix_layer && force != NormPolicy::Force::kAuto) {
          // kGhostPixel exists for Conv2d only; the other matrix layers fall back to kGhost.
          const bool pixel_fallback =
              force == NormPolicy::Force::kGhostPixel && plan[0].kind != "Conv2d";
          EXPECT_STREQ(to_string(plan[0].method),
                       pixel_fallback ? "ghost" : force_name(force).c_str());
        }
      }
    }
  }
}

torch::Tensor mse_rows(const torch::Tensor& y, const torch::Tensor& target) {
  return 0.5 * (y - target).pow(2).flatten(1).sum(1);
}

TEST(PerSampleGrad, Linear2d) {
  torch::manual_seed(1);
  Single<DPLinear> model(DPLinear(7, 5));
  check_all(
      model,
      [&](int64_t k) -> RowLosses {
        const torch::Tensor x = torch::randn({kSamples * k, 7}),
                            t = torch::randn({kSamples * k, 5});
        return [&model, x, t](int64_t b, int64_t e) {
          return mse_rows(model.layer(x.slice(0, b, e)), t.slice(0, b, e));
        };
      },
      true);
}

TEST(PerSampleGrad, Linear3dTokens) {
  torch::manual_seed(2);
  Single<DPLinear> model(DPLinear(6, 4));
  check_all(
      model,
      [&](int64_t k) -> RowLosses {
        const torch::Tensor x = torch::randn({kSamples * k, 5, 6});
        const torch::Tensor t = torch::randn({kSamples * k, 5, 4});
        return [&model, x, t](int64_t b, int64_t e) {
          return mse_rows(torch::tanh(model.layer(x.slice(0, b, e))), t.slice(0, b, e));
        };
      },
      true);
}

TEST(PerSampleGrad, Linear3dTransposedInputNoBias) {
  // A non-contiguous activation (as the attention block's tokens) and no bias.
  torch::manual_seed(3);
  Single<DPLinear> model(DPLinear(DPLinearOptions(6, 3).bias(false)));
  check_all(
      model,
      [&](int64_t k) -> RowLosses {
        const torch::Tensor x = torch::randn({kSamples * k, 6, 4});
        const torch::Tensor t = torch::randn({kSamples * k, 4, 3});
        return [&model, x, t](int64_t b, int64_t e) {
          return mse_rows(model.layer(x.slice(0, b, e).transpose(1, 2)), t.slice(0, b, e));
        };
      },
      true);
}

struct ConvCase {
  int64_t in, out, kernel, stride, padding, h, w;
};

TEST(PerSampleGrad, Conv2dStridesPaddingsKernels) {
  const std::vector<ConvCase> cases = {
      {3, 4, 3, 1, 1, 8, 8}, {2, 5, 3, 2, 0, 9, 9}, {3, 2, 1, 1, 0, 6, 5},  {2, 3, 5, 2, 2, 11, 7},
      {4, 4, 3, 2, 1, 8, 8}, {1, 3, 2, 1, 0, 5, 5}, {2, 2, 3, 3, 1, 10, 10}};
  int seed = 10;
  for (const ConvCase& c : cases) {
    SCOPED_TRACE("conv in=" + std::to_string(c.in) + " out=" + std::to_string(c.out) +
                 " k=" + std::to_string(c.kernel) + " stride=" + std::to_string(c.stride) +
                 " pad=" + std::to_string(c.padding) + " " + std::to_string(c.h) + "x" +
                 std::to_string(c.w));
    torch::manual_seed(seed++);
    Single<DPConv2d> model(
        DPConv2d(DPConv2dOptions(c.in, c.out, c.kernel).stride(c.stride).padding(c.padding)));
    check_all(
        model,
        [&](int64_t k) -> RowLosses {
          const torch::Tensor x = torch::randn({kSamples * k, c.in, c.h, c.w});
          const torch::Tensor t = torch::randn_like(model.layer(x));
          return [&model, x, t](int64_t b, int64_t e) {
            return mse_rows(model.layer(x.slice(0, b, e)), t.slice(0, b, e));
          };
        },
        true, /*chunk_bytes=*/4096);  // tiny chunks: several samples per layer pass through
  }
}

TEST(PerSampleGrad, Conv2dNoBias) {
  torch::manual_seed(20);
  Single<DPConv2d> model(DPConv2d(DPConv2dOptions(3, 4, 3).padding(1).bias(false)));
  check_all(
      model,
      [&](int64_t k) -> RowLosses {
        const torch::Tensor x = torch::randn({kSamples * k, 3, 6, 6});
        const torch::Tensor t = torch::randn({kSamples * k, 4, 6, 6});
        return [&model, x, t](int64_t b, int64_t e) {
          return mse_rows(model.layer(x.slice(0, b, e)), t.slice(0, b, e));
        };
      },
      true);
}

TEST(PerSampleGrad, GroupNorm) {
  torch::manual_seed(30);
  Single<DPGroupNorm> model(DPGroupNorm(2, 6));
  {
    torch::NoGradGuard no_grad;
    model.layer->weight.normal_(1.0, 0.5);
    model.layer->bias.normal_(0.0, 0.5);
  }
  check_all(
      model,
      [&](int64_t k) -> RowLosses {
        const torch::Tensor x = torch::randn({kSamples * k, 6, 5, 4}) * 3 + 1;
        const torch::Tensor t = torch::randn({kSamples * k, 6, 5, 4});
        return [&model, x, t](int64_t b, int64_t e) {
          return mse_rows(torch::silu(model.layer(x.slice(0, b, e))), t.slice(0, b, e));
        };
      },
      false, /*chunk_bytes=*/256);
}

TEST(PerSampleGrad, EmbeddingWithRepeatedIndices) {
  torch::manual_seed(40);
  Single<DPEmbedding> model(DPEmbedding(10, 4));
  check_all(
      model,
      [&](int64_t k) -> RowLosses {
        // 7 lookups per row from 10 entries: repeats within a row and across a sample's K rows.
        const torch::Tensor idx = torch::randint(0, 10, {kSamples * k, 7}, torch::kLong);
        const torch::Tensor t = torch::randn({kSamples * k, 7, 4});
        return [&model, idx, t](int64_t b, int64_t e) {
          return mse_rows(torch::tanh(model.layer(idx.slice(0, b, e))), t.slice(0, b, e));
        };
      },
      true);
}

TEST(PerSampleGrad, EmbeddingOneLabelPerRow) {
  // The class embedding of the prior: [B·K] labels, the K rows of a sample share the label.
  torch::manual_seed(41);
  Single<DPEmbedding> model(DPEmbedding(11, 8));
  check_all(
      model,
      [&](int64_t k) -> RowLosses {
        const torch::Tensor labels =
            torch::randint(0, 11, {kSamples}, torch::kLong).repeat_interleave(k);
        const torch::Tensor t = torch::randn({kSamples * k, 8});
        return [&model, labels, t](int64_t b, int64_t e) {
          return mse_rows(model.layer(labels.slice(0, b, e)), t.slice(0, b, e));
        };
      },
      true);
}

TEST(PerSampleGrad, Parameter) {
  torch::manual_seed(50);
  Single<DPParameter> model(DPParameter(DPParameterOptions({3, 2}).init(0.3)));
  check_all(
      model,
      [&](int64_t k) -> RowLosses {
        const torch::Tensor x = torch::randn({kSamples * k, 3, 2});
        const torch::Tensor t = torch::randn({kSamples * k, 3, 2});
        return [&model, x, t](int64_t b, int64_t e) {
          return mse_rows(model.layer(e - b) * x.slice(0, b, e), t.slice(0, b, e));
        };
      },
      false);
}

TEST(PerSampleGrad, FrozenWeightKeepsBiasOnly) {
  torch::manual_seed(60);
  Single<DPLinear> model(DPLinear(5, 3));
  model.layer->weight.set_requires_grad(false);
  const torch::Tensor x = torch::randn({kSamples, 5}), t = torch::randn({kSamples, 3});
  const RowLosses losses = [&](int64_t b, int64_t e) {
    return mse_rows(model.layer(x.slice(0, b, e)), t.slice(0, b, e));
  };
  expect_matches_reference(model, losses, kSamples, 1, ClippingOptions{});
  const auto run = testing::run_engine(model, losses, kSamples, 1, ClippingOptions{});
  EXPECT_EQ(run.grads[0].abs().sum().item<double>(), 0.0);  // weight untouched
}

TEST(PerSampleGrad, ChoiceFollowsFlopsAndMemory) {
  NormPolicy auto_policy;
  // 32x32 conv 64->64: kept g_i (36.9k floats) is smaller than the capture (131k): keep.
  EXPECT_EQ(choose_norm_method(1024, 576, 64, 131072, auto_policy), NormMethod::kDirectKeep);
  // 8x8 conv 128->128: R²(d+p) = 5.2M < R·d·p = 9.4M: ghost.
  EXPECT_EQ(choose_norm_method(64, 1152, 128, 16384, auto_policy), NormMethod::kGhost);
  // 16x16 conv 128->128: R·d·p = 37.7M < R²(d+p) = 84M, and g_i (147k) > capture (65k): direct.
  EXPECT_EQ(choose_norm_method(256, 1152, 128, 65536, auto_policy), NormMethod::kDirect);
  // Tiny weights are always kept.
  EXPECT_EQ(choose_norm_method(4, 32, 16, 10, auto_policy), NormMethod::kDirectKeep);

  // Conv2d: the pixel Gram wins where it is cheaper than both (UNet 8x8 level, 64->64, 3x3:
  // 2·64²·64 + 2·64²·64 + 10·64² = 1.09M against direct 4.72M and ghost 5.24M) ...
  EXPECT_EQ(choose_conv_norm_method(64, 576, 64, 8192, 1.09e6, auto_policy),
            NormMethod::kGhostPixel);
  // ... and not where another is cheaper, or where the gradient is kept anyway.
  EXPECT_EQ(choose_conv_norm_method(64, 576, 64, 8192, 6e6, auto_policy), NormMethod::kDirect);
  EXPECT_EQ(choose_conv_norm_method(1024, 576, 64, 131072, 1e3, auto_policy),
            NormMethod::kDirectKeep);
  NormPolicy forced;
  forced.force = NormPolicy::Force::kGhostPixel;
  EXPECT_EQ(choose_conv_norm_method(1024, 576, 64, 131072, 1e12, forced), NormMethod::kGhostPixel);
  EXPECT_EQ(choose_norm_method(64, 576, 64, 8192, forced), NormMethod::kGhost);
}

TEST(PerSampleGrad, RefusesCaptureOfWrongBatch) {
  torch::manual_seed(70);
  Single<DPLinear> model(DPLinear(4, 2));
  set_dp_mode(model, true);
  {
    PerSampleClipper clipper(model, ClippingOptions{});
    model.layer(torch::randn({5, 4})).sum().backward();
    try {
      clipper.clip_and_accumulate(3);
      FAIL() << "expected an error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("'layer'"), std::string::npos) << e.what();
    }
    // The clipper is usable again for the next micro-batch.
    model.layer(torch::randn({3, 4})).sum().backward();
    EXPECT_EQ(clipper.clip_and_accumulate(3).num_samples, 3);
  }
  // A clipper constructed after the backward pass finds nothing to clip, and says so.
  model.layer(torch::randn({3, 4})).sum().backward();
  PerSampleClipper late(model, ClippingOptions{});
  EXPECT_THROW(late.clip_and_accumulate(3), Error);
}

}  // namespace
}  // namespace umbra
