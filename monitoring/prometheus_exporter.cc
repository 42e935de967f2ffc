#include "monitoring/prometheus_exporter.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <sstream>

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

class RegistryCollectable final : public prometheus::Collectable {
 public:
  explicit RegistryCollectable(std::shared_ptr<const MetricRegistry> registry)
      : registry_(std::move(registry)) {}
  std::vector<prometheus::MetricFamily> Collect() const override {
    return to_families(registry_->snapshot());
  }

 private:
  std::shared_ptr<const MetricRegistry> registry_;
};

bool is_ipv6_literal(const std::string& host) { return host.find(':') != std::string::npos; }

std::string host_port(const std::string& host, int port) {
  return (is_ipv6_literal(host) ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

// Why civetweb could not listen: civetweb only says "possible problem binding to port", so bind
// a socket the same way to get the system's reason.
std::string bind_failure_reason(const std::string& bind, int port) {
  const bool v6 = is_ipv6_literal(bind);
  sockaddr_storage addr{};
  socklen_t len = 0;
  if (v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET6, bind.c_str(), &a->sin6_addr) != 1)
      return "'" + bind + "' is not an IPv6 address";
    len = sizeof(sockaddr_in6);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&addr);
    a->sin_family = AF_INET;
    a->sin_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET, bind.c_str(), &a->sin_addr) != 1)
      return "'" + bind + "' is not a numeric IPv4 address";
    len = sizeof(sockaddr_in);
  }
  const int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return std::string("socket(): ") + std::strerror(errno);
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  std::string reason = "the HTTP server did not start";
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), len) != 0) reason = std::strerror(errno);
  close(fd);
  return reason;
}

}  // namespace

struct PrometheusExporter::Impl {
  std::shared_ptr<RegistryCollectable> collectable;
  std::unique_ptr<prometheus::Exposer> exposer;
};

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
    : impl_(std::make_unique<Impl>()), bind_(options.bind.empty() ? "0.0.0.0" : options.bind) {
  UMBRA_ASSERT(registry != nullptr, "PrometheusExporter needs a registry");
  const int requested = exporter_port(options, local_rank);
  const std::string listen = host_port(bind_, requested);
  try {
    impl_->exposer = std::make_unique<prometheus::Exposer>(listen, 2);
  } catch (const std::exception& e) {
    spdlog::debug("monitoring: civetweb on {}: {}", listen, e.what());
    const std::string why = "monitoring: cannot serve metrics on " + listen + " (" +
                            bind_failure_reason(bind_, requested) + ")";
    UMBRA_CHECK(!options.required, why,
                "; monitoring.required is true. Free the port, or set monitoring.port_base to "
                "another port (0 = any free port)");
    spdlog::warn(
        "{}; this rank trains without a metrics endpoint (set monitoring.port_base to a "
        "free port, or 0 for any free port)",
        why);
    impl_.reset();
    return;
  }
  const std::vector<int> ports = impl_->exposer->GetListeningPorts();
  UMBRA_ASSERT(ports.size() == 1, "exposer listens on ", ports.size(), " ports, expected 1");
  port_ = ports[0];
  impl_->collectable = std::make_shared<RegistryCollectable>(std::move(registry));
  impl_->exposer->RegisterCollectable(impl_->collectable);
  spdlog::info("monitoring: serving metrics on http://{}/metrics{}", host_port(bind_, port_),
               requested == 0 ? " (port chosen by the system)" : "");
}

PrometheusExporter::~PrometheusExporter() = default;

std::string PrometheusExporter::address() const {
  return serving() ? advertised_address(bind_, port_) : std::string();
}

std::string exposition_text(const MetricRegistry& registry) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, to_families(registry.snapshot()));
  return out.str();
}

}  // namespace umbra
