#include "monitoring/prometheus_exporter.h"

#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <limits>
#include <sstream>
#include <thread>

#include "core/check.h"
#include "core/log.h"

namespace umbra {

namespace {

prometheus::MetricType to_prometheus(MetricType t) {
  switch (t) {
    case MetricType::kCounter:
      return prometheus::MetricType::Counter;
    case MetricType::kGauge:
      return prometheus::MetricType::Gauge;
    case MetricType::kHistogram:
      return prometheus::MetricType::Histogram;
  }
  UMBRA_ASSERT(false, "unknown MetricType ", static_cast<int>(t));
}

std::vector<prometheus::MetricFamily> to_families(const std::vector<FamilySnapshot>& snapshot) {
  std::vector<prometheus::MetricFamily> families;
  families.reserve(snapshot.size());
  for (const FamilySnapshot& fs : snapshot) {
    prometheus::MetricFamily family;
    family.name = fs.name;
    family.help = fs.help;
    family.type = to_prometheus(fs.type);
    for (const SeriesSnapshot& ss : fs.series) {
      prometheus::ClientMetric metric;
      for (const auto& [name, value] : ss.labels) metric.label.push_back({name, value});
      switch (fs.type) {
        case MetricType::kCounter:
          metric.counter.value = ss.value;
          break;
        case MetricType::kGauge:
          metric.gauge.value = ss.value;
          break;
        case MetricType::kHistogram:
          metric.histogram.sample_count = ss.count;
          metric.histogram.sample_sum = ss.sum;
          for (size_t i = 0; i < ss.bucket_counts.size(); ++i) {
            const double bound = i < fs.upper_bounds.size()
                                     ? fs.upper_bounds[i]
                                     : std::numeric_limits<double>::infinity();
            metric.histogram.bucket.push_back({ss.bucket_counts[i], bound});
          }
          break;
      }
      family.metric.push_back(std::move(metric));
    }
    families.push_back(std::move(family));
  }
  return families;
}

bool is_ipv6_literal(const std::string& host) { return host.find(':') != std::string::npos; }

std::string host_port(const std::string& host, int port) {
  return (is_ipv6_literal(host) ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

}  // namespace

int exporter_port(const MonitoringOptions& options, int local_rank) {
  UMBRA_CHECK(options.port_base >= 0 && options.port_base <= 65535,
              "monitoring.port_base: expected a TCP port in [0, 65535], got ", options.port_base);
  UMBRA_ASSERT(local_rank >= 0, "local_rank ", local_rank, " < 0");
  if (options.port_base == 0) return 0;
  const int port = options.port_base + local_rank;
  UMBRA_CHECK(port <= 65535, "monitoring.port_base: ", options.port_base, " + local rank ",
              local_rank, " = ", port, " is beyond the last TCP port 65535");
  return port;
}

std::string advertised_address(const std::string& bind, int port) {
  if (bind.empty() || bind == "0.0.0.0" || bind == "::") {
    char name[256] = {};
    UMBRA_CHECK(gethostname(name, sizeof(name) - 1) == 0, "gethostname(): ", std::strerror(errno));
    return std::string(name) + ":" + std::to_string(port);
  }
  return host_port(bind, port);
}

PrometheusExporter::PrometheusExporter(std::shared_ptr<const MetricRegistry> registry,
                                       const MonitoringOptions& options, int local_rank)
    : bind_(options.bind.empty() ? "0.0.0.0" : options.bind), linger_s_(options.linger_s) {
  UMBRA_ASSERT(registry != nullptr, "PrometheusExporter needs a registry");
  const int requested = exporter_port(options, local_rank);
  try {
    server_ = std::make_unique<MetricsHttpServer>(
        bind_, requested, [registry] { return exposition_text(*registry); });
  } catch (const Error& e) {
    const std::string why = std::string("monitoring: cannot serve metrics on ") + e.what();
    UMBRA_CHECK(!options.required, why,
                "; monitoring.required is true. Free the port, or set monitoring.port_base to "
                "another port (0 = any free port)");
    spdlog::warn(
        "{}; this rank trains without a metrics endpoint (set monitoring.port_base to a "
        "free port, or 0 for any free port)",
        why);
    return;
  }
  port_ = server_->port();
  spdlog::info("monitoring: serving metrics on http://{}/metrics{}", host_port(bind_, port_),
               requested == 0 ? " (port chosen by the system)" : "");
}

PrometheusExporter::~PrometheusExporter() {
  if (!serving() || !(linger_s_ > 0)) return;
  spdlog::info(
      "monitoring: serving the final metrics on http://{}/metrics for {} s more "
      "(monitoring.linger_s)",
      host_port(bind_, port_), linger_s_);
  std::this_thread::sleep_for(std::chrono::duration<double>(linger_s_));
}

std::string PrometheusExporter::address() const {
  return serving() ? advertised_address(bind_, port_) : std::string();
}

std::string exposition_text(const MetricRegistry& registry) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, to_families(registry.snapshot()));
  return out.str();
}

}  // namespace umbra
