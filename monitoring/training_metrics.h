// The metrics of DESIGN.md §10, named once, as handles for one rank and one training stage.
//
//   MetricRegistry registry;                          // or NullMetrics when monitoring is off
//   publish_build_info(registry, rank, default_build_info("mpi"));
//   TrainingMetrics m(registry, rank, "prior");       // at stage start, not per step
//   {
//     PhaseTimer t(m.phase(StepPhase::kForward));     // observes seconds when it goes out of scope
//     ...
//   }
//   m.steps.inc(); m.samples.inc(batch); m.loss.set(loss);
//
// Every series carries labels rank="<r>" and stage="<stage>"; step durations add phase="...".
// Checkpoint age is exported the Prometheus way, as the time of the last checkpoint
// (umbra_checkpoint_last_timestamp_seconds); dashboards show time() - that.
// Thread-safety: as the handles (metrics.h); constructing one is safe from any thread.
#pragma once

#include <array>
#include <chrono>
#include <string>

#include "monitoring/metrics.h"

namespace umbra {

enum class StepPhase { kData, kForward, kBackward, kClip, kAllreduce, kOptimizer };
constexpr size_t kNumStepPhases = 6;

// "data", "forward", "backward", "clip", "allreduce", "optimizer" (the `phase` label values).
const char* step_phase_name(StepPhase phase);

// Bucket bounds in seconds: step phases span 100 us (an optimizer step) to seconds (a stalled
// loader); checkpoints span 0.1 s to 10 min.
const std::vector<double>& step_duration_buckets();
const std::vector<double>& checkpoint_duration_buckets();

struct TrainingMetrics {
  // Disabled handles (all updates are no-ops).
  TrainingMetrics() = default;
  TrainingMetrics(Metrics& metrics, int rank, const std::string& stage);

  Counter steps;               // umbra_steps_total: optimizer steps taken
  Counter samples;             // umbra_samples_total: training examples processed by this rank
  Counter dp_clipped_samples;  // umbra_dp_clipped_samples_total: per-sample grads that were clipped
  Counter dp_samples;          // umbra_dp_samples_total: per-sample grads seen by the clipper
  Counter data_stall_seconds;  // umbra_data_stall_seconds_total: time waiting for the loader

  Gauge loss;                  // umbra_loss
  Gauge learning_rate;         // umbra_learning_rate
  Gauge grad_norm;             // umbra_grad_norm: norm of the (averaged, clipped+noised) gradient
  Gauge dp_epsilon;            // umbra_dp_epsilon: epsilon spent so far
  Gauge dp_target_epsilon;     // umbra_dp_target_epsilon
  Gauge images_per_second;     // umbra_images_per_second: this rank's smoothed throughput
  Gauge checkpoint_last_time;  // umbra_checkpoint_last_timestamp_seconds (unix time)

  std::array<Histogram, kNumStepPhases> step_duration;  // umbra_step_duration_seconds{phase}
  Histogram checkpoint_duration;                        // umbra_checkpoint_duration_seconds

  const Histogram& phase(StepPhase p) const { return step_duration[static_cast<size_t>(p)]; }
};

// umbra_build_info{rank, version, torch_version, backend} 1.
struct BuildInfo {
  std::string version;        // Umbra's version
  std::string torch_version;  // LibTorch it was built against
  std::string backend;        // communicator: "single", "mpi", "nccl"
};
BuildInfo default_build_info(const std::string& backend);
void publish_build_info(Metrics& metrics, int rank, const BuildInfo& info);

// Observes the seconds between construction and stop() (or destruction) into a histogram.
class PhaseTimer {
 public:
  explicit PhaseTimer(const Histogram& histogram)
      : histogram_(histogram), start_(std::chrono::steady_clock::now()) {}
  ~PhaseTimer() { stop(); }
  PhaseTimer(const PhaseTimer&) = delete;
  PhaseTimer& operator=(const PhaseTimer&) = delete;

  // Observes once and returns the elapsed seconds; later calls return 0 and observe nothing.
  double stop() {
    if (stopped_) return 0.0;
    stopped_ = true;
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    histogram_.observe(s);
    return s;
  }

 private:
  Histogram histogram_;
  std::chrono::steady_clock::time_point start_;
  bool stopped_ = false;
};

}  // namespace umbra
