// Sample quality metrics of the audit (DESIGN.md §9).
//
// - FID-proxy: the Fréchet distance between Gaussians fitted to features of real test images and of
//   generated images, FD = ||mu_r - mu_g||^2 + tr(S_r + S_g - 2 (S_r S_g)^(1/2)). The features are
//   the 128-d penultimate activations of the DPDM CNN (audit/downstream_cnn.h) trained on the REAL
//   training set. This is NOT Inception-FID (no Inception-v3, 128-d not 2048-d, a small
//   Fashion-MNIST classifier): its values are comparable only with other FID-proxy values computed
//   with the same feature classifier (same data, epochs and seed), never with published FIDs. The
//   feature classifier saw private data without protection and is never released.
//   tr (S_r S_g)^(1/2) = tr (A S_g A)^(1/2) with A = S_r^(1/2): both square roots come from
//   symmetric eigendecompositions (float64, negative round-off eigenvalues clamped to 0), so no
//   non-symmetric matrix square root is needed.
// - Precision / recall (Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric for
//   Assessing Generative Models"), k = 3, in the same feature space: a sample's ball has the radius
//   of its k-th nearest neighbour within its own set; precision = fraction of generated samples
//   inside some real ball, recall = fraction of real samples inside some generated ball.
// - Downstream accuracy: the DPDM CNN trained on generated labelled images (epoch chosen on a
//   validation split of them), accuracy on the real test set; comparable with the published
//   Fashion-MNIST table (DPDM eps = 10: 86.2 %, eps = 1: 79.4 %; DP-FETA eps = 10: 87.3 %) when run
//   with the full protocol (60k generated images, 50 epochs).
//
// Thread-safety: pure functions apart from the global LibTorch generator (see downstream_cnn.h).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <nlohmann/json.hpp>

#include "audit/downstream_cnn.h"

namespace umbra {

struct FeatureGaussian {
  torch::Tensor mean;  // [d] float64
  torch::Tensor cov;   // [d, d] float64, unbiased (divided by N - 1, as numpy.cov)
  int64_t count = 0;
};

// features: [N, d], N >= 2.
FeatureGaussian fit_gaussian(const torch::Tensor& features);
double frechet_distance(const FeatureGaussian& a, const FeatureGaussian& b);

struct PrecisionRecall {
  double precision = 0;
  double recall = 0;
};

// real: [N, d], generated: [M, d]; both sets need more than k rows.
PrecisionRecall knn_precision_recall(const torch::Tensor& real, const torch::Tensor& generated,
                                     int64_t k = 3, int64_t block = 1024);

struct FeatureMetrics {
  double fid_proxy = 0;
  PrecisionRecall precision_recall;
  int64_t real_count = 0, generated_count = 0, k = 3;
  nlohmann::json to_json() const;  // {"fid_proxy", "precision", "recall", "k", counts}
};

// FID-proxy and precision/recall of `generated` against `real` (usually the real test set), both
// [N, C, H, W] in [-1, 1], through `feature_model`'s penultimate layer.
FeatureMetrics feature_metrics(DownstreamCnn& feature_model, const torch::Tensor& real,
                               const torch::Tensor& generated, int64_t k = 3);

struct DownstreamResult {
  double test_accuracy = 0;
  int64_t best_epoch = 0;
  double best_validation_accuracy = 0;
  int64_t train_count = 0, validation_count = 0, test_count = 0, epochs = 0;
  nlohmann::json to_json() const;
};

// The DPDM protocol: train on (generated, generated_labels), test on (test, test_labels).
DownstreamResult downstream_accuracy(const torch::Tensor& generated,
                                     const torch::Tensor& generated_labels,
                                     const torch::Tensor& test, const torch::Tensor& test_labels,
                                     const ClassifierOptions& options = {});

}  // namespace umbra
