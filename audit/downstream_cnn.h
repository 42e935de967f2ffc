// The small CNN of the DPDM downstream-classifier protocol (Dockhorn et al. 2023, "Differentially
// Private Diffusion Models", train_downstream_classifiers.py) and its training loop (DESIGN.md §9).
//
// Architecture, for [B, C, H, W] inputs in [-1, 1]:
//   Conv(C, 32, 3) -> MaxPool 2 -> ReLU -> Dropout 0.5 -> Conv(32, 64, 3) -> MaxPool 2 -> ReLU ->
//   Dropout 0.5 -> Conv(64, 128, 3) -> ReLU -> Flatten (128 * 3 * 3 = 1152 for 28 x 28) ->
//   Linear(., 128) -> ReLU -> [features] -> Dropout 0.5 -> Linear(128, num_classes).
// Trained with Adam (lr 3e-4), cross-entropy, batch 128, for `epochs` epochs (50 by default); the
// epoch with the best accuracy on a held-out validation split of the training data is kept (its
// weights are restored at the end), as DPDM picks its epoch on a validation set of synthetic
// images.
//
// Two uses, neither of which is private or released:
//  - downstream accuracy: trained on generated images, tested on the real test set;
//  - the FID-proxy/precision-recall feature extractor: trained on the REAL training set. That
//    classifier has seen private data without any privacy protection; it is an evaluation tool that
//    must never leave the audit (only the scalar metrics computed with it are reported).
// These are plain torch::nn layers: they are not trained with DP and need no DP primitives.
//
// Randomness: train_downstream_classifier seeds LibTorch's global CPU generator with
// options.seed (initialisation, the validation split, shuffling and dropout all draw from it).
// Thread-safety: a model is not safe to train or evaluate from several threads at once.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <vector>

namespace umbra {

struct DownstreamCnnImpl : torch::nn::Module {
  DownstreamCnnImpl(int64_t channels = 1, int64_t height = 28, int64_t width = 28,
                    int64_t num_classes = 10);
  // [B, C, H, W] -> logits [B, num_classes].
  torch::Tensor forward(const torch::Tensor& x);
  // [B, C, H, W] -> penultimate activations [B, 128] (after the FC-128 ReLU, before dropout).
  torch::Tensor features(const torch::Tensor& x);

  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(DownstreamCnn);

constexpr int64_t kDownstreamFeatureDim = 128;

struct ClassifierOptions {
  int64_t epochs = 50;
  int64_t batch_size = 128;
  double learning_rate = 3e-4;
  double validation_fraction = 0.1;  // of the training images, held out to choose the epoch
  int64_t num_classes = 10;
  uint64_t seed = 0;
  // Called after each epoch with (epoch (1-based), validation accuracy), e.g. for progress lines.
  std::function<void(int64_t, double)> on_epoch;
};

struct TrainedClassifier {
  DownstreamCnn model{nullptr};  // in eval mode, best-epoch weights
  int64_t best_epoch = 0;        // 1-based
  double best_validation_accuracy = 0;
  std::vector<double> validation_accuracy;  // per epoch
  int64_t train_count = 0, validation_count = 0;
};

// images: [N, C, H, W] float in [-1, 1]; labels: [N] int64 in [0, num_classes). N >= 2.
TrainedClassifier train_downstream_classifier(const torch::Tensor& images,
                                              const torch::Tensor& labels,
                                              const ClassifierOptions& options = {});

// Fraction of correct argmax predictions (eval mode, batched).
double classifier_accuracy(DownstreamCnn& model, const torch::Tensor& images,
                           const torch::Tensor& labels, int64_t batch_size = 1000);

// Penultimate features [N, 128] float32 (eval mode, batched).
torch::Tensor classifier_features(DownstreamCnn& model, const torch::Tensor& images,
                                  int64_t batch_size = 1000);

}  // namespace umbra
