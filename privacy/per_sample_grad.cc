#include "privacy/per_sample_grad.h"

#include <algorithm>
#include <utility>

#include "core/check.h"
#include "privacy/dp_conv2d.h"
#include "privacy/dp_embedding.h"
#include "privacy/dp_group_norm.h"
#include "privacy/dp_linear.h"
#include "privacy/dp_parameter.h"

namespace umbra {

namespace F = torch::nn::functional;

const char* to_string(NormMethod method) {
  switch (method) {
    case NormMethod::kGhost:
      return "ghost";
    case NormMethod::kGhostPixel:
      return "ghost-pixel";
    case NormMethod::kDirect:
      return "direct";
    case NormMethod::kDirectKeep:
      return "direct+keep";
    case NormMethod::kClosedForm:
      return "closed-form";
  }
  return "?";
}

NormMethod choose_norm_method(int64_t rows, int64_t in_features, int64_t out_features,
                              double capture_floats, const NormPolicy& policy) {
  switch (policy.force) {
    case NormPolicy::Force::kGhost:
    case NormPolicy::Force::kGhostPixel:
      return NormMethod::kGhost;
    case NormPolicy::Force::kDirect:
      return NormMethod::kDirect;
    case NormPolicy::Force::kDirectKeep:
      return NormMethod::kDirectKeep;
    case NormPolicy::Force::kAuto:
      break;
  }
  const double weight = static_cast<double>(in_features) * static_cast<double>(out_features);
  if (weight <= policy.keep_ratio * capture_floats ||
      weight <= static_cast<double>(policy.keep_floats)) {
    return NormMethod::kDirectKeep;
  }
  const double r = static_cast<double>(rows);
  const double direct = 2.0 * r * weight;
  const double ghost = 2.0 * r * r * static_cast<double>(in_features + out_features);
  return ghost < direct ? NormMethod::kGhost : NormMethod::kDirect;
}

NormMethod choose_conv_norm_method(int64_t rows, int64_t in_features, int64_t out_features,
                                   double capture_floats, double pixel_flops,
                                   const NormPolicy& policy) {
  if (policy.force == NormPolicy::Force::kGhostPixel) return NormMethod::kGhostPixel;
  const NormMethod m = choose_norm_method(rows, in_features, out_features, capture_floats, policy);
  if (policy.force != NormPolicy::Force::kAuto || m == NormMethod::kDirectKeep ||
      !policy.pixel_gram) {
    return m;
  }
  const double r = static_cast<double>(rows);
  const double d = static_cast<double>(in_features), p = static_cast<double>(out_features);
  return pixel_flops < std::min(2.0 * r * d * p, 2.0 * r * r * (d + p)) ? NormMethod::kGhostPixel
                                                                        : m;
}

bool has_per_sample_rule(const DPModule& module) {
  return dynamic_cast<const DPLinearImpl*>(&module) != nullptr ||
         dynamic_cast<const DPConv2dImpl*>(&module) != nullptr ||
         dynamic_cast<const DPGroupNormImpl*>(&module) != nullptr ||
         dynamic_cast<const DPEmbeddingImpl*>(&module) != nullptr ||
         dynamic_cast<const DPParameterImpl*>(&module) != nullptr;
}

namespace {

bool trainable(const torch::Tensor& p) { return p.defined() && p.requires_grad(); }

// The parameter's .grad, created as zeros on first use.
torch::Tensor& grad_of(const torch::Tensor& param) {
  torch::Tensor& g = param.mutable_grad();
  if (!g.defined()) g = torch::zeros_like(param, torch::MemoryFormat::Contiguous);
  return g;
}

// Batched dot products: x, y [b, ...] -> [b] Σ x_i ⊙ y_i (float32 accumulation, which the
// tests bound at 1e-4 relative). One elementwise pass: far cheaper than a batched GEMV.
torch::Tensor batched_dot(const torch::Tensor& x, const torch::Tensor& y) {
  const int64_t b = x.size(0);
  return (x.reshape({b, -1}) * y.reshape({b, -1})).sum(1);
}

// Squared norms of the matrix gradients g_i = G_iᵀA_i for one chunk of b samples.
// a [b, R, d], g [b, R, p] (any strides). kDirectKeep writes g_i into `keep` [b, p, d].
torch::Tensor matrix_sq_norms(const torch::Tensor& a, const torch::Tensor& g, NormMethod method,
                              const torch::Tensor& keep) {
  if (method == NormMethod::kGhost) {
    const torch::Tensor gram_a = torch::bmm(a, a.transpose(1, 2));
    const torch::Tensor gram_g = torch::bmm(g, g.transpose(1, 2));
    return batched_dot(gram_a, gram_g);
  }
  torch::Tensor per_sample;
  if (method == NormMethod::kDirectKeep) {
    per_sample = keep;
    torch::bmm_out(per_sample, g.transpose(1, 2), a);
  } else {
    per_sample = torch::bmm(g.transpose(1, 2), a);
  }
  return batched_dot(per_sample, per_sample);
}

// Samples per chunk so that one chunk's transient floats stay under policy.chunk_bytes.
int64_t chunk_samples(double floats_per_sample, int64_t element_size, const NormPolicy& policy) {
  const double per_sample = std::max(1.0, floats_per_sample) * static_cast<double>(element_size);
  return std::max<int64_t>(
      1, static_cast<int64_t>(static_cast<double>(policy.chunk_bytes) / per_sample));
}

// c [B] -> the factor of each of the B·K rows, in `like`'s dtype: [B·K].
torch::Tensor row_factors(const torch::Tensor& c, int64_t multiplicity, const torch::Tensor& like) {
  const torch::Tensor cc = c.to(like.options());
  if (multiplicity == 1) return cc;
  return cc.view({-1, 1}).expand({cc.size(0), multiplicity}).reshape({-1});
}

// Σ_i c_i g_i into grad for per-sample gradients kept as rows [B, numel(param)].
void add_weighted_rows(const torch::Tensor& param, const torch::Tensor& rows,
                       const torch::Tensor& c) {
  grad_of(param).view({-1}).addmv_(rows.reshape({rows.size(0), -1}).t(), c.to(rows.options()));
}

void fill_flops(LayerPlan& plan) {
  const double r = static_cast<double>(plan.rows);
  const double d = static_cast<double>(plan.in_features);
  const double p = static_cast<double>(plan.out_features);
  plan.direct_flops = 2.0 * r * d * p;
  plan.ghost_flops = 2.0 * r * r * (d + p);
}

// ---------------------------------------------------------------------------------------------
// Linear: A [N, *, d], G [N, *, p].
class LinearGradient : public LayerGradient {
 public:
  LinearGradient(DPLinearImpl& layer, int64_t num_samples, int64_t multiplicity,
                 const NormPolicy& policy)
      : layer_(layer), b_(num_samples), k_(multiplicity), policy_(policy) {
    a_ = layer.activation();
    g_ = layer.grad_output();
    const int64_t d = layer.options.in_features(), p = layer.options.out_features();
    plan_.in_features = d;
    plan_.out_features = p;
    plan_.rows = b_ > 0 ? a_.numel() / (b_ * d) : 0;
    plan_.capture_floats = static_cast<double>(plan_.rows * (d + p));
    fill_flops(plan_);
    plan_.method = trainable(layer.weight)
                       ? choose_norm_method(plan_.rows, d, p, plan_.capture_floats, policy)
                       : NormMethod::kClosedForm;
    if (plan_.method == NormMethod::kDirectKeep) plan_.kept_floats = static_cast<double>(d * p);
  }

  torch::Tensor squared_norms() override {
    const int64_t d = plan_.in_features, p = plan_.out_features, r = plan_.rows;
    torch::Tensor sq = torch::zeros({b_}, g_.options().dtype(torch::kDouble));
    if (trainable(layer_.bias)) {
      bias_rows_ = g_.reshape({b_, -1, p}).sum(1);
      sq += bias_rows_.pow(2).sum(1, false, torch::kDouble);
    }
    if (!trainable(layer_.weight)) return sq;
    const NormMethod m = plan_.method;
    if (m == NormMethod::kDirectKeep) kept_ = torch::empty({b_, p, d}, g_.options());
    const double transient = (m == NormMethod::kGhost ? 2.0 * r * r : 0.0) +
                             (m == NormMethod::kDirect ? 1.0 * d * p : 0.0) +
                             (k_ > 1 ? 1.0 * r * (d + p) : 0.0);
    const int64_t chunk = chunk_samples(transient, g_.element_size(), policy_);
    for (int64_t s = 0; s < b_; s += chunk) {
      const int64_t n = std::min(chunk, b_ - s);
      const torch::Tensor a = a_.narrow(0, s * k_, n * k_).reshape({n, r, d});
      const torch::Tensor g = g_.narrow(0, s * k_, n * k_).reshape({n, r, p});
      const torch::Tensor keep = kept_.defined() ? kept_.narrow(0, s, n) : torch::Tensor();
      sq.narrow(0, s, n) += matrix_sq_norms(a, g, m, keep).to(torch::kDouble);
    }
    if (m == NormMethod::kDirectKeep) release_capture();
    return sq;
  }

  void add_clipped_sum(const torch::Tensor& c) override {
    const int64_t d = plan_.in_features, p = plan_.out_features;
    if (bias_rows_.defined()) add_weighted_rows(layer_.bias, bias_rows_, c);
    if (trainable(layer_.weight)) {
      if (kept_.defined()) {
        add_weighted_rows(layer_.weight, kept_, c);
      } else {
        const torch::Tensor scaled =
            (g_.reshape({b_ * k_, -1}) * row_factors(c, k_, g_).view({-1, 1})).view({-1, p});
        grad_of(layer_.weight).addmm_(scaled.t(), a_.reshape({-1, d}));
      }
    }
    release_capture();
    kept_ = bias_rows_ = torch::Tensor();
  }

 private:
  void release_capture() {
    a_ = g_ = torch::Tensor();
    layer_.clear_capture();
  }

  DPLinearImpl& layer_;
  int64_t b_, k_;
  NormPolicy policy_;
  torch::Tensor a_, g_, kept_, bias_rows_;
};

// ---------------------------------------------------------------------------------------------
// Conv2d: A = input [N, C_in, H, W] (unfolded chunk-wise to [C_in·k², L] for ghost norms only),
// G [N, C_out, H', W'].
class Conv2dGradient : public LayerGradient {
 public:
  Conv2dGradient(DPConv2dImpl& layer, int64_t num_samples, int64_t multiplicity,
                 const NormPolicy& policy)
      : layer_(layer), b_(num_samples), k_(multiplicity), policy_(policy) {
    x_ = layer.activation();
    g_ = layer.grad_output();
    const int64_t ks = layer.options.kernel_size();
    const int64_t d = layer.options.in_channels() * ks * ks, p = layer.options.out_channels();
    positions_ = g_.size(2) * g_.size(3);
    plan_.in_features = d;
    plan_.out_features = p;
    plan_.rows = k_ * positions_;
    plan_.capture_floats =
        b_ > 0 ? static_cast<double>(x_.numel() + g_.numel()) / static_cast<double>(b_) : 0.0;
    fill_flops(plan_);
    const double r = static_cast<double>(plan_.rows);
    const double in_rows = static_cast<double>(k_ * x_.size(2) * x_.size(3));
    plan_.pixel_flops = 2.0 * in_rows * in_rows * static_cast<double>(x_.size(1)) +
                        2.0 * r * r * static_cast<double>(p) +
                        static_cast<double>(ks * ks + 1) * r * r;
    plan_.method = trainable(layer.weight)
                       ? choose_conv_norm_method(plan_.rows, d, p, plan_.capture_floats,
                                                 plan_.pixel_flops, policy)
                       : NormMethod::kClosedForm;
    if (plan_.method == NormMethod::kDirectKeep) plan_.kept_floats = static_cast<double>(d * p);
  }

  torch::Tensor squared_norms() override {
    const int64_t p = plan_.out_features;
    torch::Tensor sq = torch::zeros({b_}, g_.options().dtype(torch::kDouble));
    if (trainable(layer_.bias)) {
      bias_rows_ = g_.reshape({b_, k_, p, positions_}).sum({1, 3});
      sq += bias_rows_.pow(2).sum(1, false, torch::kDouble);
    }
    if (!trainable(layer_.weight)) return sq;
    const NormMethod m = plan_.method;
    if (m == NormMethod::kGhost) {
      ghost_norms(sq);
    } else if (m == NormMethod::kGhostPixel) {
      pixel_ghost_norms(sq);
    } else {
      direct_norms(sq, m == NormMethod::kDirectKeep);
    }
    if (m == NormMethod::kDirectKeep) release_capture();
    return sq;
  }

  void add_clipped_sum(const torch::Tensor& c) override {
    if (bias_rows_.defined()) add_weighted_rows(layer_.bias, bias_rows_, c);
    if (trainable(layer_.weight)) {
      if (kept_.defined()) {
        add_weighted_rows(layer_.weight, kept_, c);
      } else {
        // The book-keeping GEMM: the weight gradient of the convolution for the output gradient
        // c ⊙ G, computed by the same kernel as a non-private backward pass (no unfold buffer).
        const torch::Tensor scaled = g_ * row_factors(c, k_, g_).view({-1, 1, 1, 1});
        grad_of(layer_.weight).add_(weight_gradient(scaled, x_));
      }
    }
    release_capture();
    kept_ = bias_rows_ = torch::Tensor();
  }

 private:
  void release_capture() {
    x_ = g_ = torch::Tensor();
    layer_.clear_capture();
  }

  // Weight gradient of the rows [begin, end) (one sample's K rows, or a whole micro-batch for
  // the book-keeping sum): the convolution's own weight-gradient kernel (oneDNN on CPU), which
  // reads the input directly, for any stride and padding, with no unfold buffer.
  torch::Tensor weight_gradient(const torch::Tensor& grad_output,
                                const torch::Tensor& input) const {
    const int64_t st = layer_.options.stride(), pad = layer_.options.padding();
    return std::get<1>(at::convolution_backward(
        grad_output, input, layer_.weight.detach(), c10::nullopt, {st, st}, {pad, pad}, {1, 1},
        /*transposed=*/false, {0, 0}, /*groups=*/1, {false, true, false}));
  }

  // Per-sample weight gradients of the n samples from s (K = 1): [n, C_out, C_in, k, k]. One
  // grouped convolution: sample i becomes channel block i of a one-image batch and the weight is
  // repeated n times (groups = n), so block i of the weight gradient is g_i.
  torch::Tensor grouped_weight_gradients(int64_t s, int64_t n) const {
    const int64_t st = layer_.options.stride(), pad = layer_.options.padding();
    auto side_by_side = [&](const torch::Tensor& t) {
      return t.narrow(0, s, n).reshape({1, n * t.size(1), t.size(2), t.size(3)});
    };
    const torch::Tensor w = layer_.weight.detach();
    const int64_t o = w.size(0), c = w.size(1);
    const torch::Tensor weights = w.unsqueeze(0)
                                      .expand({n, o, c, w.size(2), w.size(3)})
                                      .reshape({n * o, c, w.size(2), w.size(3)});
    const torch::Tensor grads = std::get<1>(at::convolution_backward(
        side_by_side(g_), side_by_side(x_), weights, c10::nullopt, {st, st}, {pad, pad}, {1, 1},
        /*transposed=*/false, {0, 0}, /*groups=*/n, {false, true, false}));
    return grads.view({n, o, c, w.size(2), w.size(3)});
  }

  // kDirect / kDirectKeep: g_i kept in kept_ or reduced at once. K = 1: one grouped call per
  // chunk of samples (policy.grouped_conv). K > 1: one call per sample on its K rows, which is
  // as fast there (bench/README.md) and needs no copy of the rows side by side.
  void direct_norms(torch::Tensor& sq, bool keep) {
    const int64_t d = plan_.in_features, p = plan_.out_features;
    if (keep) kept_ = torch::empty({b_, p, d}, g_.options());
    torch::Tensor norms = torch::empty({b_}, g_.options());
    if (!policy_.grouped_conv || k_ > 1) {
      for (int64_t i = 0; i < b_; ++i) {
        const torch::Tensor gi =
            weight_gradient(g_.narrow(0, i * k_, k_), x_.narrow(0, i * k_, k_));
        if (keep) kept_[i].view_as(gi).copy_(gi);
        norms[i] = gi.pow(2).sum();
      }
    } else {
      // Transient per sample: its gradient and its copy of the weight.
      const int64_t chunk = chunk_samples(2.0 * d * p, g_.element_size(), policy_);
      for (int64_t s = 0; s < b_; s += chunk) {
        const int64_t n = std::min(chunk, b_ - s);
        const torch::Tensor gi = grouped_weight_gradients(s, n).view({n, p, d});
        if (keep) kept_.narrow(0, s, n).copy_(gi);
        norms.narrow(0, s, n).copy_(gi.pow(2).sum(1).sum(1));
      }
    }
    sq += norms.to(torch::kDouble);
  }

  // kGhost: ⟨A_iA_iᵀ, G_iG_iᵀ⟩ with A_i the unfolded input, per chunk of samples. Chosen at low
  // resolution only (R small), where the unfold buffer is small too.
  void ghost_norms(torch::Tensor& sq) {
    const int64_t d = plan_.in_features, p = plan_.out_features, r = plan_.rows;
    const int64_t l = positions_;
    const double transient =
        (k_ > 1 ? 2.0 : 1.0) * r * d + (k_ > 1 ? 1.0 * r * p : 0.0) + 3.0 * r * r;
    const int64_t chunk = chunk_samples(transient, g_.element_size(), policy_);
    const int64_t ks = layer_.options.kernel_size();
    const auto unfold = F::UnfoldFuncOptions({ks, ks})
                            .padding(layer_.options.padding())
                            .stride(layer_.options.stride());
    for (int64_t s = 0; s < b_; s += chunk) {
      const int64_t n = std::min(chunk, b_ - s);
      torch::Tensor cols = F::unfold(x_.narrow(0, s * k_, n * k_), unfold);  // [nK, d, L]
      torch::Tensor grads = g_.narrow(0, s * k_, n * k_).reshape({n * k_, p, l});
      if (k_ > 1) {  // rows of the K draws of a sample side by side: [n, d, K·L], [n, p, K·L]
        cols = cols.view({n, k_, d, l}).permute({0, 2, 1, 3}).reshape({n, d, r});
        grads = grads.view({n, k_, p, l}).permute({0, 2, 1, 3}).reshape({n, p, r});
      }
      sq.narrow(0, s, n) += matrix_sq_norms(cols.transpose(1, 2), grads.transpose(1, 2),
                                            NormMethod::kGhost, torch::Tensor())
                                .to(torch::kDouble);
    }
  }

  // kGhostPixel: ⟨A_iA_iᵀ, G_iG_iᵀ⟩ with A_iA_iᵀ assembled from the Gram of the input pixels
  // (per_sample_grad.h), per chunk of samples. Rows are ordered (draw, position) on both sides.
  void pixel_ghost_norms(torch::Tensor& sq) {
    const int64_t p = plan_.out_features, r = plan_.rows, l = positions_;
    const int64_t c = x_.size(1), h = x_.size(2), w = x_.size(3);
    const int64_t ks = layer_.options.kernel_size(), st = layer_.options.stride();
    const int64_t pad = layer_.options.padding();
    const int64_t hp = h + 2 * pad, wp = w + 2 * pad, ho = g_.size(2), wo = g_.size(3);
    const int64_t in_rows = k_ * h * w, padded_rows = k_ * hp * wp;
    const double transient = static_cast<double>(in_rows) * static_cast<double>(in_rows) +
                             (pad > 0 ? 1.0 : 0.0) * static_cast<double>(padded_rows) *
                                 static_cast<double>(padded_rows) +
                             3.0 * static_cast<double>(r) * static_cast<double>(r) +
                             (k_ > 1 ? static_cast<double>(in_rows * c + r * p) : 0.0);
    const int64_t chunk = chunk_samples(transient, g_.element_size(), policy_);
    // Rows [first, first + step·(count-1)] of a padded spatial dimension.
    auto rows_of = [&](const torch::Tensor& t, int64_t dim, int64_t first, int64_t count) {
      return t.slice(dim, first, first + st * (count - 1) + 1, st);
    };
    for (int64_t s = 0; s < b_; s += chunk) {
      const int64_t n = std::min(chunk, b_ - s);
      // [n, C_in, K·H·W] (a view when K = 1) and its Gram [n, K, H, W, K, H, W].
      const torch::Tensor xs = x_.narrow(0, s * k_, n * k_)
                                   .reshape({n, k_, c, h * w})
                                   .transpose(1, 2)
                                   .reshape({n, c, in_rows});
      const torch::Tensor pixels = torch::bmm(xs.transpose(1, 2), xs).view({n, k_, h, w, k_, h, w});
      torch::Tensor padded = pixels;
      if (pad > 0) {  // padding pixels are zero: so are their rows and columns of the Gram
        padded = torch::zeros({n, k_, hp, wp, k_, hp, wp}, pixels.options());
        padded.slice(2, pad, pad + h)
            .slice(3, pad, pad + w)
            .slice(5, pad, pad + h)
            .slice(6, pad, pad + w)
            .copy_(pixels);
      }
      // Σ over the k×k offsets, separably: columns first (on every padded row), then rows;
      // 2k strided adds instead of k² (3x faster at the UNet's shapes).
      auto box_sum = [&](const torch::Tensor& t, int64_t dim_a, int64_t dim_b, int64_t count) {
        torch::Tensor sum;
        for (int64_t o = 0; o < ks; ++o) {
          const torch::Tensor shifted = rows_of(rows_of(t, dim_a, o, count), dim_b, o, count);
          if (sum.defined()) {
            sum.add_(shifted);
          } else {
            sum = shifted.clone(at::MemoryFormat::Contiguous);  // never a view of `t`
          }
        }
        return sum;
      };
      const torch::Tensor gram_a = box_sum(box_sum(padded, 3, 6, wo), 2, 5, ho);
      const torch::Tensor gs =
          g_.narrow(0, s * k_, n * k_).reshape({n, k_, p, l}).transpose(1, 2).reshape({n, p, r});
      const torch::Tensor gram_g = torch::bmm(gs.transpose(1, 2), gs);
      sq.narrow(0, s, n) += batched_dot(gram_a.view({n, r, r}), gram_g).to(torch::kDouble);
    }
  }

  DPConv2dImpl& layer_;
  int64_t b_, k_;
  NormPolicy policy_;
  int64_t positions_ = 0;
  torch::Tensor x_, g_, kept_, bias_rows_;
};

// ---------------------------------------------------------------------------------------------
// GroupNorm affine: A = x̂ [N, C, *] (or the input, see DPGroupNormImpl::capture_input),
// G [N, C, *]; g_i = (Σ G⊙x̂, Σ G) per channel.
class GroupNormGradient : public LayerGradient {
 public:
  GroupNormGradient(DPGroupNormImpl& layer, int64_t num_samples, int64_t multiplicity,
                    const NormPolicy& policy)
      : layer_(layer), b_(num_samples), k_(multiplicity), policy_(policy) {
    const int64_t c = layer.options.num_channels();
    plan_.in_features = 1;
    plan_.out_features = c;
    plan_.rows = b_ > 0 ? layer.grad_output().numel() / (b_ * c) : 0;
    plan_.method = NormMethod::kClosedForm;
    plan_.kept_floats = 2.0 * static_cast<double>(c);
    plan_.capture_floats = 2.0 * static_cast<double>(plan_.rows * c);
  }

  torch::Tensor squared_norms() override {
    const int64_t c = plan_.out_features;
    const torch::Tensor g = layer_.grad_output().reshape({b_ * k_, c, -1});
    torch::Tensor sq = torch::zeros({b_}, g.options().dtype(torch::kDouble));
    if (trainable(layer_.bias)) {
      bias_rows_ = g.sum(2).view({b_, k_, c}).sum(1);
      sq += bias_rows_.pow(2).sum(1, false, torch::kDouble);
    }
    if (trainable(layer_.weight)) {
      // With capture_input (set by the clipper) x̂ is recomputed from the input chunk-wise.
      const torch::Tensor x = layer_.activation();
      const bool recompute = layer_.capture_input;
      weight_rows_ = torch::empty({b_, c}, g.options());
      const int64_t chunk =
          chunk_samples(2.0 * static_cast<double>(plan_.rows * c), g.element_size(), policy_);
      for (int64_t s = 0; s < b_; s += chunk) {
        const int64_t n = std::min(chunk, b_ - s);
        const torch::Tensor rows = x.narrow(0, s * k_, n * k_);
        const torch::Tensor normalized =
            recompute
                ? torch::group_norm(rows, layer_.options.num_groups(), {}, {}, layer_.options.eps())
                : rows;
        weight_rows_.narrow(0, s, n).copy_(
            (g.narrow(0, s * k_, n * k_) * normalized.reshape({n * k_, c, -1}))
                .sum(2)
                .view({n, k_, c})
                .sum(1));
      }
      sq += weight_rows_.pow(2).sum(1, false, torch::kDouble);
    }
    layer_.clear_capture();
    return sq;
  }

  void add_clipped_sum(const torch::Tensor& c) override {
    if (weight_rows_.defined()) add_weighted_rows(layer_.weight, weight_rows_, c);
    if (bias_rows_.defined()) add_weighted_rows(layer_.bias, bias_rows_, c);
    weight_rows_ = bias_rows_ = torch::Tensor();
  }

 private:
  DPGroupNormImpl& layer_;
  int64_t b_, k_;
  NormPolicy policy_;
  torch::Tensor weight_rows_, bias_rows_;
};

// ---------------------------------------------------------------------------------------------
// Embedding: A = indices [N, *] (one-hot rows over V), G [N, *, D].
class EmbeddingGradient : public LayerGradient {
 public:
  EmbeddingGradient(DPEmbeddingImpl& layer, int64_t num_samples, int64_t multiplicity,
                    const NormPolicy& policy)
      : layer_(layer), b_(num_samples), k_(multiplicity), policy_(policy) {
    const int64_t v = layer.options.num_embeddings(), dim = layer.options.embedding_dim();
    idx_ = layer.activation().to(torch::kLong);
    g_ = layer.grad_output();
    plan_.in_features = v;
    plan_.out_features = dim;
    plan_.rows = b_ > 0 ? idx_.numel() / b_ : 0;
    plan_.capture_floats = static_cast<double>(plan_.rows * (dim + 1));
    // Direct here is a scatter of the rows into [V, D] (~R·D), not a GEMM.
    plan_.direct_flops = static_cast<double>(plan_.rows * dim + v * dim);
    plan_.ghost_flops = 2.0 * static_cast<double>(plan_.rows * plan_.rows * dim);
    NormMethod m = choose_norm_method(plan_.rows, v, dim, plan_.capture_floats, policy);
    if (m == NormMethod::kDirect && policy.force == NormPolicy::Force::kAuto) {
      m = plan_.ghost_flops < plan_.direct_flops ? NormMethod::kGhost : NormMethod::kDirect;
    }
    plan_.method = m;
    if (m == NormMethod::kDirectKeep) plan_.kept_floats = static_cast<double>(v * dim);
  }

  torch::Tensor squared_norms() override {
    const int64_t v = plan_.in_features, dim = plan_.out_features, r = plan_.rows;
    const NormMethod m = plan_.method;
    torch::Tensor sq = torch::zeros({b_}, g_.options().dtype(torch::kDouble));
    const torch::Tensor idx = idx_.reshape({b_, r});
    const torch::Tensor g = g_.reshape({b_, r, dim});
    if (m == NormMethod::kDirectKeep) kept_ = torch::empty({b_, v, dim}, g_.options());
    const double transient = m == NormMethod::kGhost ? 2.0 * r * r : 1.0 * v * dim;
    const int64_t chunk = chunk_samples(transient, g_.element_size(), policy_);
    for (int64_t s = 0; s < b_; s += chunk) {
      const int64_t n = std::min(chunk, b_ - s);
      const torch::Tensor ic = idx.narrow(0, s, n), gc = g.narrow(0, s, n);
      if (m == NormMethod::kGhost) {
        const torch::Tensor same = ic.unsqueeze(2).eq(ic.unsqueeze(1)).to(gc.scalar_type());
        sq.narrow(0, s, n) +=
            batched_dot(torch::bmm(gc, gc.transpose(1, 2)), same).to(torch::kDouble);
        continue;
      }
      torch::Tensor rows = m == NormMethod::kDirectKeep ? kept_.narrow(0, s, n).zero_()
                                                        : torch::zeros({n, v, dim}, g_.options());
      const torch::Tensor flat =
          (ic + torch::arange(n, ic.options()).view({n, 1}) * v).reshape({-1});
      rows.view({n * v, dim}).index_add_(0, flat, gc.reshape({n * r, dim}));
      sq.narrow(0, s, n) += batched_dot(rows, rows).to(torch::kDouble);
    }
    if (m == NormMethod::kDirectKeep) release_capture();
    return sq;
  }

  void add_clipped_sum(const torch::Tensor& c) override {
    const int64_t dim = plan_.out_features;
    if (kept_.defined()) {
      add_weighted_rows(layer_.weight, kept_, c);
    } else {
      const torch::Tensor scaled =
          (g_.reshape({b_, -1}) * c.to(g_.options()).view({-1, 1})).view({-1, dim});
      grad_of(layer_.weight).index_add_(0, idx_.reshape({-1}), scaled);
    }
    release_capture();
    kept_ = torch::Tensor();
  }

 private:
  void release_capture() {
    idx_ = g_ = torch::Tensor();
    layer_.clear_capture();
  }

  DPEmbeddingImpl& layer_;
  int64_t b_, k_;
  NormPolicy policy_;
  torch::Tensor idx_, g_, kept_;
};

// ---------------------------------------------------------------------------------------------
// Parameter: G [N, *shape]; g_i = Σ over the K rows of sample i.
class ParameterGradient : public LayerGradient {
 public:
  ParameterGradient(DPParameterImpl& layer, int64_t num_samples, int64_t multiplicity)
      : layer_(layer), b_(num_samples), k_(multiplicity) {
    plan_.in_features = 1;
    plan_.out_features = layer.value.numel();
    plan_.rows = k_;
    plan_.method = NormMethod::kClosedForm;
    plan_.kept_floats = static_cast<double>(plan_.out_features);
    plan_.capture_floats = static_cast<double>(k_ * plan_.out_features);
  }

  torch::Tensor squared_norms() override {
    rows_ = layer_.grad_output().reshape({b_, k_, -1}).sum(1);
    layer_.clear_capture();
    return rows_.pow(2).sum(1, false, torch::kDouble);
  }

  void add_clipped_sum(const torch::Tensor& c) override {
    add_weighted_rows(layer_.value, rows_, c);
    rows_ = torch::Tensor();
  }

 private:
  DPParameterImpl& layer_;
  int64_t b_, k_;
  torch::Tensor rows_;
};

}  // namespace

std::unique_ptr<LayerGradient> LayerGradient::create(const std::string& name, DPModule& module,
                                                     int64_t num_samples, int64_t multiplicity,
                                                     const NormPolicy& policy) {
  UMBRA_CHECK(has_per_sample_rule(module), "layer '", name, "' (", module.dp_kind(),
              "): no per-sample gradient rule for this DP layer kind; per_sample_grad knows "
              "Linear, Conv2d, GroupNorm, Embedding and Parameter");
  auto* torch_module = dynamic_cast<torch::nn::Module*>(&module);
  UMBRA_ASSERT(torch_module != nullptr, "DP primitive '", name, "' is not a torch module");
  bool any_trainable = false;
  for (const auto& p : torch_module->parameters(/*recurse=*/false)) {
    any_trainable = any_trainable || trainable(p);
  }
  const torch::Tensor& g = module.grad_output();
  if (!any_trainable || !g.defined()) {
    module.clear_capture();
    return nullptr;
  }
  const int64_t rows = num_samples * multiplicity;
  UMBRA_CHECK(g.dim() >= 1 && g.size(0) == rows, "layer '", name, "' (", module.dp_kind(),
              "): expected its output gradient to have leading dimension B·K = ", num_samples, "·",
              multiplicity, " = ", rows, ", got shape ", g.sizes(),
              " (a DP primitive must run exactly once per forward pass, on all B·K rows)");
  const bool needs_activation = dynamic_cast<DPParameterImpl*>(&module) == nullptr;
  UMBRA_CHECK(
      !needs_activation || (module.activation().defined() && module.activation().dim() >= 1 &&
                            module.activation().size(0) == rows),
      "layer '", name, "' (", module.dp_kind(), "): expected a captured activation with ",
      "leading dimension ", rows, ", got ",
      module.activation().defined() ? c10::str(module.activation().sizes()) : std::string("none"));
  std::unique_ptr<LayerGradient> out;
  if (auto* l = dynamic_cast<DPLinearImpl*>(&module)) {
    out = std::make_unique<LinearGradient>(*l, num_samples, multiplicity, policy);
  } else if (auto* c = dynamic_cast<DPConv2dImpl*>(&module)) {
    out = std::make_unique<Conv2dGradient>(*c, num_samples, multiplicity, policy);
  } else if (auto* n = dynamic_cast<DPGroupNormImpl*>(&module)) {
    out = std::make_unique<GroupNormGradient>(*n, num_samples, multiplicity, policy);
  } else if (auto* e = dynamic_cast<DPEmbeddingImpl*>(&module)) {
    out = std::make_unique<EmbeddingGradient>(*e, num_samples, multiplicity, policy);
  } else if (auto* p = dynamic_cast<DPParameterImpl*>(&module)) {
    out = std::make_unique<ParameterGradient>(*p, num_samples, multiplicity);
  }
  UMBRA_ASSERT(out != nullptr, "has_per_sample_rule and create disagree for '", name, "'");
  out->plan_.name = name;
  out->plan_.kind = module.dp_kind();
  return out;
}

}  // namespace umbra
