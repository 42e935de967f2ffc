// Cost of reporting metrics (monitoring/metrics.h) on the training hot path, and what that means
// for a step: a typical step makes 11 counter/gauge updates and times 6 phases (PhaseTimer: two
// clock reads + a histogram observe). Also the cost of one scrape of a rank's full metric set,
// which runs on the exporter's threads, not the training thread.
//
//   build/bench/metrics_bench [step_ms=50]
//
// Figures are the median of 7 repetitions of 2M updates each, single-threaded, and with a second
// thread scraping the registry as fast as it can (the worst case for cache-line sharing).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "monitoring/metrics.h"
#include "monitoring/prometheus_exporter.h"
#include "monitoring/training_metrics.h"

namespace {

using Clock = std::chrono::steady_clock;

// Keeps the compiler from hoisting or deleting the loop body.
inline void clobber() { asm volatile("" ::: "memory"); }

double median_ns_per_op(const std::function<void(int)>& body, int ops = 2'000'000,
                        int repeats = 7) {
  std::vector<double> ns;
  for (int r = 0; r < repeats; ++r) {
    const auto start = Clock::now();
    for (int i = 0; i < ops; ++i) {
      body(i);
      clobber();
    }
    ns.push_back(std::chrono::duration<double, std::nano>(Clock::now() - start).count() / ops);
  }
  std::sort(ns.begin(), ns.end());
  return ns[ns.size() / 2];
}

struct Costs {
  double counter, gauge, histogram, timer, disabled_counter, disabled_timer;
};

Costs measure(umbra::TrainingMetrics& m, umbra::TrainingMetrics& off) {
  Costs c;
  c.counter = median_ns_per_op([&](int) { m.steps.inc(); });
  c.gauge = median_ns_per_op([&](int i) { m.loss.set(i * 1e-6); });
  c.histogram =
      median_ns_per_op([&](int i) { m.phase(umbra::StepPhase::kForward).observe(i * 1e-9); });
  c.timer = median_ns_per_op([&](int) { umbra::PhaseTimer t(m.phase(umbra::StepPhase::kData)); });
  c.disabled_counter = median_ns_per_op([&](int) { off.steps.inc(); });
  c.disabled_timer =
      median_ns_per_op([&](int) { umbra::PhaseTimer t(off.phase(umbra::StepPhase::kData)); });
  return c;
}

void print(const char* title, const Costs& c, double step_ms) {
  constexpr int kUpdates = 11, kTimers = 6;  // per step, see the header comment
  const double step_ns = kUpdates * std::max(c.counter, c.gauge) + kTimers * c.timer;
  const double off_ns = kUpdates * c.disabled_counter + kTimers * c.disabled_timer;
  std::printf("%s\n", title);
  std::printf("  counter inc           %7.1f ns\n", c.counter);
  std::printf("  gauge set             %7.1f ns\n", c.gauge);
  std::printf("  histogram observe     %7.1f ns\n", c.histogram);
  std::printf("  PhaseTimer (scoped)   %7.1f ns\n", c.timer);
  std::printf("  disabled counter inc  %7.1f ns\n", c.disabled_counter);
  std::printf("  disabled PhaseTimer   %7.1f ns\n", c.disabled_timer);
  std::printf(
      "  per step (%d updates + %d timers): %.2f us = %.5f%% of a %.0f ms step "
      "(disabled: %.2f us)\n",
      kUpdates, kTimers, step_ns / 1e3, 100.0 * step_ns / (step_ms * 1e6), step_ms, off_ns / 1e3);
}

}  // namespace

int main(int argc, char** argv) {
  const double step_ms = argc > 1 ? std::atof(argv[1]) : 50.0;
  auto registry = std::make_shared<umbra::MetricRegistry>();
  umbra::TrainingMetrics m(*registry, 0, "prior");
  umbra::publish_build_info(*registry, 0, umbra::default_build_info("single"));
  umbra::NullMetrics null;
  umbra::TrainingMetrics off(null, 0, "prior");

  print("metric updates, idle registry:", measure(m, off), step_ms);

  std::atomic<bool> stop{false};
  std::atomic<long> scrapes{0};
  std::thread scraper([&] {
    while (!stop) {
      const std::string text = umbra::exposition_text(*registry);
      clobber();
      scrapes += text.empty() ? 0 : 1;
    }
  });
  const auto start = Clock::now();
  const Costs contended = measure(m, off);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  stop = true;
  scraper.join();
  print("metric updates while another thread scrapes continuously:", contended, step_ms);
  std::printf("  (%ld scrapes in %.1f s)\n", scrapes.load(), seconds);

  const double scrape_us = median_ns_per_op(
                               [&](int) {
                                 const std::string text = umbra::exposition_text(*registry);
                                 clobber();
                               },
                               2000) /
                           1e3;
  const size_t bytes = umbra::exposition_text(*registry).size();
  std::printf(
      "one scrape of a rank's metrics (%zu bytes of text): %.1f us on the exporter thread "
      "= %.4f%% of one core at a 5 s scrape interval\n",
      bytes, scrape_us, 100.0 * scrape_us / 5e6);
  return 0;
}
