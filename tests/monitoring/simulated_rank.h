// One training rank's monitoring, driven by a synthetic training loop, for tests that need live
// exporters before the trainer exists (and for rendering the console page): its own
// MetricRegistry and PrometheusExporter, and a thread reporting a plausible run through the real
// TrainingMetrics handles every `step_s` seconds -- decaying loss, warm-up learning rate, epsilon
// growing towards its target, per-phase step times, an occasional data stall and checkpoint.
// The figures are made up; the code paths they go through are the production ones.
#pragma once

#include <atomic>
#include <chrono>
#include <cmath>
#include <ctime>
#include <memory>
#include <random>
#include <string>
#include <thread>

#include "monitoring/file_sd.h"
#include "monitoring/prometheus_exporter.h"
#include "monitoring/training_metrics.h"

namespace umbra::test {

class SimulatedRank {
 public:
  SimulatedRank(int rank, const MonitoringOptions& options, double step_s = 0.02,
                const std::string& stage = "prior")
      : rank_(rank),
        registry_(std::make_shared<MetricRegistry>()),
        exporter_(registry_, options, rank),
        metrics_(*registry_, rank, stage),
        step_s_(step_s) {
    publish_build_info(*registry_, rank, default_build_info("single"));
    metrics_.dp_target_epsilon.set(kTargetEpsilon);
    thread_ = std::thread([this] { loop(); });
  }
  ~SimulatedRank() {
    stop_ = true;
    thread_.join();
  }
  SimulatedRank(const SimulatedRank&) = delete;
  SimulatedRank& operator=(const SimulatedRank&) = delete;

  const PrometheusExporter& exporter() const { return exporter_; }
  const MetricRegistry& registry() const { return *registry_; }
  int64_t steps() const { return steps_.load(); }

  // This rank's entry in the job's file_sd target file.
  ScrapeTarget target(const std::string& run) const {
    return {exporter_.address(), {{"run", run}, {"rank", std::to_string(rank_)}}};
  }

 private:
  static constexpr double kTargetEpsilon = 8.0;
  static constexpr int kBatch = 64;

  void loop() {
    std::mt19937 rng(static_cast<uint32_t>(1234 + rank_));
    std::normal_distribution<double> noise(0.0, 1.0);
    const double phase_mean[kNumStepPhases] = {0.002, 0.008, 0.015, 0.003, 0.004 * (1 + rank_),
                                               0.001};
    while (!stop_) {
      const int64_t step = steps_.load() + 1;
      const bool stall = step % 50 == 0;
      for (size_t p = 0; p < kNumStepPhases; ++p) {
        double seconds = phase_mean[p] * std::exp(0.2 * noise(rng));
        if (p == static_cast<size_t>(StepPhase::kData) && stall) seconds += 0.05;
        metrics_.step_duration[p].observe(seconds);
      }
      if (stall) metrics_.data_stall_seconds.inc(0.05);
      const double loss = 0.05 + 0.5 * std::exp(-step / 300.0) + 0.01 * std::abs(noise(rng));
      metrics_.loss.set(loss);
      metrics_.learning_rate.set(2e-4 * std::min(1.0, step / 100.0));
      metrics_.grad_norm.set(1.0 + 0.1 * noise(rng));
      metrics_.dp_epsilon.set(kTargetEpsilon * std::min(1.0, std::sqrt(step / 5000.0)));
      const int clipped = static_cast<int>(kBatch * (0.3 + 0.6 * std::exp(-step / 500.0)));
      metrics_.dp_samples.inc(kBatch);
      metrics_.dp_clipped_samples.inc(clipped);
      metrics_.samples.inc(kBatch);
      metrics_.images_per_second.set(kBatch / step_s_ * (1.0 + 0.05 * noise(rng)));
      if (step % 250 == 0 || step == 1) {
        metrics_.checkpoint_duration.observe(1.5 + 0.2 * noise(rng));
        metrics_.checkpoint_last_time.set(static_cast<double>(std::time(nullptr)));
      }
      metrics_.steps.inc();
      steps_.store(step);
      std::this_thread::sleep_for(std::chrono::duration<double>(step_s_));
    }
  }

  int rank_;
  std::shared_ptr<MetricRegistry> registry_;
  PrometheusExporter exporter_;
  TrainingMetrics metrics_;
  double step_s_;
  std::atomic<int64_t> steps_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace umbra::test
