#include "monitoring/training_metrics.h"

#include <torch/version.h>

#include "core/check.h"

#ifndef UMBRA_VERSION
#error "UMBRA_VERSION is defined by monitoring/CMakeLists.txt"
#endif

namespace umbra {

const char* step_phase_name(StepPhase phase) {
  switch (phase) {
    case StepPhase::kData:
      return "data";
    case StepPhase::kForward:
      return "forward";
    case StepPhase::kBackward:
      return "backward";
    case StepPhase::kClip:
      return "clip";
    case StepPhase::kAllreduce:
      return "allreduce";
    case StepPhase::kOptimizer:
      return "optimizer";
  }
  UMBRA_ASSERT(false, "unknown StepPhase ", static_cast<int>(phase));
}

const std::vector<double>& step_duration_buckets() {
  static const std::vector<double> buckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                              0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                              1.0,    2.5,     5.0,    10.0,  30.0};
  return buckets;
}

const std::vector<double>& checkpoint_duration_buckets() {
  static const std::vector<double> buckets = {0.1, 0.25, 0.5,  1.0,   2.5,   5.0,
                                              10., 30.,  60.0, 120.0, 300.0, 600.0};
  return buckets;
}

TrainingMetrics::TrainingMetrics(Metrics& m, int rank, const std::string& stage) {
  const MetricLabels labels = {{"rank", std::to_string(rank)}, {"stage", stage}};
  steps = m.counter("umbra_steps_total", "Optimizer steps taken", labels);
  samples = m.counter("umbra_samples_total", "Training examples processed by this rank", labels);
  dp_clipped_samples = m.counter("umbra_dp_clipped_samples_total",
                                 "Per-sample gradients whose norm exceeded max_grad_norm", labels);
  dp_samples =
      m.counter("umbra_dp_samples_total", "Per-sample gradients seen by the clipper", labels);
  data_stall_seconds = m.counter("umbra_data_stall_seconds_total",
                                 "Seconds the step waited for the data loader", labels);

  loss = m.gauge("umbra_loss", "Training loss of the last step", labels);
  learning_rate = m.gauge("umbra_learning_rate", "Learning rate of the last step", labels);
  grad_norm =
      m.gauge("umbra_grad_norm", "L2 norm of the gradient applied at the last step", labels);
  dp_epsilon = m.gauge("umbra_dp_epsilon", "Privacy budget epsilon spent so far", labels);
  dp_target_epsilon =
      m.gauge("umbra_dp_target_epsilon", "Privacy budget epsilon the run may spend", labels);
  images_per_second =
      m.gauge("umbra_images_per_second", "Training examples per second on this rank", labels);
  checkpoint_last_time = m.gauge("umbra_checkpoint_last_timestamp_seconds",
                                 "Unix time at which the last checkpoint completed", labels);

  for (size_t i = 0; i < kNumStepPhases; ++i) {
    MetricLabels with_phase = labels;
    with_phase.emplace_back("phase", step_phase_name(static_cast<StepPhase>(i)));
    step_duration[i] =
        m.histogram("umbra_step_duration_seconds", "Seconds spent in each phase of a training step",
                    step_duration_buckets(), with_phase);
  }
  checkpoint_duration =
      m.histogram("umbra_checkpoint_duration_seconds", "Seconds taken to write a checkpoint",
                  checkpoint_duration_buckets(), labels);
}

BuildInfo default_build_info(const std::string& backend) {
  return BuildInfo{UMBRA_VERSION, TORCH_VERSION, backend};
}

void publish_build_info(Metrics& metrics, int rank, const BuildInfo& info) {
  metrics
      .gauge("umbra_build_info", "Build of the running umbra (value is always 1)",
             {{"rank", std::to_string(rank)},
              {"version", info.version},
              {"torch_version", info.torch_version},
              {"backend", info.backend}})
      .set(1.0);
}

}  // namespace umbra
