// Golden test (issue 3 acceptance): the C++ autoencoder and UNet against the Python PyTorch
// reference (bench/reference/umbra_models.py) with the same weights, exchanged through
// safetensors. Forward outputs must agree to max abs diff <= 1e-4.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "core/safetensors.h"
#include "models/autoencoder.h"
#include "models/unet.h"
#include "tiny_models.h"

namespace umbra {
namespace {

constexpr double kTolerance = 1e-4;

// Options struct -> JSON object with the config key names (the reference reads the same keys).
struct JsonVisitor {
  nlohmann::json& out;
  template <class T, class... C>
  void operator()(const char* name, T& value, const char*, const C&...) {
    out[name] = value;
  }
};

template <class Options>
std::string options_json(Options o) {
  nlohmann::json j = nlohmann::json::object();
  JsonVisitor v{j};
  o.visit(v);
  return j.dump();
}

class Golden : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/umbra_golden_test_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::system(("rm -rf '" + dir_ + "'").c_str()); }

  // Saves weights + inputs, runs the reference, returns its outputs.
  TensorMap run_reference(torch::nn::Module& model, const Metadata& meta, const TensorMap& inputs) {
    TensorMap weights;
    for (const auto& p : model.named_parameters()) weights[p.key()] = p.value().detach();
    const std::string w = dir_ + "/weights.safetensors", i = dir_ + "/inputs.safetensors",
                      o = dir_ + "/outputs.safetensors";
    save_safetensors(w, weights, meta);
    save_safetensors(i, inputs);
    const std::string cmd = std::string(UMBRA_PYTHON) + " " + UMBRA_SOURCE_DIR +
                            "/bench/reference/golden.py " + w + " " + i + " " + o + " 2>&1";
    FILE* pipe = popen(cmd.c_str(), "r");
    EXPECT_NE(pipe, nullptr);
    std::string log;
    char buf[512];
    while (pipe && fgets(buf, sizeof buf, pipe)) log += buf;
    const int rc = pipe ? pclose(pipe) : -1;
    EXPECT_EQ(rc, 0) << cmd << "\n" << log;
    if (rc != 0) return {};
    return load_safetensors(o).tensors;
  }

  void check_autoencoder(int64_t sample_size, uint64_t seed);
  void check_unet(const PriorOptions& o, int64_t size, bool labeled, uint64_t seed);

  static double max_diff(const torch::Tensor& cpp, const torch::Tensor& py) {
    EXPECT_EQ(cpp.sizes(), py.sizes());
    return (cpp.detach().to(torch::kFloat64) - py.to(torch::kFloat64)).abs().max().item<double>();
  }

  std::string dir_;
};

void Golden::check_autoencoder(int64_t sample_size, uint64_t seed) {
  torch::manual_seed(seed);
  AutoencoderOptions o = testing::tiny_autoencoder_options(sample_size);
  o.beta = 0.7;
  o.logvar_init = -1.5;
  Autoencoder ae(o);
  testing::perturb_parameters(*ae, 0.05);
  ae->eval();
  const auto x = torch::rand({3, 1, 28, 28}) * 2 - 1;
  const auto shape = ae->latent_shape();
  const auto noise = torch::randn({3, shape[0], shape[1], shape[2]});
  const TensorMap out = run_reference(*ae, {{"model", "autoencoder"}, {"options", options_json(o)}},
                                      {{"x", x}, {"noise", noise}});
  ASSERT_FALSE(out.empty());
  torch::NoGradGuard no_grad;
  const Posterior q = ae->encode(x);
  const auto sampled = ae->forward(x, noise);
  const std::map<std::string, torch::Tensor> cpp{{"mean", q.mean},
                                                 {"logvar", q.logvar},
                                                 {"reconstruction", ae->decode(q.mean)},
                                                 {"sample_reconstruction", sampled.reconstruction},
                                                 {"loss", sampled.loss}};
  for (const auto& [name, value] : cpp) {
    ASSERT_TRUE(out.count(name)) << name;
    double tol = kTolerance;
    if (name == "loss") tol *= 1.0 + value.abs().max().item<double>();  // a sum over 784 pixels
    const double d = max_diff(value, out.at(name));
    EXPECT_LE(d, tol) << name;
    std::printf("golden autoencoder sample_size=%lld %s: max abs diff %.3g (max |value| %.3g)\n",
                static_cast<long long>(sample_size), name.c_str(), d,
                value.abs().max().item<double>());
  }
}

TEST_F(Golden, AutoencoderMatchesPythonReference28) { check_autoencoder(28, 1); }
TEST_F(Golden, AutoencoderMatchesPythonReference32) { check_autoencoder(32, 2); }

void Golden::check_unet(const PriorOptions& o, int64_t size, bool labeled, uint64_t seed) {
  torch::manual_seed(seed);
  UNet net(o, 4);
  testing::perturb_parameters(*net, 0.05);
  net->eval();
  const auto x = torch::randn({4, 4, size, size});
  const auto t = torch::tensor({0, 17, 500, 999}, torch::kLong);
  TensorMap inputs{{"x", x}, {"t", t}};
  torch::Tensor labels;
  if (labeled) {
    labels = torch::tensor({int64_t{0}, int64_t{3}, o.num_classes, int64_t{1}},
                           torch::kLong);  // includes the null class
    inputs["labels"] = labels;
  }
  const TensorMap out = run_reference(
      *net, {{"model", "unet"}, {"options", options_json(o)}, {"in_channels", "4"}}, inputs);
  ASSERT_FALSE(out.empty());
  torch::NoGradGuard no_grad;
  std::map<std::string, torch::Tensor> cpp{{"output", net->forward(x, t, labels)}};
  if (labeled) cpp["output_uncond"] = net->forward(x, t);
  for (const auto& [name, value] : cpp) {
    ASSERT_TRUE(out.count(name)) << name;
    const double d = max_diff(value, out.at(name));
    EXPECT_LE(d, kTolerance) << name;
    std::printf("golden unet %lldx%lld labeled=%d %s: max abs diff %.3g (max |value| %.3g)\n",
                static_cast<long long>(size), static_cast<long long>(size), labeled ? 1 : 0,
                name.c_str(), d, value.abs().max().item<double>());
  }
}

TEST_F(Golden, UNetMatchesPythonReferenceOn8x8Latents) {
  PriorOptions o = testing::tiny_prior_options(10);
  o.channel_mult = {1, 2, 2};
  o.attention_resolutions = {4};
  check_unet(o, 8, true, 3);
}

TEST_F(Golden, UNetMatchesPythonReferenceOn7x7Latents) {
  PriorOptions o = testing::tiny_prior_options(10);
  o.channel_mult = {1, 2, 2};
  o.num_res_blocks = 2;
  o.attention_resolutions = {2, 4};
  o.num_heads = 4;
  check_unet(o, 7, true, 4);
}

TEST_F(Golden, UnconditionalUNetMatchesPythonReference) {
  PriorOptions o = testing::tiny_prior_options(0);
  check_unet(o, 8, false, 5);
}

}  // namespace
}  // namespace umbra
