// Prometheus file-based service discovery (file_sd) target file for a job (DESIGN.md §10).
//
// Rank 0 writes one file listing every rank's exporter; Prometheus watches it (see
// monitoring/prometheus/prometheus.yml) and starts scraping new ranks within seconds. The
// addresses come from PrometheusExporter::address() on each rank, gathered to rank 0 by the
// caller. Format (https://prometheus.io/docs/prometheus/latest/configuration/configuration/
// #file_sd_config), one target group per rank so each carries its own labels:
//
//   [ {"targets": ["127.0.0.1:9400"], "labels": {"run": "fmnist", "rank": "0"}}, ... ]
#pragma once

#include <string>
#include <vector>

#include "monitoring/metrics.h"

namespace umbra {

struct ScrapeTarget {
  std::string address;  // "host:port"; empty for a rank that serves no endpoint
  MetricLabels labels;  // target labels, e.g. {{"run", name}, {"rank", "0"}}
};

// Writes `targets` (those with an empty address are left out) to `path`, creating its directory:
// to a temporary file in the same directory, fsynced, then renamed over `path`, so Prometheus
// never reads half a file.
// Throws umbra::Error naming the path on any I/O failure or an invalid label name.
void write_file_sd(const std::string& path, const std::vector<ScrapeTarget>& targets);

// Where rank 0 of run `run_name` writes its target file:
// <runs_dir>/prometheus_targets/<run_name>.json. One directory for all runs, so one Prometheus
// (monitoring/prometheus/prometheus.yml watches runs/prometheus_targets/*.json) picks up every run
// as it starts.
std::string file_sd_path(const std::string& runs_dir, const std::string& run_name);

}  // namespace umbra
