// The training loop of one stage (DESIGN.md §4, §7, §8), the same for both stages.
//
// Per step on every rank: the rank's slice of the global batch -> per-sample losses ->
// backward of sum(loss)/B_global -> bucketed, overlapped gradient all-reduce -> global-norm
// clipping -> optimizer -> EMA. Collectives are issued in the same order on every rank.
// Rank 0 logs (progress line, metrics.jsonl), evaluates with the EMA weights and writes
// checkpoints to <run>/<stage>/checkpoints/step_<n>; resume restores model, EMA, optimizer and the
// sampler state, so a resumed run continues bit-identically on the same world size and threads.
//
// With privacy enabled (StagePrivacy), each step is a DP-SGD step instead (trainer/dp_step.h):
// the rank's Poisson micro-batches -> per-sample clipped sums -> noise once (rank 0) ->
// all-reduce / q·N -> optimizer -> EMA; the accountant records every step, checkpoints carry its
// history, and the stage stops (saying so) before a step that would exceed the target ε.
//
// A non-finite loss stops the stage with umbra::Error naming the step and the last good
// checkpoint; nothing is written after the loss went bad.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "comm/communicator.h"
#include "monitoring/jsonl_log.h"
#include "monitoring/metrics.h"
#include "trainer/batch_source.h"
#include "trainer/stage_privacy.h"
#include "trainer/stage_task.h"

namespace umbra {

struct StageContext {
  const TrainConfig* cfg = nullptr;
  Communicator* comm = nullptr;
  std::string run_dir;
  Metrics* metrics = nullptr;  // null: no Prometheus metrics
  JsonlLog* jsonl = nullptr;   // rank 0 only; null elsewhere
  bool progress = true;        // rank 0 prints a progress line
};

// Makes the batch source for steps starting at `start`.
using SourceFactory =
    std::function<std::unique_ptr<BatchSource>(const SamplerState& start, int64_t num_steps)>;

struct StageResult {
  int64_t steps = 0;          // steps taken in this call
  int64_t final_step = 0;     // == max_steps when the stage is complete
  std::string checkpoint;     // last checkpoint written or resumed from
  double seconds = 0;         // wall time of this call
  double images_per_s = 0;    // global throughput of this call
  nlohmann::json evaluation;  // figures of the last evaluation
  nlohmann::json privacy;     // StagePrivacy::to_json() after the last step
  bool budget_stop = false;   // stopped before max_steps: the privacy budget is spent
};

class StageRunner {
 public:
  StageRunner(const StageContext& ctx, StageTask& task, const StageTrainOptions& options,
              std::shared_ptr<const Sampler> sampler, SourceFactory make_source,
              nlohmann::json extra_state = nlohmann::json::object(),
              StagePrivacy privacy = StagePrivacy());

  // Trains until options.max_steps, resuming from the newest complete checkpoint of the stage
  // (unless run.resume is "never" or names another checkpoint).
  StageResult run();

  std::string stage_dir() const;
  // Loads the EMA weights of the stage's newest complete checkpoint into `module`; returns the
  // checkpoint's state.json. Throws when there is none.
  static nlohmann::json load_final_weights(const std::string& stage_dir, torch::nn::Module& module);

 private:
  StageContext ctx_;
  StageTask& task_;
  StageTrainOptions opts_;
  std::shared_ptr<const Sampler> sampler_;
  SourceFactory make_source_;
  nlohmann::json extra_state_;
  StagePrivacy privacy_;
};

// Copies `weights` into module's parameters and buffers by name; throws umbra::Error naming
// `what`, the tensor and both shapes on any missing, extra or mismatched tensor.
void load_module_weights(torch::nn::Module& module, const TensorMap& weights,
                         const std::string& what);
TensorMap module_weights(const torch::nn::Module& module);

}  // namespace umbra
