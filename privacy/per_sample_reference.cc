#include "privacy/per_sample_reference.h"

#include <cmath>
#include <map>
#include <string>
#include <utility>

#include "core/check.h"

namespace umbra {

ReferenceClipResult reference_clipped_sum(
    torch::nn::Module& model, const PerSampleClipper& clipper, int64_t num_samples,
    const std::function<torch::Tensor(int64_t)>& sample_loss) {
  const std::vector<torch::Tensor> params = model.parameters();
  std::map<const void*, size_t> index_of;
  for (size_t j = 0; j < params.size(); ++j) index_of[params[j].unsafeGetTensorImpl()] = j;

  // Parameters of each clipper layer, as indices into `params`.
  std::map<std::string, DPModule*> by_name;
  std::vector<std::pair<DPModule*, bool>> modes;
  for (auto& [name, module] : dp_primitives(model)) {
    by_name[name] = module;
    modes.emplace_back(module, module->dp_mode());
  }
  const auto& names = clipper.layer_names();
  const int64_t num_layers = static_cast<int64_t>(names.size());
  std::vector<std::vector<size_t>> layer_params(num_layers);
  std::vector<torch::Tensor> trainable;
  std::vector<size_t> trainable_index;
  for (int64_t l = 0; l < num_layers; ++l) {
    auto it = by_name.find(names[l]);
    UMBRA_ASSERT(it != by_name.end(), "reference: layer '", names[l], "' not in the model");
    auto* m = dynamic_cast<torch::nn::Module*>(it->second);
    for (const auto& p : m->parameters(/*recurse=*/false)) {
      if (!p.requires_grad()) continue;
      layer_params[l].push_back(trainable.size());
      trainable.push_back(p);
      trainable_index.push_back(index_of.at(p.unsafeGetTensorImpl()));
    }
  }

  ReferenceClipResult out;
  out.norms = torch::zeros({num_samples}, torch::kDouble);
  out.layer_norms = torch::zeros({num_samples, num_layers}, torch::kDouble);
  for (const auto& p : params) out.clipped_sum.push_back(torch::zeros_like(p, torch::kDouble));
  const ClippingOptions& opt = clipper.options();

  for (auto& [module, mode] : modes) module->set_dp_mode(false);
  try {
    for (int64_t i = 0; i < num_samples; ++i) {
      const torch::Tensor loss = sample_loss(i).sum();
      std::vector<torch::Tensor> grads =
          torch::autograd::grad({loss}, trainable, {}, /*retain_graph=*/false,
                                /*create_graph=*/false, /*allow_unused=*/true);
      std::vector<double> layer_sq(num_layers, 0.0);
      for (int64_t l = 0; l < num_layers; ++l) {
        for (size_t t : layer_params[l]) {
          if (!grads[t].defined()) {
            grads[t] = torch::zeros_like(trainable[t], torch::kDouble);
            continue;
          }
          grads[t] = grads[t].to(torch::kDouble);
          layer_sq[l] += grads[t].pow(2).sum().item<double>();
        }
      }
      double total = 0.0;
      for (int64_t l = 0; l < num_layers; ++l) {
        total += layer_sq[l];
        out.layer_norms[i][l] = std::sqrt(layer_sq[l]);
      }
      out.norms[i] = std::sqrt(total);
      bool clipped = false;
      for (int64_t l = 0; l < num_layers; ++l) {
        const double norm = opt.per_layer ? std::sqrt(layer_sq[l]) : std::sqrt(total);
        const double threshold = opt.per_layer ? clipper.layer_thresholds()[l] : opt.max_grad_norm;
        const double c = std::min(1.0, threshold / (norm + 1e-6));
        clipped = clipped || c < 1.0;
        for (size_t t : layer_params[l]) out.clipped_sum[trainable_index[t]].add_(grads[t], c);
      }
      out.num_clipped += clipped ? 1 : 0;
    }
  } catch (...) {
    for (auto& [module, mode] : modes) module->set_dp_mode(mode);
    throw;
  }
  for (auto& [module, mode] : modes) module->set_dp_mode(mode);
  return out;
}

}  // namespace umbra
