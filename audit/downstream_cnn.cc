#include "audit/downstream_cnn.h"

#include <algorithm>
#include <cmath>

#include "core/check.h"

namespace umbra {
namespace {

namespace F = torch::nn::functional;

// Spatial size after conv 3 (valid) then max-pool 2 (floor).
int64_t conv_pool(int64_t n) { return (n - 2) / 2; }

void check_inputs(const torch::Tensor& images, const torch::Tensor& labels, const char* what) {
  UMBRA_CHECK(images.dim() == 4 && images.is_floating_point(), what,
              ": images must be float [N, C, H, W], got ", images.sizes());
  UMBRA_CHECK(labels.dim() == 1 && labels.size(0) == images.size(0), what, ": labels must be [",
              images.size(0), "], got ", labels.sizes());
}

}  // namespace

DownstreamCnnImpl::DownstreamCnnImpl(int64_t channels, int64_t height, int64_t width,
                                     int64_t num_classes) {
  const int64_t h = conv_pool(conv_pool(height)) - 2, w = conv_pool(conv_pool(width)) - 2;
  UMBRA_CHECK(channels >= 1 && num_classes >= 2 && h >= 1 && w >= 1,
              "DownstreamCnn: needs images of at least 16 x 16 and >= 2 classes, got ", channels,
              " x ", height, " x ", width, " with ", num_classes, " classes");
  conv1 = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, 32, 3)));
  conv2 = register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(32, 64, 3)));
  conv3 = register_module("conv3", torch::nn::Conv2d(torch::nn::Conv2dOptions(64, 128, 3)));
  fc1 = register_module("fc1", torch::nn::Linear(128 * h * w, kDownstreamFeatureDim));
  fc2 = register_module("fc2", torch::nn::Linear(kDownstreamFeatureDim, num_classes));
}

torch::Tensor DownstreamCnnImpl::features(const torch::Tensor& x) {
  const bool train = is_training();
  torch::Tensor h = F::dropout(torch::relu(F::max_pool2d(conv1(x), F::MaxPool2dFuncOptions(2))),
                               F::DropoutFuncOptions().p(0.5).training(train));
  h = F::dropout(torch::relu(F::max_pool2d(conv2(h), F::MaxPool2dFuncOptions(2))),
                 F::DropoutFuncOptions().p(0.5).training(train));
  h = torch::relu(conv3(h)).flatten(1);
  return torch::relu(fc1(h));
}

torch::Tensor DownstreamCnnImpl::forward(const torch::Tensor& x) {
  return fc2(F::dropout(features(x), F::DropoutFuncOptions().p(0.5).training(is_training())));
}

TrainedClassifier train_downstream_classifier(const torch::Tensor& images,
                                              const torch::Tensor& labels,
                                              const ClassifierOptions& options) {
  check_inputs(images, labels, "train_downstream_classifier");
  const int64_t n = images.size(0);
  UMBRA_CHECK(n >= 2, "train_downstream_classifier: need at least 2 images, got ", n);
  UMBRA_CHECK(options.epochs >= 1 && options.batch_size >= 1 && options.learning_rate > 0,
              "train_downstream_classifier: epochs, batch_size and learning_rate must be positive");
  UMBRA_CHECK(options.validation_fraction > 0 && options.validation_fraction < 1,
              "train_downstream_classifier: validation_fraction must be in (0, 1), got ",
              options.validation_fraction);
  const torch::Tensor y_all = labels.to(torch::kInt64);
  UMBRA_CHECK(y_all.min().item<int64_t>() >= 0 && y_all.max().item<int64_t>() < options.num_classes,
              "train_downstream_classifier: labels must lie in [0, ", options.num_classes, ")");

  torch::manual_seed(options.seed);
  const torch::Tensor perm = torch::randperm(n, torch::kInt64);
  const int64_t n_val = std::clamp<int64_t>(
      static_cast<int64_t>(std::llround(options.validation_fraction * static_cast<double>(n))), 1,
      n - 1);
  const torch::Tensor x_all = images.to(torch::kFloat32).contiguous();
  const torch::Tensor val_idx = perm.narrow(0, 0, n_val),
                      train_idx = perm.narrow(0, n_val, n - n_val);
  const torch::Tensor x_val = x_all.index_select(0, val_idx),
                      y_val = y_all.index_select(0, val_idx);
  const torch::Tensor x_train = x_all.index_select(0, train_idx);
  const torch::Tensor y_train = y_all.index_select(0, train_idx);

  TrainedClassifier out;
  out.train_count = n - n_val;
  out.validation_count = n_val;
  out.model = DownstreamCnn(images.size(1), images.size(2), images.size(3), options.num_classes);
  torch::optim::Adam optimizer(out.model->parameters(),
                               torch::optim::AdamOptions(options.learning_rate));
  std::vector<torch::Tensor> best;
  for (int64_t epoch = 1; epoch <= options.epochs; ++epoch) {
    out.model->train();
    const torch::Tensor order = torch::randperm(out.train_count, torch::kInt64);
    for (int64_t b0 = 0; b0 < out.train_count; b0 += options.batch_size) {
      const torch::Tensor idx =
          order.narrow(0, b0, std::min(options.batch_size, out.train_count - b0));
      optimizer.zero_grad();
      const torch::Tensor loss = F::cross_entropy(out.model->forward(x_train.index_select(0, idx)),
                                                  y_train.index_select(0, idx));
      loss.backward();
      optimizer.step();
    }
    const double acc = classifier_accuracy(out.model, x_val, y_val);
    out.validation_accuracy.push_back(acc);
    if (options.on_epoch) options.on_epoch(epoch, acc);
    if (best.empty() || acc > out.best_validation_accuracy) {
      out.best_validation_accuracy = acc;
      out.best_epoch = epoch;
      best.clear();
      for (const auto& p : out.model->parameters()) best.push_back(p.detach().clone());
    }
  }
  torch::NoGradGuard no_grad;
  auto params = out.model->parameters();
  for (size_t i = 0; i < params.size(); ++i) params[i].copy_(best[i]);
  out.model->eval();
  return out;
}

double classifier_accuracy(DownstreamCnn& model, const torch::Tensor& images,
                           const torch::Tensor& labels, int64_t batch_size) {
  check_inputs(images, labels, "classifier_accuracy");
  const int64_t n = images.size(0);
  if (n == 0) return 0.0;
  torch::NoGradGuard no_grad;
  const bool was_training = model->is_training();
  model->eval();
  int64_t correct = 0;
  for (int64_t b0 = 0; b0 < n; b0 += batch_size) {
    const int64_t bn = std::min(batch_size, n - b0);
    const torch::Tensor pred =
        model->forward(images.narrow(0, b0, bn).to(torch::kFloat32)).argmax(1);
    correct += pred.eq(labels.narrow(0, b0, bn).to(torch::kInt64)).sum().item<int64_t>();
  }
  model->train(was_training);
  return static_cast<double>(correct) / static_cast<double>(n);
}

torch::Tensor classifier_features(DownstreamCnn& model, const torch::Tensor& images,
                                  int64_t batch_size) {
  UMBRA_CHECK(images.dim() == 4 && images.is_floating_point(),
              "classifier_features: images must be float [N, C, H, W], got ", images.sizes());
  torch::NoGradGuard no_grad;
  const bool was_training = model->is_training();
  model->eval();
  std::vector<torch::Tensor> parts;
  for (int64_t b0 = 0; b0 < images.size(0); b0 += batch_size) {
    const int64_t bn = std::min(batch_size, images.size(0) - b0);
    parts.push_back(model->features(images.narrow(0, b0, bn).to(torch::kFloat32)));
  }
  model->train(was_training);
  if (parts.empty()) return torch::empty({0, kDownstreamFeatureDim}, torch::kFloat32);
  return torch::cat(parts, 0);
}

}  // namespace umbra
