#include "privacy/clipping.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <sstream>
#include <utility>

#include "core/check.h"
#include "privacy/dp_group_norm.h"

namespace umbra {

namespace {

constexpr double kNormEpsilon = 1e-6;  // c_i = min(1, C / (‖g_i‖ + 1e-6)), as in Opacus

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

bool has_trainable_parameter(DPModule* module) {
  auto* m = dynamic_cast<torch::nn::Module*>(module);
  UMBRA_ASSERT(m != nullptr, "a DP primitive is not a torch module");
  for (const auto& p : m->parameters(/*recurse=*/false)) {
    if (p.requires_grad()) return true;
  }
  return false;
}

torch::Tensor clip_factors(const torch::Tensor& norms, double threshold) {
  return torch::clamp_max(threshold / (norms + kNormEpsilon), 1.0);
}

}  // namespace

PerSampleClipper::PerSampleClipper(torch::nn::Module& model, ClippingOptions options)
    : options_(std::move(options)) {
  UMBRA_CHECK(options_.max_grad_norm > 0.0 && !std::isnan(options_.max_grad_norm),
              "privacy.max_grad_norm: expected C > 0, got ", options_.max_grad_norm);
  UMBRA_CHECK(options_.noise_multiplicity >= 1, "privacy.noise_multiplicity: expected K >= 1, got ",
              options_.noise_multiplicity);
  check_dp_compatible(model);
  primitives_ = dp_primitives(model);
  for (const auto& [name, module] : primitives_) {
    UMBRA_CHECK(has_per_sample_rule(*module), "model ", model.name(), ": layer '", name, "' (",
                module->dp_kind(), ") has no per-sample gradient rule, so DP-SGD cannot clip it");
    if (!has_trainable_parameter(module)) continue;
    layer_names_.push_back(name);
    layers_.push_back(module);
  }
  if (options_.per_layer) {
    const size_t l = layers_.size();
    if (options_.layer_max_grad_norms.empty()) {
      thresholds_.assign(l, options_.max_grad_norm / std::sqrt(static_cast<double>(l)));
    } else {
      UMBRA_CHECK(options_.layer_max_grad_norms.size() == l, "clipping: expected ", l,
                  " per-layer thresholds (one per DP layer), got ",
                  options_.layer_max_grad_norms.size());
      for (size_t i = 0; i < l; ++i) {
        UMBRA_CHECK(options_.layer_max_grad_norms[i] > 0.0, "clipping: threshold of layer '",
                    layer_names_[i], "' must be > 0, got ", options_.layer_max_grad_norms[i]);
      }
      thresholds_ = options_.layer_max_grad_norms;
    }
  } else {
    UMBRA_CHECK(options_.layer_max_grad_norms.empty(),
                "clipping: per-layer thresholds were given but per-layer clipping is off");
  }
  // Two live clippers on one model would take each other's callbacks: the first would then clip
  // nothing, or call into a destroyed clipper. Every check is done before the model is touched,
  // so a constructor that throws leaves no callback pointing at it.
  for (const auto& [name, module] : primitives_) {
    UMBRA_CHECK(!module->has_grad_callback(), "model ", model.name(), ": layer '", name,
                "' already belongs to a live per-sample clipper; one clipper per model at a time");
  }
  // GroupNorms capture their input (free: autograd holds it) instead of x̂; captures made before
  // this switch are dropped so that none is misread.
  for (auto& [name, module] : primitives_) {
    if (auto* norm = dynamic_cast<DPGroupNormImpl*>(module)) norm->capture_input = true;
    module->clear_capture();
  }
  pending_.resize(layers_.size());
  for (auto& [name, module] : primitives_) {
    module->set_grad_callback([](DPModule& m) { m.clear_capture(); });
  }
  for (size_t l = 0; l < layers_.size(); ++l) {
    layers_[l]->set_grad_callback(
        [this, l](DPModule&) { on_grad_output(static_cast<int64_t>(l)); });
  }
}

double PerSampleClipper::sensitivity() const {
  if (!options_.per_layer) return options_.max_grad_norm;
  double sum = 0.0;
  for (double c : thresholds_) sum += c * c;
  return std::sqrt(sum);
}

PerSampleClipper::~PerSampleClipper() {
  for (auto& item : primitives_) item.second->set_grad_callback(nullptr);
}

void PerSampleClipper::on_grad_output(int64_t layer) {
  // Runs inside the backward pass: never throws for an inconsistent capture, which is left for
  // clip_and_accumulate to report with the micro-batch size it is given.
  DPModule& module = *layers_[layer];
  const torch::Tensor& g = module.grad_output();
  const int64_t k = options_.noise_multiplicity;
  if (!g.defined() || g.dim() < 1 || g.size(0) % k != 0 || pending_[layer].work) return;
  if (pending_samples_ < 0) pending_samples_ = g.size(0) / k;
  if (g.size(0) != pending_samples_ * k) return;
  process_layer(layer, pending_samples_);
}

void PerSampleClipper::process_layer(int64_t layer, int64_t num_samples) {
  torch::NoGradGuard no_grad;
  Pending& p = pending_[layer];
  p.num_samples = num_samples;
  p.work = LayerGradient::create(layer_names_[layer], *layers_[layer], num_samples,
                                 options_.noise_multiplicity, options_.policy);
  if (!p.work) return;
  const auto t0 = Clock::now();
  p.squared_norms = p.work->squared_norms().to(torch::kCPU);
  p.norm_seconds = seconds_since(t0);
}

void PerSampleClipper::reset_pending() {
  for (auto& p : pending_) p = Pending{};
  pending_samples_ = -1;
}

ClipStats PerSampleClipper::clip_and_accumulate(int64_t num_samples) {
  UMBRA_CHECK(num_samples >= 0, "clip_and_accumulate: negative micro-batch size ", num_samples);
  torch::NoGradGuard no_grad;
  ClipStats stats;
  stats.num_samples = num_samples;
  last_plan_.clear();
  const int64_t num_layers = static_cast<int64_t>(layers_.size());
  // Whatever happens below, the next micro-batch starts from a clean state.
  struct Cleanup {
    PerSampleClipper* self;
    ~Cleanup() {
      self->reset_pending();
      for (auto& item : self->primitives_) item.second->clear_capture();
    }
  } cleanup{this};
  if (num_samples == 0) {
    stats.norms = torch::zeros({0}, torch::kDouble);
    stats.layer_norms = torch::zeros({0, num_layers}, torch::kDouble);
    return stats;
  }

  torch::Tensor layer_sq = torch::zeros({num_samples, num_layers}, torch::kDouble);
  std::vector<int64_t> plan_index(num_layers, -1);
  for (int64_t l = 0; l < num_layers; ++l) {
    Pending& p = pending_[l];
    if (p.num_samples < 0) {
      process_layer(l, num_samples);  // no gradient callback ran for this layer
    } else {
      UMBRA_CHECK(p.num_samples == num_samples, "layer '", layer_names_[l], "' (",
                  layers_[l]->dp_kind(), "): its output gradient holds ",
                  p.num_samples * options_.noise_multiplicity, " rows = ", p.num_samples,
                  " samples x K = ", options_.noise_multiplicity,
                  ", but clip_and_accumulate was told ", num_samples,
                  " samples (a DP primitive must run exactly once per forward pass, on all B·K "
                  "rows)");
    }
    if (!p.work) continue;
    layer_sq.select(1, l).copy_(p.squared_norms);
    plan_index[l] = static_cast<int64_t>(last_plan_.size());
    last_plan_.push_back(p.work->plan());
    last_plan_.back().norm_seconds = p.norm_seconds;
  }
  UMBRA_CHECK(!last_plan_.empty(),
              "clip_and_accumulate: no DP layer holds a gradient for this micro-batch of ",
              num_samples,
              " samples; construct the clipper before the DP-mode forward pass and "
              "call this after backward()");
  stats.layer_norms = layer_sq.sqrt();
  stats.norms = layer_sq.sum(1).sqrt();
  if (!torch::isfinite(stats.norms).all().item<bool>()) {
    std::ostringstream bad;
    for (int64_t l = 0; l < num_layers; ++l) {
      if (!torch::isfinite(layer_sq.select(1, l)).all().item<bool>()) {
        bad << (bad.tellp() > 0 ? ", " : "") << layer_names_[l];
      }
    }
    UMBRA_FAIL("per-sample clipping: non-finite per-sample gradient norm in layer(s) ", bad.str(),
               " (the loss or the model diverged)");
  }

  torch::Tensor clipped = torch::zeros({num_samples}, torch::kBool);
  for (int64_t l = 0; l < num_layers; ++l) {
    const torch::Tensor c = options_.per_layer
                                ? clip_factors(stats.layer_norms.select(1, l), thresholds_[l])
                                : clip_factors(stats.norms, options_.max_grad_norm);
    clipped |= c < 1.0;
    if (!pending_[l].work) continue;
    const auto t0 = Clock::now();
    pending_[l].work->add_clipped_sum(c);
    pending_[l].work.reset();
    last_plan_[plan_index[l]].sum_seconds = seconds_since(t0);
  }
  stats.num_clipped = clipped.sum().item<int64_t>();
  return stats;
}

std::string format_plan(const std::vector<LayerPlan>& plan) {
  std::ostringstream out;
  char line[512];
  std::snprintf(line, sizeof line, "%-52s %-9s %6s %6s %5s  %-11s %10s %10s %10s %9s %8s %8s\n",
                "layer", "kind", "R", "d", "p", "method", "direct_MF", "ghost_MF", "pixel_MF",
                "kept_kB", "norm_ms", "sum_ms");
  out << line;
  for (const LayerPlan& p : plan) {
    std::snprintf(line, sizeof line,
                  "%-52s %-9s %6lld %6lld %5lld  %-11s %10.2f %10.2f %10.2f %9.1f %8.1f %8.1f\n",
                  p.name.c_str(), p.kind.c_str(), static_cast<long long>(p.rows),
                  static_cast<long long>(p.in_features), static_cast<long long>(p.out_features),
                  to_string(p.method), p.direct_flops / 1e6, p.ghost_flops / 1e6,
                  p.pixel_flops / 1e6, p.kept_floats * 4.0 / 1024.0, p.norm_seconds * 1e3,
                  p.sum_seconds * 1e3);
    out << line;
  }
  return out.str();
}

}  // namespace umbra
