// PrometheusExporter over real HTTP on loopback: the scrape holds the §10 metrics with the right
// names, types and values, promtool accepts it, and a busy port never takes the rank down.
#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <thread>

#include "core/check.h"
#include "monitoring/prometheus_exporter.h"
#include "monitoring/training_metrics.h"
#include "tests/monitoring/exposition.h"
#include "tests/monitoring/http_get.h"
#include "tests/monitoring/prometheus_server.h"

namespace umbra {
namespace {

MonitoringOptions options_with_port(int port_base, bool required = false) {
  MonitoringOptions o;
  o.port_base = port_base;
  o.required = required;
  return o;
}

test::HttpResponse scrape(const PrometheusExporter& e) {
  return test::http_get("127.0.0.1", e.port(), "/metrics");
}

// A socket listening on a loopback port, standing for another program that holds the port.
class PortHolder {
 public:
  PortHolder() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    socklen_t len = sizeof(addr);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(listen(fd_, 4), 0);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~PortHolder() { close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// Routes spdlog's default logger into a ring buffer for the lifetime of the object.
class CapturedLog {
 public:
  CapturedLog()
      : previous_(spdlog::default_logger()),
        sink_(std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(64)) {
    auto logger = std::make_shared<spdlog::logger>("capture", sink_);
    logger->set_level(spdlog::level::debug);
    spdlog::set_default_logger(logger);
  }
  ~CapturedLog() { spdlog::set_default_logger(previous_); }
  std::string text() const {
    std::string all;
    for (const std::string& line : sink_->last_formatted()) all += line;
    return all;
  }

 private:
  std::shared_ptr<spdlog::logger> previous_;
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
};

TEST(Exporter, ServesTheRegistryOverHttp) {
  auto registry = std::make_shared<MetricRegistry>();
  TrainingMetrics m(*registry, 0, "prior");
  publish_build_info(*registry, 0, default_build_info("single"));
  PrometheusExporter exporter(registry, options_with_port(0), 0);
  ASSERT_TRUE(exporter.serving());
  m.steps.inc(12);
  m.samples.inc(768);
  m.loss.set(0.25);
  m.learning_rate.set(1e-4);
  m.dp_target_epsilon.set(10);
  m.phase(StepPhase::kBackward).observe(0.02);

  const test::HttpResponse r = scrape(exporter);
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_NE(r.headers.find("Content-Type: text/plain; version=0.0.4"), std::string::npos)
      << r.headers;
  const test::Exposition e = test::parse_exposition(r.body);
  const std::map<std::string, std::string> types = {
      {"umbra_steps_total", "counter"},
      {"umbra_samples_total", "counter"},
      {"umbra_dp_clipped_samples_total", "counter"},
      {"umbra_dp_samples_total", "counter"},
      {"umbra_data_stall_seconds_total", "counter"},
      {"umbra_step_duration_seconds", "histogram"},
      {"umbra_checkpoint_duration_seconds", "histogram"},
      {"umbra_loss", "gauge"},
      {"umbra_learning_rate", "gauge"},
      {"umbra_grad_norm", "gauge"},
      {"umbra_dp_epsilon", "gauge"},
      {"umbra_dp_target_epsilon", "gauge"},
      {"umbra_images_per_second", "gauge"},
      {"umbra_checkpoint_last_timestamp_seconds", "gauge"},
      {"umbra_build_info", "gauge"}};
  for (const auto& [name, type] : types) {
    ASSERT_TRUE(e.type.count(name)) << name << " missing from the scrape:\n" << r.body;
    EXPECT_EQ(e.type.at(name), type) << name;
  }
  const std::map<std::string, std::string> rank0 = {{"rank", "0"}, {"stage", "prior"}};
  EXPECT_EQ(e.value("umbra_steps_total", rank0), 12.0);
  EXPECT_EQ(e.value("umbra_samples_total", rank0), 768.0);
  EXPECT_EQ(e.value("umbra_loss", rank0), 0.25);
  EXPECT_EQ(e.value("umbra_learning_rate", rank0), 1e-4);
  EXPECT_EQ(e.value("umbra_dp_target_epsilon", rank0), 10.0);
  EXPECT_EQ(e.value("umbra_step_duration_seconds_count", {{"phase", "backward"}}), 1.0);
  EXPECT_EQ(e.value("umbra_step_duration_seconds_count", {{"phase", "forward"}}), 0.0);
  EXPECT_EQ(e.value("umbra_build_info", {{"version", UMBRA_VERSION_FOR_TEST}}), 1.0);

  m.steps.inc(3);  // the next scrape sees the update
  EXPECT_EQ(test::parse_exposition(scrape(exporter).body).value("umbra_steps_total", rank0), 15.0);
}

TEST(Exporter, PromtoolAcceptsTheScrape) {
  if (!test::executable_exists(test::kPromtoolBinary))
    GTEST_SKIP() << test::kPromtoolBinary << " not installed (Debian package prometheus)";
  auto registry = std::make_shared<MetricRegistry>();
  TrainingMetrics autoencoder(*registry, 1, "autoencoder");
  TrainingMetrics prior(*registry, 1, "prior");
  publish_build_info(*registry, 1, default_build_info("mpi"));
  PrometheusExporter exporter(registry, options_with_port(0), 1);
  ASSERT_TRUE(exporter.serving());
  autoencoder.steps.inc(5);
  prior.steps.inc(2);
  prior.dp_epsilon.set(1.5);
  prior.checkpoint_duration.observe(3.0);
  const test::HttpResponse r = scrape(exporter);
  ASSERT_EQ(r.status, 200) << r.error;
  const test::CommandResult check = test::promtool_check_metrics(r.body);
  EXPECT_EQ(check.exit_code, 0) << check.output << "\n" << r.body;
  EXPECT_EQ(check.output, "") << r.body;
}

TEST(Exporter, PortZeroPicksAFreePortAndLogsIt) {
  CapturedLog log;
  auto registry = std::make_shared<MetricRegistry>();
  PrometheusExporter a(registry, options_with_port(0), 0);
  PrometheusExporter b(registry, options_with_port(0), 1);
  ASSERT_TRUE(a.serving() && b.serving());
  EXPECT_GT(a.port(), 0);
  EXPECT_NE(a.port(), b.port());
  EXPECT_EQ(a.address(), "127.0.0.1:" + std::to_string(a.port()));
  EXPECT_EQ(scrape(a).status, 200);
  EXPECT_EQ(scrape(b).status, 200);
  EXPECT_NE(log.text().find("127.0.0.1:" + std::to_string(a.port())), std::string::npos)
      << log.text();
}

TEST(Exporter, PortIsPortBasePlusLocalRank) {
  const int free_port = test::free_loopback_port();
  auto registry = std::make_shared<MetricRegistry>();
  PrometheusExporter e(registry, options_with_port(free_port - 2), 2);
  ASSERT_TRUE(e.serving());
  EXPECT_EQ(e.port(), free_port);
  EXPECT_EQ(scrape(e).status, 200);
  EXPECT_THROW(exporter_port(options_with_port(65535), 1), Error);
  EXPECT_EQ(exporter_port(options_with_port(0), 5), 0);
}

TEST(Exporter, PortInUseWarnsAndTheRankCarriesOn) {
  PortHolder holder;
  CapturedLog log;
  auto registry = std::make_shared<MetricRegistry>();
  Counter steps = registry->counter("umbra_steps_total", "Optimizer steps taken");
  PrometheusExporter e(registry, options_with_port(holder.port()), 0);
  EXPECT_FALSE(e.serving());
  EXPECT_EQ(e.port(), 0);
  EXPECT_EQ(e.address(), "");
  steps.inc();  // metrics keep working, there is just no endpoint
  EXPECT_EQ(steps.value(), 1.0);
  const std::string text = log.text();
  EXPECT_NE(text.find("warning"), std::string::npos) << text;
  EXPECT_NE(text.find("127.0.0.1:" + std::to_string(holder.port())), std::string::npos) << text;
  EXPECT_NE(text.find("Address already in use"), std::string::npos) << text;
}

TEST(Exporter, PortInUseIsAnErrorWhenRequired) {
  PortHolder holder;
  auto registry = std::make_shared<MetricRegistry>();
  try {
    PrometheusExporter e(registry, options_with_port(holder.port(), /*required=*/true), 0);
    FAIL() << "expected umbra::Error";
  } catch (const Error& err) {
    const std::string what = err.what();
    EXPECT_NE(what.find("127.0.0.1:" + std::to_string(holder.port())), std::string::npos) << what;
    EXPECT_NE(what.find("monitoring.required"), std::string::npos) << what;
  }
}

TEST(Exporter, ReleasesItsPortWhenDestroyed) {
  auto registry = std::make_shared<MetricRegistry>();
  int port;
  {
    PrometheusExporter first(registry, options_with_port(0), 0);
    ASSERT_TRUE(first.serving());
    port = first.port();
  }
  PrometheusExporter again(registry, options_with_port(port, /*required=*/true), 0);
  EXPECT_EQ(again.port(), port);
}

TEST(Exporter, ScrapesDuringUpdatesSeeMonotonicCounters) {
  auto registry = std::make_shared<MetricRegistry>();
  TrainingMetrics m(*registry, 0, "prior");
  PrometheusExporter e(registry, options_with_port(0), 0);
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    while (!stop) {
      m.steps.inc();
      m.phase(StepPhase::kData).observe(0.001);
    }
  });
  double last = -1;
  for (int i = 0; i < 20; ++i) {
    const test::Exposition x = test::parse_exposition(scrape(e).body);
    const double steps = *x.value("umbra_steps_total");
    const auto data = std::map<std::string, std::string>{{"phase", "data"}};
    EXPECT_GE(steps, last);
    EXPECT_EQ(x.value("umbra_step_duration_seconds_count", data),
              x.value("umbra_step_duration_seconds_bucket", {{"phase", "data"}, {"le", "+Inf"}}));
    last = steps;
  }
  stop = true;
  writer.join();
  EXPECT_GT(last, 0);
}

TEST(Exporter, AnswersOtherRequestsAndSurvivesAStalledClient) {
  auto registry = std::make_shared<MetricRegistry>();
  registry->counter("umbra_steps_total", "Optimizer steps taken").inc(4);
  PrometheusExporter e(registry, options_with_port(0), 0);
  ASSERT_TRUE(e.serving());
  EXPECT_EQ(test::http_get("127.0.0.1", e.port(), "/nothing").status, 404);
  EXPECT_EQ(test::http_get("127.0.0.1", e.port(), "/").status, 200);
  EXPECT_EQ(test::http_get("127.0.0.1", e.port(), "/metrics?x=1").status, 200);

  // A client that connects and never sends a request holds the server for at most 2 s.
  const int stalled = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(e.port()));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  ASSERT_EQ(connect(stalled, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  const auto start = std::chrono::steady_clock::now();
  const test::HttpResponse r = test::http_get("127.0.0.1", e.port(), "/metrics", 5.0);
  const double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  close(stalled);
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(test::parse_exposition(r.body).value("umbra_steps_total"), 4.0);
  EXPECT_LT(waited, 3.0);
}

TEST(Exporter, AdvertisedAddress) {
  EXPECT_EQ(advertised_address("127.0.0.1", 9400), "127.0.0.1:9400");
  EXPECT_EQ(advertised_address("::1", 9401), "[::1]:9401");
  const test::CommandResult host = test::run_command("hostname");
  ASSERT_EQ(host.exit_code, 0);
  std::string name = host.output;
  while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
  EXPECT_EQ(advertised_address("0.0.0.0", 9402), name + ":9402");
}

}  // namespace
}  // namespace umbra
