// One Prometheus pull endpoint per rank (DESIGN.md §10): the registry in prometheus-cpp's text
// format, served by MetricsHttpServer (see there for why not prometheus-cpp's civetweb Exposer).
//
//   auto registry = std::make_shared<MetricRegistry>();
//   PrometheusExporter exporter(registry, options.monitoring, local_rank);
//   if (exporter.serving()) targets.push_back(exporter.address());   // gathered to rank 0
//
// The endpoint is http://<monitoring.bind>:<port>/metrics with port = port_base + local_rank, or a
// free port chosen by the OS when port_base is 0 (logged at info level). The exporter never takes
// down training: when the port cannot be bound it logs a warning naming the address and carries
// on without an endpoint (serving() is false) -- unless monitoring.required is true, in which case
// the constructor throws umbra::Error naming the address.
//
// Scrapes run on the server's thread and read the registry through MetricRegistry::snapshot(); the
// registry is shared so it outlives the last scrape. Destruction first keeps serving for
// monitoring.linger_s seconds (default 0; lets Prometheus take the final values of a short job),
// then stops and joins that thread.
#pragma once

#include <memory>
#include <string>

#include "monitoring/metrics.h"
#include "monitoring/metrics_http_server.h"
#include "monitoring/monitoring_options.h"

namespace umbra {

class PrometheusExporter {
 public:
  PrometheusExporter(std::shared_ptr<const MetricRegistry> registry,
                     const MonitoringOptions& options, int local_rank);
  ~PrometheusExporter();
  PrometheusExporter(const PrometheusExporter&) = delete;
  PrometheusExporter& operator=(const PrometheusExporter&) = delete;

  bool serving() const { return port_ != 0; }
  // The bound port; 0 when not serving.
  int port() const { return port_; }
  // "host:port" for Prometheus to scrape (see advertised_address); empty when not serving.
  std::string address() const;

 private:
  std::unique_ptr<MetricsHttpServer> server_;
  std::string bind_;
  int port_ = 0;
  double linger_s_ = 0.0;
};

// The port a rank asks for: port_base + local_rank, or 0 (any free port) when port_base is 0.
// Throws umbra::Error when the sum leaves the TCP port range.
int exporter_port(const MonitoringOptions& options, int local_rank);

// How other machines reach an exporter bound to `bind`: the host name for a wildcard bind
// (0.0.0.0, ::, empty), the bind address otherwise ([...] around IPv6 literals).
std::string advertised_address(const std::string& bind, int port);

// The registry's families in the Prometheus text exposition format (0.0.4), exactly as scraped.
std::string exposition_text(const MetricRegistry& registry);

}  // namespace umbra
