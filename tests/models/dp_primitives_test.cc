// DP-aware primitives (privacy/dp_*.h): outside DP mode each equals the LibTorch layer it
// replaces; in DP mode the captured (activation, grad_output) pairs reproduce autograd's
// parameter gradients through the per-layer formulas stated in the headers, for single layers and
// for the whole autoencoder and UNet; check_dp_compatible refuses non-DP layers by name.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "core/check.h"
#include "models/autoencoder.h"
#include "models/unet.h"
#include "privacy/dp_conv2d.h"
#include "privacy/dp_embedding.h"
#include "privacy/dp_group_norm.h"
#include "privacy/dp_linear.h"
#include "privacy/dp_module.h"
#include "privacy/dp_parameter.h"
#include "tiny_models.h"

namespace umbra {
namespace {

namespace F = torch::nn::functional;
using testing::perturb_parameters;

void expect_close(const torch::Tensor& a, const torch::Tensor& b, double tol,
                  const std::string& what) {
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  EXPECT_LE((a - b).abs().max().item<double>(), tol) << what;
}

TEST(DPPrimitives, MatchLibTorchLayersOutsideDPMode) {
  torch::manual_seed(1);
  {
    DPLinear dp(6, 5);
    torch::nn::Linear ref(6, 5);
    ref->weight.set_data(dp->weight.clone());
    ref->bias.set_data(dp->bias.clone());
    const auto x = torch::randn({3, 4, 6});
    EXPECT_TRUE(torch::allclose(dp(x), ref(x), 1e-6, 1e-6));
  }
  for (int64_t stride : {1, 2}) {
    for (int64_t padding : {0, 1, 2}) {
      DPConv2d dp(DPConv2dOptions(3, 4, 3).stride(stride).padding(padding));
      torch::nn::Conv2d ref(torch::nn::Conv2dOptions(3, 4, 3).stride(stride).padding(padding));
      ref->weight.set_data(dp->weight.clone());
      ref->bias.set_data(dp->bias.clone());
      const auto x = torch::randn({2, 3, 9, 8});
      EXPECT_TRUE(torch::allclose(dp(x), ref(x), 1e-6, 1e-6)) << stride << " " << padding;
    }
  }
  {
    DPGroupNorm dp(DPGroupNormOptions(2, 6).eps(1e-6));
    perturb_parameters(*dp, 0.5);
    torch::nn::GroupNorm ref(torch::nn::GroupNormOptions(2, 6).eps(1e-6));
    ref->weight.set_data(dp->weight.clone());
    ref->bias.set_data(dp->bias.clone());
    const auto x = torch::randn({3, 6, 5, 5});
    EXPECT_TRUE(torch::allclose(dp(x), ref(x), 1e-6, 1e-6));
  }
  {
    DPEmbedding dp(7, 4);
    torch::nn::Embedding ref(7, 4);
    ref->weight.set_data(dp->weight.clone());
    const auto idx = torch::tensor({{0, 6, 3}, {2, 2, 1}}, torch::kLong);
    EXPECT_TRUE(torch::equal(dp(idx), ref(idx)));
    EXPECT_THROW(dp(torch::tensor({7}, torch::kLong)), Error);
  }
}

// Σ over samples of the per-sample gradients, from one primitive's capture (the formulas of the
// primitive headers). Keys are the primitive's own parameter names.
std::map<std::string, torch::Tensor> gradients_from_capture(DPModule& m) {
  std::map<std::string, torch::Tensor> g;
  const torch::Tensor& a = m.activation();
  const torch::Tensor& b = m.grad_output();
  EXPECT_TRUE(b.defined()) << m.dp_kind() << ": no grad_output captured";
  if (auto* lin = dynamic_cast<DPLinearImpl*>(&m)) {
    const auto a2 = a.reshape({a.size(0), -1, a.size(-1)});
    const auto b2 = b.reshape({b.size(0), -1, b.size(-1)});
    g["weight"] = torch::einsum("bno,bni->oi", {b2, a2});
    if (lin->bias.defined()) g["bias"] = b2.sum(std::vector<int64_t>{0, 1});
  } else if (auto* conv = dynamic_cast<DPConv2dImpl*>(&m)) {
    const auto& o = conv->options;
    const auto cols = F::unfold(a, F::UnfoldFuncOptions(o.kernel_size())
                                       .padding(o.padding())
                                       .stride(o.stride()));  // [B, Cin·k², L]
    const auto b2 = b.reshape({b.size(0), b.size(1), -1});    // [B, Cout, L]
    g["weight"] = torch::bmm(b2, cols.transpose(1, 2)).sum(0).view_as(conv->weight);
    if (conv->bias.defined()) g["bias"] = b2.sum(std::vector<int64_t>{0, 2});
  } else if (dynamic_cast<DPGroupNormImpl*>(&m) != nullptr) {
    g["weight"] = (b * a).transpose(0, 1).reshape({b.size(1), -1}).sum(1);
    g["bias"] = b.transpose(0, 1).reshape({b.size(1), -1}).sum(1);
  } else if (auto* emb = dynamic_cast<DPEmbeddingImpl*>(&m)) {
    g["weight"] =
        torch::zeros_like(emb->weight).index_add_(0, a.flatten(), b.reshape({-1, b.size(-1)}));
  } else if (dynamic_cast<DPParameterImpl*>(&m) != nullptr) {
    g["value"] = b.sum(0);
  } else {
    ADD_FAILURE() << "unknown primitive " << m.dp_kind();
  }
  return g;
}

// Runs `loss_fn` twice: normally (autograd's gradients) and in DP mode (no parameter gradients,
// captures instead), and compares every parameter's gradient.
void check_capture_reproduces_gradients(torch::nn::Module& model,
                                        const std::function<torch::Tensor()>& loss_fn, double tol) {
  model.zero_grad();
  loss_fn().backward();
  std::map<std::string, torch::Tensor> expected;
  for (const auto& p : model.named_parameters()) expected[p.key()] = p.value().grad().clone();
  model.zero_grad();

  set_dp_mode(model, true);
  loss_fn().backward();
  for (const auto& p : model.named_parameters()) {
    EXPECT_FALSE(p.value().grad().defined() && p.value().grad().abs().sum().item<double>() > 0)
        << p.key() << " got a gradient in DP mode";
  }
  size_t checked = 0;
  for (auto& [path, prim] : dp_primitives(model)) {
    for (auto& [name, grad] : gradients_from_capture(*prim)) {
      const std::string key = path.empty() ? name : path + "." + name;
      ASSERT_TRUE(expected.count(key)) << key;
      expect_close(grad, expected[key], tol * (1.0 + expected[key].abs().max().item<double>()),
                   key);
      ++checked;
    }
  }
  EXPECT_EQ(checked, expected.size());
  set_dp_mode(model, false);
  for (auto& [path, prim] : dp_primitives(model)) EXPECT_FALSE(prim->grad_output().defined());
}

TEST(DPPrimitives, CaptureReproducesGradientsPerLayer) {
  torch::manual_seed(2);
  struct Net : torch::nn::Module {
    DPLinear lin = register_module("lin", DPLinear(5, 6));
    DPConv2d conv =
        register_module("conv", DPConv2d(DPConv2dOptions(3, 4, 3).stride(2).padding(1)));
    DPGroupNorm norm = register_module("norm", DPGroupNorm(2, 4));
    DPEmbedding emb = register_module("emb", DPEmbedding(5, 4));
    DPParameter scale = register_module("scale", DPParameter(DPParameterOptions({1}).init(0.3)));
  };
  auto net = std::make_shared<Net>();
  perturb_parameters(*net, 0.3);
  const auto x = torch::randn({3, 3, 7, 7});
  const auto tokens = torch::randn({3, 2, 5});
  const auto idx = torch::tensor({1, 4, 1}, torch::kLong);
  const auto r = torch::randn({3, 4, 4, 4});
  auto loss = [&] {
    auto h = net->norm(net->conv(x)) + net->emb(idx).view({3, 4, 1, 1});
    auto s = net->lin(tokens).sum(std::vector<int64_t>{1, 2}).view({3, 1, 1, 1});
    return (h.pow(2) * r * s * net->scale(3).view({3, 1, 1, 1})).sum();
  };
  check_capture_reproduces_gradients(*net, loss, 1e-4);
}

TEST(DPPrimitives, CaptureReproducesGradientsOfWholeModels) {
  torch::manual_seed(3);
  Autoencoder ae(testing::tiny_autoencoder_options(32));
  perturb_parameters(*ae, 0.05);
  const auto x = torch::rand({2, 1, 28, 28}) * 2 - 1;
  const auto noise = torch::randn({2, 4, 8, 8});
  check_capture_reproduces_gradients(
      *ae, [&] { return ae->forward(x, noise).loss.sum(); }, 1e-4);

  UNet unet(testing::tiny_prior_options(3), 4);
  perturb_parameters(*unet, 0.05);
  const auto z = torch::randn({3, 4, 7, 7});
  const auto t = torch::tensor({3, 500, 999}, torch::kLong);
  const auto y = torch::tensor({0, 3, 2}, torch::kLong);
  const auto target = torch::randn({3, 4, 7, 7});
  check_capture_reproduces_gradients(
      *unet, [&] { return (unet->forward(z, t, y) - target).pow(2).sum(); }, 1e-4);
}

TEST(DPPrimitives, NothingCapturedWithoutGrad) {
  DPLinear lin(3, 2);
  lin->set_dp_mode(true);
  torch::NoGradGuard no_grad;
  lin(torch::randn({2, 3}));
  EXPECT_FALSE(lin->activation().defined());
}

TEST(CheckDPCompatible, AcceptsUmbraModels) {
  Autoencoder ae(testing::tiny_autoencoder_options(28));
  UNet unet(testing::tiny_prior_options(10), 4);
  EXPECT_NO_THROW(check_dp_compatible(*ae));
  EXPECT_NO_THROW(check_dp_compatible(*unet));
  EXPECT_GT(dp_primitives(*unet).size(), 20u);
}

std::string refusal_message(const torch::nn::Module& m) {
  try {
    check_dp_compatible(m);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(CheckDPCompatible, RefusesBatchNormByName) {
  struct Bad : torch::nn::Module {
    DPConv2d conv = register_module("conv", DPConv2d(DPConv2dOptions(1, 4, 3)));
    torch::nn::Sequential body = register_module(
        "body", torch::nn::Sequential(torch::nn::BatchNorm2d(4), torch::nn::SiLU()));
  };
  Bad bad;
  const std::string msg = refusal_message(bad);
  EXPECT_NE(msg.find("'body.0'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("BatchNorm2d"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("'conv'"), std::string::npos) << msg;

  // Even without affine parameters BatchNorm mixes samples.
  struct BadNoAffine : torch::nn::Module {
    torch::nn::BatchNorm2d bn = register_module(
        "bn", torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(4).affine(false)));
  };
  BadNoAffine bad2;
  EXPECT_NE(refusal_message(bad2).find("'bn'"), std::string::npos);
}

TEST(CheckDPCompatible, RefusesPlainLibTorchLayersAndRootParameters) {
  struct Bad : torch::nn::Module {
    torch::nn::Linear head = register_module("head", torch::nn::Linear(3, 2));
    torch::Tensor scale = register_parameter("scale", torch::ones({1}));
  };
  Bad bad;
  const std::string msg = refusal_message(bad);
  EXPECT_NE(msg.find("'head' (torch::nn::LinearImpl)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'<root>'"), std::string::npos) << msg;
}

}  // namespace
}  // namespace umbra
