// Metrics: the interface every layer reports to (DESIGN.md §10). No prometheus-cpp type appears
// here; monitoring/prometheus_exporter.h serves a MetricRegistry over HTTP.
//
// A component obtains typed handles once, at setup, and updates them on the hot path:
//
//   Counter steps = metrics.counter("umbra_steps_total", "Optimizer steps taken",
//                                   {{"rank", "0"}, {"stage", "prior"}});
//   ...
//   steps.inc();   // one pointer test + one relaxed atomic read-modify-write
//
// Handles are small values (one pointer) that may be copied freely. A default-constructed handle,
// or one from NullMetrics, is disabled: every update is a no-op. A handle from a MetricRegistry
// stays valid as long as that registry lives.
//
// Naming follows Prometheus conventions and is checked at registration: names match
// [a-zA-Z_:][a-zA-Z0-9_:]*, counters end in `_total`, values are in base units (seconds, bytes).
// Registering the same name and labels again returns the same series, so independent components
// may ask for the same metric. A name reused with another type, help text, label names or bucket
// bounds is a bug in the caller and throws umbra::Error naming the metric.
//
// Thread-safety: registration and snapshot() are safe from any thread (a mutex); handle updates are
// lock-free and safe from any thread.
#pragma once

#include <atomic>
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace umbra {

// Label name/value pairs of one series, e.g. {{"rank", "0"}, {"stage", "prior"}}; order as given.
using MetricLabels = std::vector<std::pair<std::string, std::string>>;

namespace detail {

inline void atomic_add(std::atomic<double>& target, double v) noexcept {
  double current = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(current, current + v, std::memory_order_relaxed)) {
  }
}

struct CounterCell {
  std::atomic<double> value{0.0};
};

struct GaugeCell {
  std::atomic<double> value{0.0};
};

// Bucket i counts observations v <= bounds[i] (not cumulative); the last bucket is +Inf.
struct HistogramCell {
  explicit HistogramCell(std::vector<double> upper_bounds);
  void observe(double v) noexcept;

  const std::vector<double> bounds;
  const std::unique_ptr<std::atomic<uint64_t>[]> counts;  // bounds.size() + 1 entries
  std::atomic<double> sum{0.0};
};

}  // namespace detail

// Monotonic count. inc(v) requires v >= 0 (a negative increment is a bug and aborts).
class Counter {
 public:
  Counter() = default;
  void inc(double v = 1.0) const noexcept {
    if (cell_ != nullptr) add(v);
  }
  double value() const noexcept {
    return cell_ ? cell_->value.load(std::memory_order_relaxed) : 0.0;
  }
  bool enabled() const noexcept { return cell_ != nullptr; }

 private:
  friend class MetricRegistry;
  explicit Counter(detail::CounterCell* cell) : cell_(cell) {}
  void add(double v) const noexcept;
  detail::CounterCell* cell_ = nullptr;
};

// A value that goes up and down (loss, learning rate, a timestamp in seconds).
class Gauge {
 public:
  Gauge() = default;
  void set(double v) const noexcept {
    if (cell_ != nullptr) cell_->value.store(v, std::memory_order_relaxed);
  }
  double value() const noexcept {
    return cell_ ? cell_->value.load(std::memory_order_relaxed) : 0.0;
  }
  bool enabled() const noexcept { return cell_ != nullptr; }

 private:
  friend class MetricRegistry;
  explicit Gauge(detail::GaugeCell* cell) : cell_(cell) {}
  detail::GaugeCell* cell_ = nullptr;
};

// Distribution of observations (durations in seconds) over fixed bucket bounds.
class Histogram {
 public:
  Histogram() = default;
  void observe(double v) const noexcept {
    if (cell_ != nullptr) cell_->observe(v);
  }
  bool enabled() const noexcept { return cell_ != nullptr; }

 private:
  friend class MetricRegistry;
  explicit Histogram(detail::HistogramCell* cell) : cell_(cell) {}
  detail::HistogramCell* cell_ = nullptr;
};

enum class MetricType { kCounter, kGauge, kHistogram };

// Where handles come from. Implementations: MetricRegistry (collects, can be exported) and
// NullMetrics (monitoring disabled: handles are no-ops).
class Metrics {
 public:
  virtual ~Metrics() = default;
  virtual Counter counter(const std::string& name, const std::string& help,
                          const MetricLabels& labels = {}) = 0;
  virtual Gauge gauge(const std::string& name, const std::string& help,
                      const MetricLabels& labels = {}) = 0;
  // upper_bounds: finite and strictly increasing; +Inf is implicit.
  virtual Histogram histogram(const std::string& name, const std::string& help,
                              const std::vector<double>& upper_bounds,
                              const MetricLabels& labels = {}) = 0;
  virtual bool enabled() const = 0;
};

// Monitoring off: every handle is disabled.
class NullMetrics final : public Metrics {
 public:
  Counter counter(const std::string&, const std::string&, const MetricLabels& = {}) override {
    return {};
  }
  Gauge gauge(const std::string&, const std::string&, const MetricLabels& = {}) override {
    return {};
  }
  Histogram histogram(const std::string&, const std::string&, const std::vector<double>&,
                      const MetricLabels& = {}) override {
    return {};
  }
  bool enabled() const override { return false; }
};

// A point-in-time copy of one series, for exporters and tests.
struct SeriesSnapshot {
  MetricLabels labels;
  double value = 0.0;                   // counter, gauge
  std::vector<uint64_t> bucket_counts;  // histogram: cumulative, one per bound then +Inf
  uint64_t count = 0;                   // histogram: == bucket_counts.back()
  double sum = 0.0;                     // histogram
};

struct FamilySnapshot {
  std::string name;
  std::string help;
  MetricType type = MetricType::kGauge;
  std::vector<double> upper_bounds;  // histogram only, without +Inf
  std::vector<SeriesSnapshot> series;
};

// The collecting implementation. Families and series are reported in registration order.
class MetricRegistry final : public Metrics {
 public:
  MetricRegistry();
  ~MetricRegistry() override;
  MetricRegistry(const MetricRegistry&) = delete;
  MetricRegistry& operator=(const MetricRegistry&) = delete;

  Counter counter(const std::string& name, const std::string& help,
                  const MetricLabels& labels = {}) override;
  Gauge gauge(const std::string& name, const std::string& help,
              const MetricLabels& labels = {}) override;
  Histogram histogram(const std::string& name, const std::string& help,
                      const std::vector<double>& upper_bounds,
                      const MetricLabels& labels = {}) override;
  bool enabled() const override { return true; }

  std::vector<FamilySnapshot> snapshot() const;

 private:
  struct Family;
  struct Series;
  Family& family(const std::string& name, const std::string& help, MetricType type,
                 const std::vector<double>& upper_bounds, const MetricLabels& labels);
  Series& series(Family& f, const MetricLabels& labels);

  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<Family>> families_;  // registration order
  std::map<std::string, Family*> by_name_;
};

// True when `name` is a valid Prometheus metric name / label name.
bool is_valid_metric_name(const std::string& name);
bool is_valid_label_name(const std::string& name);

}  // namespace umbra
