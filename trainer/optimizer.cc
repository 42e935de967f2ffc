#include "trainer/optimizer.h"

#include <cmath>

#include "core/check.h"

namespace umbra {

double learning_rate(const OptimizerOptions& o, int64_t step, int64_t max_steps) {
  if (o.warmup_steps > 0 && step < o.warmup_steps) {
    return o.lr * static_cast<double>(step + 1) / static_cast<double>(o.warmup_steps);
  }
  const double span = static_cast<double>(std::max<int64_t>(1, max_steps - o.warmup_steps));
  const double progress = std::min(1.0, static_cast<double>(step - o.warmup_steps) / span);
  const double cosine = 0.5 * (1.0 + std::cos(M_PI * progress));
  return o.lr * (o.min_lr_ratio + (1.0 - o.min_lr_ratio) * cosine);
}

Optimizer::Optimizer(std::vector<std::pair<std::string, torch::Tensor>> named_params,
                     OptimizerOptions options)
    : params_(std::move(named_params)), o_(std::move(options)) {
  for (const auto& p : params_) {
    m_.push_back(torch::zeros_like(p.second));
    if (o_.name == "adamw") v_.push_back(torch::zeros_like(p.second));
  }
}

void Optimizer::zero_grad() {
  for (auto& p : params_) {
    auto& g = p.second.mutable_grad();
    if (g.defined()) g.zero_();
  }
}

void Optimizer::step(double lr) {
  torch::NoGradGuard no_grad;
  ++step_;
  const double bc1 = 1.0 - std::pow(o_.beta1, static_cast<double>(step_));
  const double bc2 = 1.0 - std::pow(o_.beta2, static_cast<double>(step_));
  for (size_t i = 0; i < params_.size(); ++i) {
    torch::Tensor& p = params_[i].second;
    torch::Tensor g = p.grad().defined() ? p.grad() : torch::zeros_like(p);
    if (o_.name == "adamw") {
      if (o_.weight_decay > 0) p.mul_(1.0 - lr * o_.weight_decay);
      m_[i].mul_(o_.beta1).add_(g, 1.0 - o_.beta1);
      v_[i].mul_(o_.beta2).addcmul_(g, g, 1.0 - o_.beta2);
      const torch::Tensor denom = (v_[i] / bc2).sqrt_().add_(o_.eps);
      p.addcdiv_(m_[i], denom, -lr / bc1);
    } else {
      if (o_.weight_decay > 0) g = g + o_.weight_decay * p;
      m_[i].mul_(o_.momentum).add_(g);
      p.add_(m_[i], -lr);
    }
  }
}

TensorMap Optimizer::state() const {
  TensorMap s;
  s["step"] = torch::tensor({step_}, torch::kInt64);
  for (size_t i = 0; i < params_.size(); ++i) {
    s["m." + params_[i].first] = m_[i];
    if (!v_.empty()) s["v." + params_[i].first] = v_[i];
  }
  return s;
}

void Optimizer::load_state(const TensorMap& state) {
  auto get = [&](const std::string& key, const torch::Tensor& like) {
    const auto it = state.find(key);
    UMBRA_CHECK(it != state.end(), "optimizer state: missing '", key, "'");
    UMBRA_CHECK(it->second.sizes() == like.sizes(), "optimizer state: '", key, "' has shape ",
                it->second.sizes(), ", the model expects ", like.sizes());
    return it->second.to(like.dtype());
  };
  const auto it = state.find("step");
  UMBRA_CHECK(it != state.end() && it->second.numel() == 1, "optimizer state: missing 'step'");
  step_ = it->second.item<int64_t>();
  for (size_t i = 0; i < params_.size(); ++i) {
    m_[i].copy_(get("m." + params_[i].first, m_[i]));
    if (!v_.empty()) v_[i].copy_(get("v." + params_[i].first, v_[i]));
  }
}

Ema::Ema(const std::vector<std::pair<std::string, torch::Tensor>>& named_params, double decay)
    : decay_(decay) {
  for (const auto& p : named_params) shadow_[p.first] = p.second.detach().clone();
}

void Ema::update(const std::vector<std::pair<std::string, torch::Tensor>>& named_params) {
  torch::NoGradGuard no_grad;
  for (const auto& p : named_params) {
    shadow_.at(p.first).mul_(decay_).add_(p.second.detach(), 1.0 - decay_);
  }
}

void Ema::load(const TensorMap& weights) {
  for (auto& kv : shadow_) {
    const auto it = weights.find(kv.first);
    UMBRA_CHECK(it != weights.end(), "EMA weights: missing '", kv.first, "'");
    UMBRA_CHECK(it->second.sizes() == kv.second.sizes(), "EMA weights: '", kv.first, "' has shape ",
                it->second.sizes(), ", the model expects ", kv.second.sizes());
    kv.second.copy_(it->second);
  }
}

double clip_global_norm(const std::vector<std::pair<std::string, torch::Tensor>>& params,
                        double max_norm) {
  torch::NoGradGuard no_grad;
  double sq = 0;
  for (const auto& p : params) {
    if (p.second.grad().defined()) sq += p.second.grad().pow(2).sum().item<double>();
  }
  const double norm = std::sqrt(sq);
  if (max_norm > 0 && norm > max_norm) {
    const double scale = max_norm / (norm + 1e-6);
    for (const auto& p : params) {
      if (p.second.grad().defined()) p.second.mutable_grad().mul_(scale);
    }
  }
  return norm;
}

}  // namespace umbra
