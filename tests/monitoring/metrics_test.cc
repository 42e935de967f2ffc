// MetricRegistry and TrainingMetrics: values against brute-force references, Prometheus naming
// rules, the §10 metric names, and the exposition text as an independent parser and promtool read
// it.
#include "monitoring/metrics.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <set>
#include <thread>

#include "core/check.h"
#include "monitoring/prometheus_exporter.h"
#include "monitoring/training_metrics.h"
#include "tests/monitoring/exposition.h"
#include "tests/monitoring/prometheus_server.h"

namespace umbra {
namespace {

TEST(Metrics, CounterGaugeHistogramHoldWhatWasReported) {
  MetricRegistry registry;
  Counter c = registry.counter("t_events_total", "events", {{"rank", "0"}});
  Gauge g = registry.gauge("t_level", "level");
  const std::vector<double> bounds = {0.1, 0.5, 1.0, 5.0};
  Histogram h = registry.histogram("t_duration_seconds", "durations", bounds);

  std::mt19937 rng(7);
  std::exponential_distribution<double> dist(1.0);
  std::vector<double> observed;
  double counted = 0.0;
  for (int i = 0; i < 1000; ++i) {
    const double v = dist(rng);
    observed.push_back(v);
    h.observe(v);
    c.inc(v);
    counted += v;
    g.set(v);
  }
  h.observe(0.5);  // exactly on a bound: Prometheus buckets are `le`
  observed.push_back(0.5);

  EXPECT_NEAR(c.value(), counted, 1e-9 * counted);
  EXPECT_EQ(g.value(), observed[999]);
  const std::vector<FamilySnapshot> snap = registry.snapshot();
  ASSERT_EQ(snap.size(), 3u);
  const SeriesSnapshot& hs = snap[2].series.at(0);
  ASSERT_EQ(hs.bucket_counts.size(), bounds.size() + 1);
  for (size_t i = 0; i < bounds.size(); ++i) {
    const auto expected =
        std::count_if(observed.begin(), observed.end(), [&](double v) { return v <= bounds[i]; });
    EXPECT_EQ(hs.bucket_counts[i], static_cast<uint64_t>(expected)) << "le=" << bounds[i];
  }
  EXPECT_EQ(hs.bucket_counts.back(), observed.size());
  EXPECT_EQ(hs.count, observed.size());
  EXPECT_NEAR(hs.sum, std::accumulate(observed.begin(), observed.end(), 0.0), 1e-9 * hs.sum);
}

TEST(Metrics, ConcurrentUpdatesAreNotLost) {
  MetricRegistry registry;
  Counter c = registry.counter("t_hits_total", "hits");
  Histogram h = registry.histogram("t_latency_seconds", "latency", {0.5});
  constexpr int kThreads = 4, kPerThread = 100000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        c.inc();
        h.observe(t % 2 == 0 ? 0.25 : 1.0);
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.value(), double(kThreads) * kPerThread);
  const SeriesSnapshot hs = registry.snapshot()[1].series[0];
  EXPECT_EQ(hs.bucket_counts[0], uint64_t(kThreads / 2) * kPerThread);
  EXPECT_EQ(hs.count, uint64_t(kThreads) * kPerThread);
  EXPECT_EQ(hs.sum, (kThreads / 2) * kPerThread * 0.25 + (kThreads / 2) * kPerThread * 1.0);
}

TEST(Metrics, SameNameAndLabelsIsTheSameSeries) {
  MetricRegistry registry;
  Counter a = registry.counter("t_steps_total", "steps", {{"rank", "0"}});
  Counter b = registry.counter("t_steps_total", "steps", {{"rank", "0"}});
  Counter other = registry.counter("t_steps_total", "steps", {{"rank", "1"}});
  a.inc(2);
  b.inc(3);
  other.inc(7);
  EXPECT_EQ(a.value(), 5.0);
  EXPECT_EQ(other.value(), 7.0);
  const auto snap = registry.snapshot();
  ASSERT_EQ(snap.size(), 1u);
  EXPECT_EQ(snap[0].series.size(), 2u);
}

TEST(Metrics, RejectsNamesAndRedefinitionsPrometheusWouldNot) {
  MetricRegistry r;
  EXPECT_THROW(r.counter("t_steps", "no _total suffix"), Error);
  EXPECT_THROW(r.gauge("t_loss_total", "gauge with _total"), Error);
  EXPECT_THROW(r.gauge("9lives", "starts with a digit"), Error);
  EXPECT_THROW(r.gauge("t-loss", "dash"), Error);
  EXPECT_THROW(r.gauge("t_loss", ""), Error);
  EXPECT_THROW(r.gauge("t_loss", "bad label", {{"__name", "x"}}), Error);
  EXPECT_THROW(r.gauge("t_loss", "bad label", {{"a-b", "x"}}), Error);
  EXPECT_THROW(r.gauge("t_loss", "dup label", {{"a", "x"}, {"a", "y"}}), Error);
  EXPECT_THROW(r.histogram("t_h_seconds", "le", {1.0}, {{"le", "1"}}), Error);
  EXPECT_THROW(r.histogram("t_h_seconds", "no buckets", {}), Error);
  EXPECT_THROW(r.histogram("t_h_seconds", "unsorted", {1.0, 0.5}), Error);
  EXPECT_THROW(r.histogram("t_h_seconds", "inf", {1.0, HUGE_VAL}), Error);

  r.gauge("t_loss", "loss", {{"rank", "0"}});
  EXPECT_THROW(r.counter("t_loss", "loss"), Error);                       // type changed
  EXPECT_THROW(r.gauge("t_loss", "other help", {{"rank", "0"}}), Error);  // help changed
  EXPECT_THROW(r.gauge("t_loss", "loss", {{"stage", "prior"}}), Error);   // label names changed
  r.histogram("t_d_seconds", "d", {1.0, 2.0});
  EXPECT_THROW(r.histogram("t_d_seconds", "d", {1.0, 3.0}), Error);  // buckets changed
  EXPECT_TRUE(is_valid_metric_name("umbra:steps_total"));
  EXPECT_FALSE(is_valid_label_name("a:b"));
}

TEST(Metrics, DisabledHandlesAreNoOps) {
  NullMetrics null;
  EXPECT_FALSE(null.enabled());
  Counter c = null.counter("anything_total", "x");
  Gauge g = null.gauge("anything", "x");
  Histogram h = null.histogram("anything_seconds", "x", {1.0});
  c.inc(5);
  g.set(3);
  h.observe(1);
  EXPECT_FALSE(c.enabled() || g.enabled() || h.enabled());
  EXPECT_EQ(c.value(), 0.0);
  TrainingMetrics disabled;  // what a component holds before monitoring is set up
  disabled.steps.inc();
  disabled.phase(StepPhase::kClip).observe(0.1);
  TrainingMetrics from_null(null, 0, "prior");
  from_null.loss.set(1.0);
  EXPECT_EQ(from_null.loss.value(), 0.0);
}

// The names, types and labels DESIGN.md §10 fixes.
TEST(TrainingMetrics, ExposesTheDesignedNamesTypesAndLabels) {
  MetricRegistry registry;
  TrainingMetrics m(registry, 3, "autoencoder");
  publish_build_info(registry, 3, default_build_info("mpi"));
  const std::map<std::string, MetricType> expected = {
      {"umbra_steps_total", MetricType::kCounter},
      {"umbra_samples_total", MetricType::kCounter},
      {"umbra_dp_clipped_samples_total", MetricType::kCounter},
      {"umbra_dp_samples_total", MetricType::kCounter},
      {"umbra_data_stall_seconds_total", MetricType::kCounter},
      {"umbra_step_duration_seconds", MetricType::kHistogram},
      {"umbra_loss", MetricType::kGauge},
      {"umbra_learning_rate", MetricType::kGauge},
      {"umbra_grad_norm", MetricType::kGauge},
      {"umbra_dp_epsilon", MetricType::kGauge},
      {"umbra_dp_target_epsilon", MetricType::kGauge},
      {"umbra_checkpoint_duration_seconds", MetricType::kHistogram},
      {"umbra_build_info", MetricType::kGauge},
      {"umbra_images_per_second", MetricType::kGauge},
      {"umbra_checkpoint_last_timestamp_seconds", MetricType::kGauge}};
  std::map<std::string, MetricType> got;
  for (const FamilySnapshot& f : registry.snapshot()) {
    got[f.name] = f.type;
    for (const SeriesSnapshot& s : f.series) {
      std::map<std::string, std::string> labels(s.labels.begin(), s.labels.end());
      EXPECT_EQ(labels["rank"], "3") << f.name;
      if (f.name != "umbra_build_info") {
        EXPECT_EQ(labels["stage"], "autoencoder") << f.name;
      }
    }
    if (f.name == "umbra_step_duration_seconds") {
      std::set<std::string> phases;
      for (const SeriesSnapshot& s : f.series)
        for (const auto& [k, v] : s.labels)
          if (k == "phase") phases.insert(v);
      EXPECT_EQ(phases, (std::set<std::string>{"data", "forward", "backward", "clip", "allreduce",
                                               "optimizer"}));
    }
  }
  EXPECT_EQ(got, expected);
}

TEST(TrainingMetrics, PhaseTimerObservesElapsedSeconds) {
  MetricRegistry registry;
  TrainingMetrics m(registry, 0, "prior");
  const auto start = std::chrono::steady_clock::now();
  double reported;
  {
    PhaseTimer t(m.phase(StepPhase::kForward));
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    reported = t.stop();
    EXPECT_EQ(t.stop(), 0.0);  // only once
  }
  const double outside =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_GE(reported, 0.030);
  EXPECT_LE(reported, outside);
  for (const FamilySnapshot& f : registry.snapshot()) {
    if (f.name != "umbra_step_duration_seconds") continue;
    for (const SeriesSnapshot& s : f.series) {
      const bool forward = s.labels.back().second == "forward";
      EXPECT_EQ(s.count, forward ? 1u : 0u);
      if (forward) {
        EXPECT_DOUBLE_EQ(s.sum, reported);
      }
    }
  }
}

TEST(Exposition, TextParsesBackToTheReportedValues) {
  MetricRegistry registry;
  TrainingMetrics m(registry, 1, "prior");
  m.steps.inc(41);
  m.loss.set(0.125);
  m.dp_epsilon.set(2.5);
  m.phase(StepPhase::kAllreduce).observe(0.003);
  m.phase(StepPhase::kAllreduce).observe(0.2);
  registry.gauge("t_quoted", "label escaping", {{"path", "a\"b\\c"}}).set(-1.5);

  const test::Exposition e = test::parse_exposition(exposition_text(registry));
  EXPECT_EQ(e.type.at("umbra_steps_total"), "counter");
  EXPECT_EQ(e.type.at("umbra_loss"), "gauge");
  EXPECT_EQ(e.type.at("umbra_step_duration_seconds"), "histogram");
  EXPECT_EQ(e.help.at("umbra_loss"), "Training loss of the last step");
  EXPECT_EQ(e.value("umbra_steps_total", {{"rank", "1"}, {"stage", "prior"}}), 41.0);
  EXPECT_EQ(e.value("umbra_loss"), 0.125);
  EXPECT_EQ(e.value("umbra_dp_epsilon"), 2.5);
  EXPECT_EQ(e.value("t_quoted", {{"path", "a\"b\\c"}}), -1.5);
  const std::map<std::string, std::string> ar = {{"phase", "allreduce"}};
  auto bucket = [&](const std::string& le) {
    auto labels = ar;
    labels["le"] = le;
    return e.value("umbra_step_duration_seconds_bucket", labels);
  };
  EXPECT_EQ(bucket("0.0025"), 0.0);
  EXPECT_EQ(bucket("0.005"), 1.0);
  EXPECT_EQ(bucket("0.25"), 2.0);
  EXPECT_EQ(bucket("+Inf"), 2.0);
  EXPECT_EQ(e.value("umbra_step_duration_seconds_count", ar), 2.0);
  EXPECT_DOUBLE_EQ(*e.value("umbra_step_duration_seconds_sum", ar), 0.203);
}

TEST(Exposition, PromtoolAcceptsIt) {
  if (!test::executable_exists(test::kPromtoolBinary))
    GTEST_SKIP() << test::kPromtoolBinary << " not installed (Debian package prometheus)";
  MetricRegistry registry;
  TrainingMetrics m(registry, 0, "prior");
  publish_build_info(registry, 0, default_build_info("single"));
  m.steps.inc();
  const test::CommandResult r = test::promtool_check_metrics(exposition_text(registry));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "");  // promtool prints lint findings even when it exits 0
}

}  // namespace
}  // namespace umbra
