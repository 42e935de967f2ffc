// DP-aware primitive layers: the common interface (DESIGN.md §5 "Fast per-sample clipping").
//
// Every parameterised layer of an Umbra model is one of the DP primitives (DPLinear, DPConv2d,
// DPGroupNorm, DPEmbedding, DPParameter). Each is a LibTorch module (FooImpl + TORCH_MODULE) that
// also derives from DPModule. Outside DP mode (the default) a primitive computes exactly what the
// LibTorch layer of the same name computes, and autograd fills parameter .grad as usual.
//
// In DP mode (set_dp_mode(true)) and with grad mode enabled, a primitive's forward:
//   - calls its functional op on detached parameters, so autograd builds only the activation-
//     gradient graph: parameters get NO .grad from backward();
//   - keeps its per-layer activation A (activation(), detached; what A is, and its shape, is stated
//     by each primitive's header) and registers a hook on its output that stores the gradient of
//     the loss w.r.t. the output, B (grad_output(), same shape as the output);
//   - if nothing upstream requires grad (e.g. the first layer, or an embedding), makes its output a
//     leaf that requires grad so that the hook still fires; the model input need not require grad.
// From (A, B) the privacy layer forms per-sample gradient norms and the clipped gradient sum.
// Each primitive must run at most once per forward pass in DP mode; a second call overwrites the
// capture of the first. Under torch::NoGradGuard nothing is captured.
//
// Thread-safety: a module and its capture belong to one thread at a time, like any LibTorch module.
// Lifetime: the output hook refers to the module; the module must outlive the backward pass.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace umbra {

class DPModule {
 public:
  virtual ~DPModule() = default;

  // Name of the layer kind ("Linear", "Conv2d", ...), for messages.
  virtual const char* dp_kind() const = 0;

  void set_dp_mode(bool enabled);
  bool dp_mode() const { return dp_mode_; }

  // The capture of the last DP-mode forward/backward; undefined tensors before.
  const torch::Tensor& activation() const { return activation_; }
  const torch::Tensor& grad_output() const { return grad_output_; }
  void clear_capture();

  // Called from the output-gradient hook right after grad_output() is stored (DP mode only), on
  // the thread that runs the backward pass. The clipping engine (privacy/clipping.h) uses it to
  // process a layer as soon as its gradient exists and release the capture during backward.
  void set_grad_callback(std::function<void(DPModule&)> callback) {
    grad_callback_ = std::move(callback);
  }
  bool has_grad_callback() const { return static_cast<bool>(grad_callback_); }

 protected:
  // The parameter as the functional op should see it: detached in DP mode.
  torch::Tensor param_for_forward(const torch::Tensor& p) const {
    return dp_mode_ ? p.detach() : p;
  }
  // In DP mode with grad enabled: stores `activation` (detached) and hooks `output`; returns the
  // tensor the layer must return (possibly `output` turned into a grad-requiring leaf).
  torch::Tensor capture(const torch::Tensor& activation, torch::Tensor output);

 private:
  bool dp_mode_ = false;
  torch::Tensor activation_;
  torch::Tensor grad_output_;
  std::function<void(DPModule&)> grad_callback_;
};

// Switches every DP primitive in `model` (and its submodules) in or out of DP mode.
void set_dp_mode(torch::nn::Module& model, bool enabled);

// Throws umbra::Error naming every submodule (dotted path and LibTorch type) of `model` that owns
// parameters but is not a DP primitive, and every BatchNorm layer even without affine parameters
// (it mixes the samples of a batch; DESIGN.md §6). Returns normally when the model is DP-ready.
void check_dp_compatible(const torch::nn::Module& model);

// The DP primitives found in `model` with their dotted paths, in registration order.
std::vector<std::pair<std::string, DPModule*>> dp_primitives(torch::nn::Module& model);

}  // namespace umbra
