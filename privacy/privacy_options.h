// privacy.* keys (DESIGN.md §5 and §11): whether a stage trains with DP-SGD and how.
//
// One PrivacyOptions is shared by both stages (the budget is composed across them; the trainer
// decides how it is split). Units: max_grad_norm is the L2 clipping norm C of one sample's whole
// gradient (flat clipping) or of all layers together (per_layer: each of the L layers is clipped
// to C/sqrt(L), so the sensitivity stays C); noise_multiplier σ is the noise standard deviation
// divided by C; expected_batch_size is q·N, the Poisson logical batch size the clipped sum is
// divided by.
#pragma once

#include <cstdint>
#include <string>

#include "core/check.h"
#include "core/options.h"

namespace umbra {

struct PrivacyOptions {
  bool enabled = false;
  double target_epsilon = 10.0;
  double delta = 1e-5;
  double noise_multiplier = 0.0;
  double max_grad_norm = 1.0;
  int64_t expected_batch_size = 256;
  int64_t noise_multiplicity = 1;
  std::string accountant = "rdp";
  bool secure_mode = false;
  int64_t max_physical_batch = 64;
  std::string clipping = "flat";

  template <class V>
  void visit(V& v) {
    v("enabled", enabled, "Train with DP-SGD (per-sample clipping, Gaussian noise, accounting)");
    v("target_epsilon", target_epsilon,
      "Privacy budget epsilon for the whole release (both stages composed); training refuses a "
      "step that would exceed it, and noise_multiplier = 0 is calibrated to meet it",
      AtLeast{0.0});
    v("delta", delta, "delta of the (epsilon, delta) guarantee; must be below 1/N",
      InRange{0.0, 1.0});
    v("noise_multiplier", noise_multiplier,
      "sigma: noise standard deviation / max_grad_norm; 0 = calibrate from target_epsilon",
      AtLeast{0.0});
    v("max_grad_norm", max_grad_norm,
      "C: every sample's gradient is scaled to L2 norm at most C (factor min(1, C/(|g|+1e-6)))",
      AtLeast{0.0});
    v("expected_batch_size", expected_batch_size,
      "q*N: expected logical (Poisson) batch size; sets the sample rate q and divides the noisy "
      "clipped sum",
      AtLeast{1});
    v("noise_multiplicity", noise_multiplicity,
      "K: diffusion-loss draws (timestep, noise) per image in one step; the K rows of an image "
      "form one per-sample gradient, so K costs no privacy (DPDM)",
      AtLeast{1});
    v("accountant", accountant,
      "rdp: Renyi DP of the subsampled Gaussian; prv: privacy-loss distribution (tighter)",
      OneOf{"rdp", "prv"});
    v("secure_mode", secure_mode,
      "Noise from the OS CSPRNG (getrandom) with a floating-point-attack-resistant construction "
      "instead of the seeded generator; not reproducible");
    v("max_physical_batch", max_physical_batch,
      "Samples per micro-batch and rank: a Poisson logical batch is processed in micro-batches "
      "of at most this many samples (memory bound); the clipped sums are accumulated",
      AtLeast{1});
    v("clipping", clipping,
      "flat: one norm over all parameters; per_layer: each of the L DP layers clipped to "
      "max_grad_norm/sqrt(L)",
      OneOf{"flat", "per_layer"});
  }

  // Cross-field checks that the visitor's per-key constraints cannot express; throws
  // umbra::Error naming the privacy.* key. num_samples: N of the private training set (0: not
  // known yet, the delta < 1/N check is skipped).
  void validate(int64_t num_samples = 0) const {
    if (!enabled) return;
    UMBRA_CHECK(delta > 0.0 && delta < 1.0, "privacy.delta: expected 0 < delta < 1, got ", delta);
    UMBRA_CHECK(num_samples <= 0 || delta < 1.0 / static_cast<double>(num_samples),
                "privacy.delta: expected delta < 1/N = ", 1.0 / static_cast<double>(num_samples),
                " for N = ", num_samples, " training samples, got ", delta);
    UMBRA_CHECK(max_grad_norm > 0.0, "privacy.max_grad_norm: expected C > 0, got ", max_grad_norm);
    UMBRA_CHECK(noise_multiplier > 0.0 || target_epsilon > 0.0,
                "privacy.noise_multiplier: 0 means 'calibrate from privacy.target_epsilon', "
                "which is 0 too; set one of them");
    UMBRA_CHECK(num_samples <= 0 || expected_batch_size <= num_samples,
                "privacy.expected_batch_size: expected at most N = ", num_samples, ", got ",
                expected_batch_size);
  }

  bool per_layer_clipping() const { return clipping == "per_layer"; }
  // q = expected_batch_size / N.
  double sample_rate(int64_t num_samples) const {
    return static_cast<double>(expected_batch_size) / static_cast<double>(num_samples);
  }
};

}  // namespace umbra
