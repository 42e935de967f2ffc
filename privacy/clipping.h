// The per-sample clipping engine of DP-SGD (DESIGN.md §5 "Fast per-sample clipping").
//
// Use, for each physical micro-batch of B samples with K rows each (noise multiplicity; rows
// [i·K, (i+1)·K) belong to sample i) and the model in DP mode (privacy/dp_module.h):
//
//   PerSampleClipper clipper(model, options);      // once
//   ...zero the parameters' .grad at the start of a logical batch...
//   torch::Tensor losses = per_row_losses(model, batch);   // [B·K] (or [B]): one loss per row
//   losses.sum().backward();                        // activation gradients only
//   ClipStats stats = clipper.clip_and_accumulate(B);     // .grad += Σ_i c_i g_i
//
// g_i is the gradient of sample i's loss (the sum over its K rows) with respect to every
// trainable parameter of the model. The clipped sum uses c_i = min(1, C / (‖g_i‖ + 1e-6)) with
// ‖g_i‖ over all layers (flat clipping, the default), or, per layer, c_il = min(1, C_l /
// (‖g_il‖ + 1e-6)) with C_l = C/√L unless given (then the sensitivity is √(Σ C_l²) = C). The
// backward pass formed no parameter gradient; per_sample_grad.h computes each layer's ‖g_il‖² by
// the cheapest exact method and adds its clipped sum with one GEMM-shaped operation (or a GEMV
// over per-sample gradients it kept). Nothing is divided by the batch size and no noise is added
// here: the DP optimizer step does both (privacy/dp_noise.h).
//
// Memory: the clipper installs a gradient callback on every DP primitive (DPModule::
// set_grad_callback), so each layer's norms are computed inside the backward pass as soon as its
// output gradient exists; layers whose per-sample gradients are kept (or closed-form) release
// their captures right there, and only ghost/direct layers hold (A, G) until the clipped sum.
// It also switches the model's GroupNorms to capture their input (DPGroupNormImpl::
// capture_input), which autograd holds anyway. Construct the clipper before the DP-mode forward
// pass: construction drops captures made earlier.
//
// Thread-safety: one clipper per model and thread (the callbacks run on the thread of the
// backward pass, which for CPU tensors is the caller's). The model must outlive the clipper;
// the clipper's destructor removes its callbacks.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "privacy/dp_module.h"
#include "privacy/per_sample_grad.h"

namespace umbra {

struct ClippingOptions {
  // C, in gradient L2 norm units; +infinity disables clipping (c_i = 1).
  double max_grad_norm = 1.0;
  int64_t noise_multiplicity = 1;  // K
  bool per_layer = false;
  // Per-layer mode only: one threshold per layer of PerSampleClipper::layer_names(); empty means
  // C/√L for each of the L layers.
  std::vector<double> layer_max_grad_norms;
  NormPolicy policy;
};

struct ClipStats {
  int64_t num_samples = 0;
  // Samples whose gradient was scaled down (flat: ‖g_i‖ + 1e-6 > C; per layer: in any layer).
  int64_t num_clipped = 0;
  torch::Tensor norms;        // [B] float64, ‖g_i‖ before clipping
  torch::Tensor layer_norms;  // [B, L] float64, ‖g_il‖ before clipping, layer_names() order
};

class PerSampleClipper {
 public:
  // Throws umbra::Error naming the layer when the model holds a parameterised module that is not
  // a DP primitive, any BatchNorm, or a DP primitive kind with no per-sample rule, or is held by
  // another live clipper; and for bad options (C <= 0, K < 1, thresholds not matching the
  // layers). A constructor that throws leaves the model untouched.
  PerSampleClipper(torch::nn::Module& model, ClippingOptions options);
  ~PerSampleClipper();
  PerSampleClipper(const PerSampleClipper&) = delete;
  PerSampleClipper& operator=(const PerSampleClipper&) = delete;

  // Call after the DP-mode backward pass of a micro-batch of `num_samples` samples (B·K rows);
  // throws umbra::Error naming a layer whose gradient rows are not num_samples · K, and when no
  // layer holds a gradient at all.
  // Adds Σ_i c_i g_i into each trainable parameter's .grad (created as zeros when undefined;
  // existing values are kept, so micro-batches accumulate) and releases every capture. Layers
  // that received no gradient contribute g_il = 0. num_samples = 0 (an empty micro-batch) only
  // releases the captures. Throws umbra::Error when a norm is not finite.
  ClipStats clip_and_accumulate(int64_t num_samples);

  // DP primitives with at least one trainable parameter, dotted paths in model order.
  const std::vector<std::string>& layer_names() const { return layer_names_; }
  // Per-layer thresholds C_l (per-layer mode), empty in flat mode.
  const std::vector<double>& layer_thresholds() const { return thresholds_; }
  // L2 sensitivity of the clipped sum to adding or removing one sample: C (flat) or √(Σ C_l²).
  // The Gaussian noise standard deviation is noise_multiplier · sensitivity().
  double sensitivity() const;
  const ClippingOptions& options() const { return options_; }
  // One entry per layer that received a gradient in the last clip_and_accumulate.
  const std::vector<LayerPlan>& last_plan() const { return last_plan_; }

 private:
  ClippingOptions options_;
  std::vector<std::pair<std::string, DPModule*>> primitives_;  // all DP primitives
  std::vector<std::string> layer_names_;
  std::vector<DPModule*> layers_;
  std::vector<double> thresholds_;
  std::vector<LayerPlan> last_plan_;

  // A layer's norms computed during the backward pass (from its gradient callback).
  struct Pending {
    int64_t num_samples = -1;  // -1: not processed yet
    std::unique_ptr<LayerGradient> work;
    torch::Tensor squared_norms;  // [B] float64
    double norm_seconds = 0.0;
  };
  void on_grad_output(int64_t layer);
  void process_layer(int64_t layer, int64_t num_samples);
  void reset_pending();
  std::vector<Pending> pending_;
  int64_t pending_samples_ = -1;
};

// The table of a plan: one line per layer (name, kind, R, d, p, method, per-sample MFLOPs of both
// methods, kept kB, milliseconds spent on norms and on the clipped sum), for logs and benchmarks.
std::string format_plan(const std::vector<LayerPlan>& plan);

}  // namespace umbra
