// Per-sample gradient norms of one DP primitive, and its clipped gradient sum (DESIGN.md §5
// "Fast per-sample clipping").
//
// Input: a primitive's capture after a DP-mode backward pass (privacy/dp_module.h): activation A
// and output gradient G. A micro-batch holds B samples of K rows each (noise multiplicity K):
// rows [i·K, (i+1)·K) of the leading dimension belong to sample i, and the per-sample gradient
// g_i sums over those K rows and over the positions (tokens, pixels) of each row. Every matrix
// layer is seen as A_i [R, d] and G_i [R, p] with R = K·positions rows per sample, so
// g_i = G_iᵀ A_i [p, d]:
//   Linear     A = input [.., d], G = dL/dy [.., p]                        (d = in, p = out)
//   Conv2d     A = unfold(input) [C_in·k², L] transposed, G = dL/dy [C_out, L]  (d = C_in·k²)
//   Embedding  A = one-hot rows of the indices [V], G = dL/dy [.., D]        (d = V, p = D)
// A weight's squared norm per sample is computed by one of (chosen per layer, LayerPlan says
// which and why):
//   kGhost       ‖g_i‖² = ⟨A_iA_iᵀ, G_iG_iᵀ⟩ (two bmm into [B, R, R], then a batched dot); g_i
//                is never formed. Cost ~2R²(d+p) per sample, transient 3R² floats. Conv2d
//                unfolds its input chunk-wise for this (ghost wins only at low resolution).
//   kGhostPixel  Conv2d only: the same inner product, but A_iA_iᵀ is built without unfolding.
//                Row t of A_i is the k×k patch at output position t, so
//                (A_iA_iᵀ)[t, u] = Σ_{δ in k×k} P_i[t·s + δ, u·s + δ], with P_i = X_iX_iᵀ the Gram
//                of the (zero-padded) input pixels [K·H·W, C_in]: one bmm with C_in, not C_in·k²,
//                as its inner dimension, then 2k strided adds (a separable box sum over δ).
//                Cost ~2(K·H·W)²·C_in + 2R²p + (k²+1)R² per sample: 4-7x less than kDirect at
//                the UNet's 8x8 level, and than kGhost at its 4x4 and 2x2 levels.
//   kDirect      g_i = G_iᵀA_i formed per sample, squared, dropped. Cost ~2Rdp. Linear: one bmm
//                per chunk of samples; Conv2d: the convolution's own weight-gradient kernel
//                (oneDNN), which reads the input directly — no unfold buffer (unfold costs more
//                than the GEMM itself at high resolution). K = 1: once per chunk of samples as a
//                grouped convolution (groups = samples side by side in the channel dimension);
//                one call per sample was 1.1-9x slower at the models' shapes. K > 1: one call
//                per sample on its K rows, as fast as grouped there
//                (bench/reference/conv_per_sample.py).
//   kDirectKeep  as kDirect but g_i is kept [B, p, d]; the clipped sum is then Σ c_i g_i (a GEMV)
//                and the book-keeping GEMM is skipped: no FLOPs beyond a non-private step.
// After kGhost/kDirect the clipped sum is the book-keeping GEMM (Bu et al. 2023):
// Σ_i c_i G_iᵀA_i = (c⊙G)ᵀA — one mm for Linear, one convolution weight-gradient for Conv2d
// (no unfold), one index_add for Embedding. Biases, GroupNorm affine and DPParameter have exact
// closed forms (kClosedForm): their per-sample gradients are tiny and always kept.
//
// Choice (NormPolicy::kAuto): kDirectKeep when the kept g_i is no larger than what the layer's
// capture holds per sample (A and G are released as soon as g_i exists, so keeping costs no
// peak memory), else the cheapest in FLOPs of kGhost, kDirect and (Conv2d) kGhostPixel.
//
// Thread-safety: a LayerGradient belongs to one thread; it reads (and finally releases) the
// capture of its primitive, which nothing else may touch meanwhile.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>

#include "privacy/dp_module.h"

namespace umbra {

enum class NormMethod { kGhost, kGhostPixel, kDirect, kDirectKeep, kClosedForm };
const char* to_string(NormMethod method);

struct NormPolicy {
  // kAuto chooses per layer; the other values force that method on every weight that has it
  // (tests and benchmarks). kGhostPixel is kGhost for every kind but Conv2d.
  enum class Force { kAuto, kGhost, kGhostPixel, kDirect, kDirectKeep };
  Force force = Force::kAuto;
  // Cap on the transient memory of one chunk of samples (unfolded inputs, Gram matrices,
  // per-sample gradients that are not kept), in bytes; at least one sample per chunk. 8 MiB: the
  // UNet's DP step peak is 1.20x / 1.04x the non-private step at batch 64 / 256, against 1.71x /
  // 1.14x with 32 MiB, and its time is no worse (bench/README, dp_step_bench --chunk-mb).
  int64_t chunk_bytes = int64_t{8} << 20;
  // kAuto keeps g_i when p·d <= keep_ratio · (floats of A and G per sample), or p·d <= keep_floats.
  double keep_ratio = 1.0;
  int64_t keep_floats = 4096;
  // Conv2d kDirect with K = 1: one grouped weight-gradient call per chunk of samples (true), or
  // one call per sample (false; the benchmark's comparison). K > 1 always calls per sample.
  bool grouped_conv = true;
  // kAuto may choose kGhostPixel for Conv2d (false: the choice before 2026-12-07, for the
  // benchmark's side-by-side comparison).
  bool pixel_gram = true;
};

// How one layer is handled in one micro-batch, for the log and the benchmark's table.
// FLOPs and floats are per sample.
struct LayerPlan {
  std::string name;          // dotted path in the model
  std::string kind;          // DPModule::dp_kind()
  int64_t rows = 0;          // R
  int64_t in_features = 0;   // d
  int64_t out_features = 0;  // p
  NormMethod method = NormMethod::kClosedForm;
  double direct_flops = 0.0;
  double ghost_flops = 0.0;
  double pixel_flops = 0.0;     // kGhostPixel (Conv2d only; 0 elsewhere)
  double capture_floats = 0.0;  // A and G of one sample
  double kept_floats = 0.0;     // per-sample gradient floats kept until the clipped sum
  // Wall time of this layer's squared_norms() and add_clipped_sum() (filled by the clipper).
  double norm_seconds = 0.0;
  double sum_seconds = 0.0;
};

// The choice kAuto makes for a matrix layer (pure; exposed for tests and the benchmark).
NormMethod choose_norm_method(int64_t rows, int64_t in_features, int64_t out_features,
                              double capture_floats, const NormPolicy& policy);
// The same for a Conv2d, whose kGhostPixel costs `pixel_flops` per sample.
NormMethod choose_conv_norm_method(int64_t rows, int64_t in_features, int64_t out_features,
                                   double capture_floats, double pixel_flops,
                                   const NormPolicy& policy);

// True when per_sample_grad knows `module`'s kind (Linear, Conv2d, GroupNorm, Embedding,
// Parameter).
bool has_per_sample_rule(const DPModule& module);

class LayerGradient {
 public:
  virtual ~LayerGradient() = default;

  // The per-sample view of `module`'s current capture. Returns nullptr when the layer has no
  // trainable parameter or received no gradient in this micro-batch (then g_i = 0 for all i).
  // Throws umbra::Error naming `name` for an unknown primitive kind or a capture whose leading
  // dimension is not num_samples · multiplicity.
  static std::unique_ptr<LayerGradient> create(const std::string& name, DPModule& module,
                                               int64_t num_samples, int64_t multiplicity,
                                               const NormPolicy& policy);

  const LayerPlan& plan() const { return plan_; }

  // ‖g_i‖² over this layer's trainable parameters, [B] float64. Call once, first.
  virtual torch::Tensor squared_norms() = 0;
  // Adds Σ_i c_i g_i to each trainable parameter's .grad (created as zeros when undefined);
  // clip_factors [B]. Call once, after squared_norms(); releases the capture and kept tensors.
  virtual void add_clipped_sum(const torch::Tensor& clip_factors) = 0;

 protected:
  LayerPlan plan_;
};

}  // namespace umbra
