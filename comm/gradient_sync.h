// Bucketed, overlapped gradient all-reduce (DESIGN.md §7).
//
// Parameters are laid out in flat buckets in REVERSE registration order (backward produces the
// last layers' gradients first), the first bucket small (comm.first_bucket_mb) so communication
// starts early, the others comm.bucket_mb; a bucket holds one dtype and device, and a parameter
// larger than a bucket gets a bucket of its own. A gradient is copied into its bucket slot when it
// is handed in; a bucket's asynchronous SUM all-reduce is issued as soon as all its slots are
// filled and all earlier buckets are issued, so buckets are issued in index order on every rank
// whatever order the gradients arrive in (the same collective order everywhere), and the
// all-reduce of early buckets overlaps the rest of the backward pass. finish() waits for the
// buckets in order and writes param.grad = (sum over ranks) / normaliser for every parameter.
//
// Two ways to hand gradients in:
// - autograd hooks (use_hooks = true): param.register_hook fires once per backward with the
//   parameter's gradient *before* it is accumulated into .grad; the slot receives
//   hook gradient + existing .grad, i.e. exactly what .grad is about to become. For gradient
//   accumulation, set_enabled(false) for all micro-batches but the last.
// - mark_ready(index, gradient) by callers that compute gradients themselves (the DP engine: it
//   hands in clipped, summed per-parameter gradients, with the noise already added on rank 0,
//   and finish() divides by the expected batch size).
// Parameters that received no gradient on this rank in a step contribute zeros (their .grad is
// then set too, to what the other ranks contributed / normaliser).
//
// Averaging over the global batch: the caller passes the normaliser (usually the global number of
// samples, or q·N under DP), because ranks may hold different numbers of samples. With per-rank
// losses summed over their samples, finish(global_batch) gives the gradient of the global mean.
//
// Construction is collective (the bucket layout is compared across ranks). finish() must be
// called the same number of times on every rank. Hooks and mark_ready may run on any thread
// (a mutex guards the state); the object must outlive the backward passes it is hooked into and
// is neither copyable nor movable (the hooks point at it).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "comm/comm_options.h"
#include "comm/communicator.h"

namespace umbra {

struct GradientSyncOptions {
  int64_t bucket_bytes = int64_t{25} << 20;
  int64_t first_bucket_bytes = int64_t{1} << 20;
  bool use_hooks = true;

  // comm.bucket_mb and comm.first_bucket_mb (MiB).
  static GradientSyncOptions from(const CommOptions& options);
};

// One bucket of the layout: a flat buffer of `numel` elements holding params[i] at offsets[i].
struct GradientBucket {
  torch::ScalarType dtype = torch::kFloat32;
  torch::Device device = torch::kCPU;
  std::vector<size_t> params;    // indices into the parameter list, in reverse registration order
  std::vector<int64_t> offsets;  // element offset of each in the bucket
  int64_t numel = 0;
};

// The layout rule above, as a pure function of the parameters (in registration order).
std::vector<GradientBucket> plan_gradient_buckets(const std::vector<torch::Tensor>& params,
                                                  int64_t first_bucket_bytes, int64_t bucket_bytes);

class GradientSync {
 public:
  // named_parameters: in registration order (module->named_parameters()); only parameters that
  // require grad are synchronised. `comm` must outlive this object.
  GradientSync(Communicator& comm,
               const std::vector<std::pair<std::string, torch::Tensor>>& named_parameters,
               const GradientSyncOptions& options = {});
  GradientSync(Communicator& comm, const torch::OrderedDict<std::string, torch::Tensor>& parameters,
               const GradientSyncOptions& options = {});
  ~GradientSync();
  GradientSync(const GradientSync&) = delete;
  GradientSync& operator=(const GradientSync&) = delete;

  // While disabled the hooks ignore gradients (which accumulate in .grad as usual).
  void set_enabled(bool enabled);

  // The complete local gradient of synchronised parameter `index` for this step (shape of the
  // parameter; .grad is not read). At most once per parameter per step; any thread.
  void mark_ready(size_t index, const torch::Tensor& gradient);

  // Issues the buckets not issued yet, waits for all, sets .grad = sum over ranks / normaliser
  // for every synchronised parameter, and resets for the next step. normaliser > 0.
  void finish(double normaliser);

  size_t num_parameters() const { return params_.size(); }
  const std::string& name(size_t index) const { return names_[index]; }
  // Position of a parameter among the synchronised ones; throws umbra::Error if absent.
  size_t index_of(const std::string& name) const;
  const std::vector<GradientBucket>& buckets() const { return buckets_; }
  // Seconds the last finish() spent waiting for all-reduces (not hidden by the backward pass).
  double last_wait_seconds() const { return last_wait_s_; }

 private:
  void on_hook(size_t index, const torch::Tensor& gradient);
  // Copies into the slot (adding `existing` when defined) and issues ready buckets. Locked.
  void fill_slot(size_t index, const torch::Tensor& gradient, const torch::Tensor& existing);
  void issue_ready_buckets();  // locked
  void issue(size_t bucket);   // locked
  void reset();                // locked

  Communicator& comm_;
  std::vector<std::string> names_;
  std::vector<torch::Tensor> params_;
  std::vector<GradientBucket> buckets_;
  std::vector<std::pair<size_t, size_t>> slot_of_;  // param -> (bucket, position in bucket)
  std::vector<torch::Tensor> buffers_;              // one flat buffer per bucket
  std::vector<unsigned> hook_handles_;

  std::mutex mutex_;
  bool enabled_ = true;
  std::vector<bool> ready_;
  std::vector<size_t> missing_;  // per bucket: slots not yet filled
  std::vector<WorkHandle> work_;
  size_t next_issue_ = 0;
  double last_wait_s_ = 0;
};

}  // namespace umbra
