// A real Prometheus server (Debian's, loopback only, temporary directory) discovers two exporters
// through the job's file_sd target file and the shipped prometheus.yml, and its HTTP API shows
// umbra_steps_total for each rank, increasing. Two exporters in this process stand in for two
// ranks until the trainer exists; the 2-rank training version reuses prometheus_server.h.
#include "tests/monitoring/prometheus_server.h"

#include <gtest/gtest.h>

#include "monitoring/file_sd.h"
#include "tests/monitoring/simulated_rank.h"

namespace umbra {
namespace {

TEST(PrometheusServer, ScrapesEveryRankThroughFileSd) {
  if (!test::executable_exists(test::kPrometheusBinary))
    GTEST_SKIP() << test::kPrometheusBinary << " not installed (Debian package prometheus)";
  MonitoringOptions options;
  options.port_base = 0;  // any free ports: tests run in parallel with other jobs
  test::SimulatedRank rank0(0, options);
  test::SimulatedRank rank1(1, options);
  ASSERT_TRUE(rank0.exporter().serving() && rank1.exporter().serving());

  test::TempDir dir;
  const std::string targets = file_sd_path(dir.path() + "/runs", "two_ranks");
  write_file_sd(targets, {rank0.target("two_ranks"), rank1.target("two_ranks")});
  test::PrometheusServer prom(dir.path(), targets, /*scrape_interval_s=*/1.0);
  ASSERT_TRUE(prom.wait_ready(20)) << prom.log_tail();

  // Each rank's series appears, carrying the exporter's own rank label (honor_labels) and the
  // target file's run label.
  std::map<std::string, double> first;
  const bool both = test::wait_for(
      [&] {
        first = test::values_by_label(
            prom.query("umbra_steps_total{job=\"umbra\",run=\"two_ranks\"}"), "rank");
        return first.size() == 2;
      },
      25.0, 0.5);
  ASSERT_TRUE(both) << "series by rank: " << first.size()
                    << "\ntargets: " << prom.active_targets().dump(1) << "\n"
                    << prom.log_tail();
  EXPECT_EQ(first.count("0"), 1u);
  EXPECT_EQ(first.count("1"), 1u);
  EXPECT_TRUE(prom.query("umbra_steps_total{exported_rank!=\"\"}").empty());

  std::map<std::string, double> later;
  const bool increased = test::wait_for(
      [&] {
        later = test::values_by_label(prom.query("umbra_steps_total{job=\"umbra\"}"), "rank");
        return later.size() == 2 && later["0"] > first["0"] && later["1"] > first["1"];
      },
      10.0, 0.5);
  EXPECT_TRUE(increased) << "rank 0: " << first["0"] << " -> " << later["0"]
                         << ", rank 1: " << first["1"] << " -> " << later["1"];

  // Both targets are up, and the recorded values never exceed what the ranks have reported.
  const auto up = test::values_by_label(prom.query("up{job=\"umbra\"}"), "rank");
  EXPECT_EQ(up, (std::map<std::string, double>{{"0", 1.0}, {"1", 1.0}}));
  EXPECT_LE(later["0"], rank0.steps());
  EXPECT_LE(later["1"], rank1.steps());

  // promtool accepts a scrape of each rank.
  if (test::executable_exists(test::kPromtoolBinary)) {
    for (const test::SimulatedRank* rank : {&rank0, &rank1}) {
      const test::HttpResponse r = test::http_get("127.0.0.1", rank->exporter().port(), "/metrics");
      ASSERT_EQ(r.status, 200) << r.error;
      const test::CommandResult check = test::promtool_check_metrics(r.body);
      EXPECT_EQ(check.exit_code, 0) << check.output;
      EXPECT_EQ(check.output, "");
    }
  }

  // Every Grafana panel query runs on this Prometheus and finds data, with the dashboard
  // variables set the way Grafana would expand them.
  const nlohmann::json dashboard = nlohmann::json::parse(test::read_text_file(
      std::string(UMBRA_SOURCE_DIR) + "/monitoring/grafana/umbra-dashboard.json"));
  int queries = 0;
  for (const auto& panel : dashboard["panels"]) {
    for (const auto& target : panel["targets"]) {
      std::string expr = target["expr"];
      for (const auto& [var, value] : std::vector<std::pair<std::string, std::string>>{
               {"$__rate_interval", "10s"}, {"$__range", "1m"}, {"$run", ".*"}, {"$stage", ".*"}})
        for (size_t at; (at = expr.find(var)) != std::string::npos;)
          expr.replace(at, var.size(), value);
      nlohmann::json result;
      ASSERT_NO_THROW(result = prom.query(expr)) << panel["title"] << ": " << expr;
      EXPECT_FALSE(result.empty()) << panel["title"] << ": no data for " << expr;
      ++queries;
    }
  }
  EXPECT_GE(queries, 12);
}

}  // namespace
}  // namespace umbra
