// AdamW and SGD(momentum) over a fixed list of parameters, with state that round-trips through
// a TensorMap (checkpoints) bit-exactly. Our own rather than torch::optim so the state layout is
// explicit, the DP step can hand in already-noised gradients, and resume is bit-identical.
//
// step() reads each parameter's .grad(); an undefined grad counts as zero, so every parameter
// sees the same number of moment updates (DP-SGD relies on this). Not thread-safe.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/options.h"
#include "core/safetensors.h"

namespace umbra {

struct OptimizerOptions {
  std::string name = "adamw";
  double lr = 2e-4;
  double weight_decay = 0.0;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double momentum = 0.9;  // SGD only
  int64_t warmup_steps = 100;
  double min_lr_ratio = 0.1;  // cosine decays to lr * min_lr_ratio at max_steps

  template <class V>
  void visit(V& v) {
    v("name", name, "Optimizer", OneOf{"adamw", "sgd"});
    v("lr", lr, "Peak learning rate", AtLeast{0});
    v("weight_decay", weight_decay, "Decoupled weight decay (AdamW) / L2 (SGD)", AtLeast{0});
    v("beta1", beta1, "Adam beta1", InRange{0, 1});
    v("beta2", beta2, "Adam beta2", InRange{0, 1});
    v("eps", eps, "Adam epsilon", AtLeast{0});
    v("momentum", momentum, "SGD momentum", InRange{0, 1});
    v("warmup_steps", warmup_steps, "Linear warm-up steps", AtLeast{0});
    v("min_lr_ratio", min_lr_ratio, "Final LR of the cosine decay as a fraction of lr",
      InRange{0, 1});
  }
};

// Warm-up then cosine decay to lr * min_lr_ratio at max_steps (step counts from 0).
double learning_rate(const OptimizerOptions& o, int64_t step, int64_t max_steps);

// Global L2 norm of the parameters' gradients; when max_norm > 0 and the norm exceeds it, scales
// every gradient by max_norm / (norm + 1e-6). Gradient-norm clipping of the non-private step.
double clip_global_norm(const std::vector<std::pair<std::string, torch::Tensor>>& params,
                        double max_norm);

class Optimizer {
 public:
  Optimizer(std::vector<std::pair<std::string, torch::Tensor>> named_params,
            OptimizerOptions options);
  void zero_grad();
  void step(double lr);
  int64_t steps_taken() const { return step_; }

  TensorMap state() const;
  // Throws umbra::Error naming the first missing/mismatched entry.
  void load_state(const TensorMap& state);

 private:
  std::vector<std::pair<std::string, torch::Tensor>> params_;
  std::vector<torch::Tensor> m_, v_;
  OptimizerOptions o_;
  int64_t step_ = 0;
};

// Exponential moving average of parameters, used for sampling (DESIGN.md §6).
class Ema {
 public:
  Ema(const std::vector<std::pair<std::string, torch::Tensor>>& named_params, double decay);
  void update(const std::vector<std::pair<std::string, torch::Tensor>>& named_params);
  const TensorMap& weights() const { return shadow_; }
  void load(const TensorMap& weights);

 private:
  TensorMap shadow_;
  double decay_;
};

}  // namespace umbra
