#include "privacy/dp_module.h"

#include <sstream>

#include "core/check.h"

namespace umbra {

void DPModule::set_dp_mode(bool enabled) {
  dp_mode_ = enabled;
  if (!enabled) clear_capture();
}

void DPModule::clear_capture() {
  activation_ = torch::Tensor();
  grad_output_ = torch::Tensor();
}

torch::Tensor DPModule::capture(const torch::Tensor& activation, torch::Tensor output) {
  if (!dp_mode_ || !torch::GradMode::is_enabled()) return output;
  activation_ = activation.defined() ? activation.detach() : torch::Tensor();
  grad_output_ = torch::Tensor();
  // With detached parameters and an input that needs no gradient, the output is a leaf that does
  // not require grad; making it require grad is what lets the hook below see its gradient.
  if (!output.requires_grad()) output.requires_grad_(true);
  output.register_hook([this](const torch::Tensor& grad) {
    grad_output_ = grad;
    if (grad_callback_) grad_callback_(*this);
  });
  return output;
}

void set_dp_mode(torch::nn::Module& model, bool enabled) {
  for (auto& [path, primitive] : dp_primitives(model)) primitive->set_dp_mode(enabled);
}

namespace {

bool is_batch_norm(const torch::nn::Module& m) {
  return m.name().find("BatchNorm") != std::string::npos;
}

// Why `m` cannot be part of a DP model, or "" when it can.
std::string refusal(const torch::nn::Module& m) {
  if (is_batch_norm(m)) {
    return "BatchNorm mixes the samples of a batch, so per-sample gradients and the privacy unit "
           "are lost (DESIGN.md §6); use DPGroupNorm";
  }
  if (dynamic_cast<const DPModule*>(&m) != nullptr) return "";
  if (!m.named_parameters(/*recurse=*/false).is_empty()) {
    return "owns parameters but is not a DP-aware primitive (privacy/dp_*.h), so its per-sample "
           "gradients cannot be computed";
  }
  return "";
}

}  // namespace

void check_dp_compatible(const torch::nn::Module& model) {
  std::ostringstream problems;
  int count = 0;
  auto check_one = [&](const std::string& path, const torch::nn::Module& m) {
    const std::string why = refusal(m);
    if (why.empty()) return;
    problems << (count++ ? "; " : "") << "submodule '" << path << "' (" << m.name() << ") " << why;
  };
  check_one("<root>", model);
  for (const auto& item : model.named_modules("", /*include_self=*/false)) {
    check_one(item.key(), *item.value());
  }
  UMBRA_CHECK(count == 0, "model ", model.name(), " is not DP-compatible: ", problems.str());
}

std::vector<std::pair<std::string, DPModule*>> dp_primitives(torch::nn::Module& model) {
  std::vector<std::pair<std::string, DPModule*>> out;
  if (auto* self = dynamic_cast<DPModule*>(&model)) out.emplace_back("", self);
  for (const auto& item : model.named_modules("", /*include_self=*/false)) {
    if (auto* p = dynamic_cast<DPModule*>(item.value().get())) out.emplace_back(item.key(), p);
  }
  return out;
}

}  // namespace umbra
