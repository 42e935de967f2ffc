#include "monitoring/metrics.h"

#include <algorithm>
#include <set>

#include "core/check.h"

namespace umbra {

namespace detail {

HistogramCell::HistogramCell(std::vector<double> upper_bounds)
    : bounds(std::move(upper_bounds)), counts(new std::atomic<uint64_t>[bounds.size() + 1]) {
  for (size_t i = 0; i <= bounds.size(); ++i) counts[i].store(0, std::memory_order_relaxed);
}

void HistogramCell::observe(double v) noexcept {
  // Bucket i holds bounds[i-1] < v <= bounds[i]; NaN goes to +Inf like client_golang does.
  const size_t i =
      std::isnan(v)
          ? bounds.size()
          : static_cast<size_t>(std::lower_bound(bounds.begin(), bounds.end(), v) - bounds.begin());
  counts[i].fetch_add(1, std::memory_order_relaxed);
  atomic_add(sum, v);
}

}  // namespace detail

void Counter::add(double v) const noexcept {
  UMBRA_ASSERT(v >= 0.0, "Counter::inc(", v, "): counters only go up");
  detail::atomic_add(cell_->value, v);
}

namespace {

bool name_char(char c, bool first, bool colon_ok) {
  const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  if (alpha || (colon_ok && c == ':')) return true;
  return !first && c >= '0' && c <= '9';
}

bool valid_name(const std::string& name, bool colon_ok) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i)
    if (!name_char(name[i], i == 0, colon_ok)) return false;
  return true;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

const char* type_name(MetricType t) {
  switch (t) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "?";
}

std::vector<std::string> label_names(const MetricLabels& labels) {
  std::vector<std::string> names;
  for (const auto& [name, value] : labels) names.push_back(name);
  return names;
}

}  // namespace

bool is_valid_metric_name(const std::string& name) { return valid_name(name, true); }
bool is_valid_label_name(const std::string& name) { return valid_name(name, false); }

struct MetricRegistry::Series {
  MetricLabels labels;
  std::unique_ptr<detail::CounterCell> counter;
  std::unique_ptr<detail::GaugeCell> gauge;
  std::unique_ptr<detail::HistogramCell> histogram;
};

struct MetricRegistry::Family {
  std::string name;
  std::string help;
  MetricType type;
  std::vector<double> upper_bounds;
  std::vector<std::string> label_names;
  std::vector<std::unique_ptr<Series>> series;  // registration order
};

MetricRegistry::MetricRegistry() = default;
MetricRegistry::~MetricRegistry() = default;

MetricRegistry::Family& MetricRegistry::family(const std::string& name, const std::string& help,
                                               MetricType type,
                                               const std::vector<double>& upper_bounds,
                                               const MetricLabels& labels) {
  const std::vector<std::string> names = label_names(labels);
  auto it = by_name_.find(name);
  if (it != by_name_.end()) {
    Family& f = *it->second;
    UMBRA_CHECK(f.type == type, "metric ", name, ": registered as a ", type_name(f.type),
                ", requested as a ", type_name(type));
    UMBRA_CHECK(f.help == help, "metric ", name, ": help text '", help,
                "' differs from the registered '", f.help, "'");
    UMBRA_CHECK(f.upper_bounds == upper_bounds, "metric ", name,
                ": bucket bounds differ from the registered ones");
    UMBRA_CHECK(f.label_names == names, "metric ", name,
                ": label names differ from the ones it was registered with");
    return f;
  }

  UMBRA_CHECK(is_valid_metric_name(name), "metric name '", name,
              "': expected [a-zA-Z_:][a-zA-Z0-9_:]*");
  UMBRA_CHECK(!help.empty(), "metric ", name, ": help text must not be empty");
  if (type == MetricType::kCounter) {
    UMBRA_CHECK(ends_with(name, "_total"), "counter ", name,
                ": Prometheus counter names end in _total");
  } else {
    UMBRA_CHECK(!ends_with(name, "_total"), type_name(type), " ", name,
                ": only counters end in _total");
  }
  std::set<std::string> seen;
  for (const std::string& label : names) {
    UMBRA_CHECK(is_valid_label_name(label) && label.rfind("__", 0) != 0, "metric ", name,
                ": label name '", label, "' is not a valid Prometheus label name");
    UMBRA_CHECK(type != MetricType::kHistogram || label != "le", "metric ", name,
                ": label 'le' is reserved for histogram buckets");
    UMBRA_CHECK(seen.insert(label).second, "metric ", name, ": label '", label, "' given twice");
  }
  if (type == MetricType::kHistogram) {
    UMBRA_CHECK(!upper_bounds.empty(), "histogram ", name, ": needs at least one bucket bound");
    for (size_t i = 0; i < upper_bounds.size(); ++i) {
      UMBRA_CHECK(std::isfinite(upper_bounds[i]), "histogram ", name, ": bucket bound ",
                  upper_bounds[i], " is not finite (+Inf is implicit)");
      UMBRA_CHECK(i == 0 || upper_bounds[i] > upper_bounds[i - 1], "histogram ", name,
                  ": bucket bounds must be strictly increasing");
    }
  }

  auto f = std::make_unique<Family>();
  f->name = name;
  f->help = help;
  f->type = type;
  f->upper_bounds = upper_bounds;
  f->label_names = names;
  Family* raw = f.get();
  families_.push_back(std::move(f));
  by_name_[name] = raw;
  return *raw;
}

MetricRegistry::Series& MetricRegistry::series(Family& f, const MetricLabels& labels) {
  for (auto& s : f.series)
    if (s->labels == labels) return *s;
  auto s = std::make_unique<Series>();
  s->labels = labels;
  switch (f.type) {
    case MetricType::kCounter:
      s->counter = std::make_unique<detail::CounterCell>();
      break;
    case MetricType::kGauge:
      s->gauge = std::make_unique<detail::GaugeCell>();
      break;
    case MetricType::kHistogram:
      s->histogram = std::make_unique<detail::HistogramCell>(f.upper_bounds);
      break;
  }
  f.series.push_back(std::move(s));
  return *f.series.back();
}

Counter MetricRegistry::counter(const std::string& name, const std::string& help,
                                const MetricLabels& labels) {
  std::lock_guard<std::mutex> lock(mutex_);
  Family& f = family(name, help, MetricType::kCounter, {}, labels);
  return Counter(series(f, labels).counter.get());
}

Gauge MetricRegistry::gauge(const std::string& name, const std::string& help,
                            const MetricLabels& labels) {
  std::lock_guard<std::mutex> lock(mutex_);
  Family& f = family(name, help, MetricType::kGauge, {}, labels);
  return Gauge(series(f, labels).gauge.get());
}

Histogram MetricRegistry::histogram(const std::string& name, const std::string& help,
                                    const std::vector<double>& upper_bounds,
                                    const MetricLabels& labels) {
  std::lock_guard<std::mutex> lock(mutex_);
  Family& f = family(name, help, MetricType::kHistogram, upper_bounds, labels);
  return Histogram(series(f, labels).histogram.get());
}

std::vector<FamilySnapshot> MetricRegistry::snapshot() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<FamilySnapshot> out;
  out.reserve(families_.size());
  for (const auto& f : families_) {
    FamilySnapshot fs;
    fs.name = f->name;
    fs.help = f->help;
    fs.type = f->type;
    fs.upper_bounds = f->upper_bounds;
    for (const auto& s : f->series) {
      SeriesSnapshot ss;
      ss.labels = s->labels;
      if (s->counter) ss.value = s->counter->value.load(std::memory_order_relaxed);
      if (s->gauge) ss.value = s->gauge->value.load(std::memory_order_relaxed);
      if (s->histogram) {
        // Cumulative counts are summed from one read of each bucket, so count == +Inf bucket
        // even while observations race with the scrape; sum may lag by the racing ones.
        uint64_t cumulative = 0;
        for (size_t i = 0; i <= f->upper_bounds.size(); ++i) {
          cumulative += s->histogram->counts[i].load(std::memory_order_relaxed);
          ss.bucket_counts.push_back(cumulative);
        }
        ss.count = cumulative;
        ss.sum = s->histogram->sum.load(std::memory_order_relaxed);
      }
      fs.series.push_back(std::move(ss));
    }
    out.push_back(std::move(fs));
  }
  return out;
}

}  // namespace umbra
