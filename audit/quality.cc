#include "audit/quality.h"

#include <algorithm>
#include <tuple>

#include "audit/knn.h"
#include "core/check.h"

namespace umbra {
namespace {

// Square root of a symmetric positive semi-definite matrix (float64).
torch::Tensor symmetric_sqrt(const torch::Tensor& s) {
  auto [values, vectors] = torch::linalg::eigh(s, "L");
  return vectors.matmul(torch::diag(values.clamp_min(0).sqrt())).matmul(vectors.t());
}

// Squared radius of each row's ball: its k-th nearest neighbour in the same set (the row itself,
// at distance 0, is not counted).
torch::Tensor ball_radii_squared(const torch::Tensor& x, int64_t k, int64_t block) {
  const int64_t n = x.size(0);
  torch::Tensor radii = torch::empty({n}, torch::kFloat32);
  for (int64_t b0 = 0; b0 < n; b0 += block) {
    const int64_t bn = std::min(block, n - b0);
    torch::Tensor d2 = squared_distances(x.narrow(0, b0, bn), x);
    // The self-distance is 0 in exact arithmetic; pin it so GEMM round-off cannot reorder it.
    d2.diagonal(b0).zero_();
    radii.narrow(0, b0, bn).copy_(std::get<0>(d2.kthvalue(k + 1, 1)));
  }
  return radii;
}

// Fraction of the rows of `probe` inside at least one ball (centres `centres`, squared radii).
double fraction_inside(const torch::Tensor& probe, const torch::Tensor& centres,
                       const torch::Tensor& radii_squared, int64_t block) {
  const int64_t n = probe.size(0);
  int64_t inside = 0;
  for (int64_t b0 = 0; b0 < n; b0 += block) {
    const int64_t bn = std::min(block, n - b0);
    const torch::Tensor d2 = squared_distances(probe.narrow(0, b0, bn), centres);
    inside += d2.le(radii_squared.unsqueeze(0)).any(1).sum().item<int64_t>();
  }
  return static_cast<double>(inside) / static_cast<double>(n);
}

}  // namespace

FeatureGaussian fit_gaussian(const torch::Tensor& features) {
  UMBRA_CHECK(features.dim() == 2 && features.size(0) >= 2,
              "fit_gaussian: need features [N, d] with N >= 2, got ", features.sizes());
  const torch::Tensor x = features.to(torch::kFloat64);
  FeatureGaussian g;
  g.count = x.size(0);
  g.mean = x.mean(0);
  const torch::Tensor centred = x - g.mean.unsqueeze(0);
  g.cov = centred.t().matmul(centred) / static_cast<double>(g.count - 1);
  return g;
}

double frechet_distance(const FeatureGaussian& a, const FeatureGaussian& b) {
  UMBRA_CHECK(a.mean.defined() && b.mean.defined() && a.mean.sizes() == b.mean.sizes(),
              "frechet_distance: the two Gaussians must have the same dimension");
  const torch::Tensor root_a = symmetric_sqrt(a.cov);
  torch::Tensor m = root_a.matmul(b.cov).matmul(root_a);
  m = 0.5 * (m + m.t());
  const double trace_sqrt =
      torch::linalg::eigvalsh(m, "L").clamp_min(0).sqrt().sum().item<double>();
  const double mean_term = (a.mean - b.mean).pow(2).sum().item<double>();
  const double fd =
      mean_term + a.cov.trace().item<double>() + b.cov.trace().item<double>() - 2 * trace_sqrt;
  return std::max(fd, 0.0);  // round-off can leave a tiny negative value for equal Gaussians
}

PrecisionRecall knn_precision_recall(const torch::Tensor& real, const torch::Tensor& generated,
                                     int64_t k, int64_t block) {
  UMBRA_CHECK(k >= 1 && block >= 1, "knn_precision_recall: k and block must be >= 1");
  UMBRA_CHECK(real.dim() == 2 && generated.dim() == 2 && real.size(1) == generated.size(1),
              "knn_precision_recall: expected [N, d] and [M, d], got ", real.sizes(), " and ",
              generated.sizes());
  UMBRA_CHECK(real.size(0) > k && generated.size(0) > k,
              "knn_precision_recall: each set needs more than k = ", k, " samples, got ",
              real.size(0), " real and ", generated.size(0), " generated");
  torch::NoGradGuard no_grad;
  const torch::Tensor r = real.to(torch::kFloat32).contiguous();
  const torch::Tensor g = generated.to(torch::kFloat32).contiguous();
  PrecisionRecall pr;
  pr.precision = fraction_inside(g, r, ball_radii_squared(r, k, block), block);
  pr.recall = fraction_inside(r, g, ball_radii_squared(g, k, block), block);
  return pr;
}

nlohmann::json FeatureMetrics::to_json() const {
  return {{"fid_proxy", fid_proxy},
          {"precision", precision_recall.precision},
          {"recall", precision_recall.recall},
          {"k", k},
          {"real_count", real_count},
          {"generated_count", generated_count},
          {"features",
           "penultimate layer (128-d) of the DPDM CNN trained on the real training "
           "set; not Inception-FID"}};
}

FeatureMetrics feature_metrics(DownstreamCnn& feature_model, const torch::Tensor& real,
                               const torch::Tensor& generated, int64_t k) {
  const torch::Tensor fr = classifier_features(feature_model, real);
  const torch::Tensor fg = classifier_features(feature_model, generated);
  FeatureMetrics m;
  m.fid_proxy = frechet_distance(fit_gaussian(fr), fit_gaussian(fg));
  m.precision_recall = knn_precision_recall(fr, fg, k);
  m.real_count = fr.size(0);
  m.generated_count = fg.size(0);
  m.k = k;
  return m;
}

nlohmann::json DownstreamResult::to_json() const {
  return {{"test_accuracy", test_accuracy},
          {"best_epoch", best_epoch},
          {"best_validation_accuracy", best_validation_accuracy},
          {"epochs", epochs},
          {"train_count", train_count},
          {"validation_count", validation_count},
          {"test_count", test_count},
          {"protocol",
           "DPDM downstream CNN: trained on generated images, epoch chosen on a "
           "generated validation split, tested on the real test set"}};
}

DownstreamResult downstream_accuracy(const torch::Tensor& generated,
                                     const torch::Tensor& generated_labels,
                                     const torch::Tensor& test, const torch::Tensor& test_labels,
                                     const ClassifierOptions& options) {
  TrainedClassifier trained = train_downstream_classifier(generated, generated_labels, options);
  DownstreamResult r;
  r.test_accuracy = classifier_accuracy(trained.model, test, test_labels);
  r.best_epoch = trained.best_epoch;
  r.best_validation_accuracy = trained.best_validation_accuracy;
  r.train_count = trained.train_count;
  r.validation_count = trained.validation_count;
  r.test_count = test.size(0);
  r.epochs = options.epochs;
  return r;
}

}  // namespace umbra
