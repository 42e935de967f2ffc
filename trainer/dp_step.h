// The gradient of one DP-SGD step (DESIGN.md §5), for StageRunner.
//
// Per logical (Poisson) batch, on every rank:
//   begin_step()                      zero the parameters' .grad
//   accumulate(losses, B)  (per micro-batch) backward of the per-sample losses in DP mode, then
//                                     .grad += Σ_i c_i g_i (privacy/clipping.h)
//   finish(sync, step)                rank 0 adds N(0, σ²C²) to its clipped sum, every rank hands
//                                     its sum to the all-reduce, .grad = (Σ_ranks) / (q·N)
// so the global update carries exactly one noise draw whatever the world size, and the sum is
// divided by the expected batch size q·N, not the realised one (whose size is private).
//
// The model is switched into DP mode for the object's lifetime (parameters get no .grad from
// backward; the clipper forms the clipped sum). Noise comes from privacy/dp_noise.h: seeded by
// (noise_seed, step) unless secure_mode. Not copyable; the model must outlive it.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "comm/gradient_sync.h"
#include "privacy/clipping.h"
#include "privacy/dp_noise.h"
#include "privacy/privacy_options.h"

namespace umbra {

struct DpStepStats {
  int64_t samples = 0;  // this rank's samples in the step
  int64_t clipped = 0;  // of which had their gradient scaled down
};

class DpGradient {
 public:
  // `noise_multiplicity`: K rows per sample in the model's batch (1 for the autoencoder).
  // `params`: the trainable parameters (name, tensor) StageRunner optimises, in registration
  // order. Throws umbra::Error naming the layer when the model is not DP-ready (a layer without
  // a per-sample rule, BatchNorm).
  DpGradient(torch::nn::Module& model, std::vector<std::pair<std::string, torch::Tensor>> params,
             const PrivacyOptions& options, int64_t noise_multiplicity, double noise_multiplier,
             double expected_batch_size, uint64_t noise_seed, int rank);
  ~DpGradient();
  DpGradient(const DpGradient&) = delete;
  DpGradient& operator=(const DpGradient&) = delete;

  void begin_step();
  // `losses`: [B] per-sample losses of a micro-batch computed in DP mode (B = 0: nothing to do).
  void accumulate(const torch::Tensor& losses, int64_t num_samples);
  // Noise (rank 0), all-reduce, division by q·N; returns this rank's clipping figures.
  DpStepStats finish(GradientSync& sync, int64_t step);

  // σ·C, the standard deviation of the noise added to the summed gradient.
  double noise_std() const { return noise_.std(); }
  double sensitivity() const { return clipper_.sensitivity(); }
  const PerSampleClipper& clipper() const { return clipper_; }

 private:
  torch::nn::Module& model_;
  std::vector<std::pair<std::string, torch::Tensor>> params_;
  PerSampleClipper clipper_;
  GaussianNoise noise_;
  double expected_batch_size_;
  int rank_;
  DpStepStats stats_;
};

}  // namespace umbra
